"""Where a run computes, and the recipe's finer settings under an "Advanced" fold.

Every choice the engine has is reachable in the window: the device (automatic, the CPU or each
GPU found, each with the number format it would use) and, folded away because the defaults are
good, the pretrained part's learning-rate scale, the first stage's length, warm-up, label
smoothing, weight decay and gradient clipping. Labels, ranges and tooltips come from each field's
metadata (studio/core/config.py), as for every bound control.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import field_spec
from studio.core.devices import device_choices
from studio.ui.state import QtStudioState
from studio.ui.widgets.bound import bound_spin, label_for

# The Advanced fields, in the order shown: (field, step, decimals). Label, range and tooltip come from
# each field's own metadata in studio/core/config.py, as for every other bound control.
ADVANCED = (
    ("train.backbone_lr_scale", 0.05, 2),
    ("train.head_epochs", 1, 0),
    ("train.warmup_epochs", 0.5, 1),
    ("train.label_smoothing", 0.05, 2),
    ("train.weight_decay", 0.0001, 5),
    ("train.grad_clip", 0.5, 1),
)
OFF_AT_ZERO = ("train.warmup_epochs", "train.label_smoothing", "train.grad_clip")


class QtRunOptions(QWidget):
    """The device row and the Advanced fold; edits `config.train` of the shared state."""

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        self.device_combo = QComboBox()
        for key, text in device_choices():
            self.device_combo.addItem(text, key)
        # Not bound to the field's fixed choices: it lists this computer's own devices, each with its format.
        help_text = field_spec("train.device").setting.help
        self.device_combo.setToolTip(f"{help_text[:1].upper()}{help_text[1:]}. Choose the CPU to keep a GPU free "
                                     "for other work. Each entry says the number format it uses.")
        self.device_combo.currentIndexChanged.connect(self._on_edited)
        top.addRow(label_for("train.device"), self.device_combo)
        layout.addLayout(top)
        self.fold = QToolButton()
        self.fold.setText("Advanced")
        self.fold.setCheckable(True)
        self.fold.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.fold.setArrowType(Qt.ArrowType.RightArrow)
        self.fold.setAutoRaise(True)
        self.fold.setToolTip("Finer training settings; the defaults suit most data sets")
        self.fold.toggled.connect(self._on_fold)
        layout.addWidget(self.fold)
        self.advanced = QWidget()
        form = QFormLayout(self.advanced)
        form.setContentsMargins(12, 0, 0, 0)
        self.spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for key, step, decimals in ADVANCED:
            spin = bound_spin(key, decimals=decimals, step=step)
            if key in OFF_AT_ZERO:
                spin.setSpecialValueText("off")  # shown at 0
            spin.valueChanged.connect(self._on_edited)
            form.addRow(label_for(key), spin)
            self.spins[key.split(".")[1]] = spin
        self.advanced.setVisible(False)
        layout.addWidget(self.advanced)
        state.config_changed.connect(self._on_config_changed)
        self._on_config_changed("train")

    @Slot(bool)
    def _on_fold(self, open_: bool) -> None:
        self.advanced.setVisible(open_)
        self.fold.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

    @Slot()
    def _on_edited(self) -> None:
        if self._syncing:
            return
        values = {name: (spin.value() if isinstance(spin, QSpinBox) else round(spin.value(), 6))
                  for name, spin in self.spins.items()}
        self.state.update("train", device=self.device_combo.currentData(), **values)

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section != "train":
            return
        t = self.state.config.train
        self._syncing = True
        index = self.device_combo.findData(t.device)
        if index < 0:  # a saved recipe naming a device this computer lacks: say so, keep the value
            self.device_combo.addItem(f"{t.device} (not on this computer)", t.device)
            index = self.device_combo.count() - 1
        self.device_combo.setCurrentIndex(index)
        for name, spin in self.spins.items():
            spin.setValue(getattr(t, name))
        self._syncing = False
