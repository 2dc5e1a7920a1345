"""Window controls built from a config field's metadata: range, label, tooltip and choices in one place.

A control made here carries the field's dotted name in its `config_field`
property (and the factor between what it shows and what the config holds in
`config_scale`), so a test can walk the window and check every bound control
against the field it edits.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox, QWidget

from studio.core.config import field_spec


def label_for(key: str) -> str:
    return field_spec(key).setting.label


def bind(widget: QWidget, key: str, scale: float = 1.0) -> None:
    """Mark `widget` as the editor of `key` and give it the field's help as its tooltip."""
    spec = field_spec(key)
    widget.setProperty("config_field", key)
    widget.setProperty("config_scale", scale)
    widget.setToolTip(spec.setting.help[:1].upper() + spec.setting.help[1:])


def bound_spin(key: str, *, decimals: int = 2, step: float | None = None, whole: bool = False
               ) -> QSpinBox | QDoubleSpinBox:
    """A spin box over the field's whole range: whole numbers (or `whole`), percent for shares, else decimals."""
    spec = field_spec(key)
    s = spec.setting
    spin: QSpinBox | QDoubleSpinBox
    if spec.kind == "int" or s.percent or whole:
        scale = 100 if s.percent else 1
        spin = QSpinBox()
        spin.setRange(round(s.low * scale), round(s.high * scale))
        spin.setSuffix(" %" if s.percent else (f" {s.unit}" if s.unit else ""))
        if s.auto is not None:  # one step below the range reads "Automatic": the studio chooses
            spin.setMinimum(round(s.low * scale) - 1)
            spin.setSpecialValueText("Automatic")
    else:
        scale = 1
        spin = QDoubleSpinBox()
        spin.setDecimals(decimals)
        spin.setRange(s.low, s.high)
        if s.unit:
            spin.setSuffix(f" {s.unit}")
    if step is not None:
        spin.setSingleStep(step)
    bind(spin, key, scale)
    return spin


def bound_combo(key: str, labels: dict[Any, str] | None = None) -> QComboBox:
    """A drop-down of the field's choices, each in plain words (the field's own, or `labels`)."""
    spec = field_spec(key)
    words = labels or spec.setting.choice_labels
    combo = QComboBox()
    allowed = spec.setting.allowed() or ()
    # The order of the words when given (the usual choice first), then any choice they leave out.
    for choice in [c for c in words if c in allowed] + [c for c in allowed if c not in words]:
        combo.addItem(words.get(choice, str(choice)), choice)
    bind(combo, key)
    return combo
