"""Keep together: which images belong to one patient, specimen, plot or batch, so a split cannot leak.

Edits `data.group_by` and `data.near_duplicates` of the shared state; a pattern that cannot work
is refused in one line under the control, before any run starts.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QLineEdit, QWidget

from studio.core.splits import GroupingError, check_rule
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import choice_combo

CHOICES = (
    ("", "Each image on its own"),
    ("folder", "Sub-folder inside each class folder (e.g. one per patient)"),
    ("pattern", "Part of the file name (a pattern)…"),
)


class QtGroupingBox(QWidget):
    """A choice of unit, a pattern field when the unit comes from file names, and the near-duplicate switch."""

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._syncing = False
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.unit_combo = choice_combo(CHOICES, "Images of one patient, specimen, field plot or batch go to the same "
                                                "side of the split, so the model is judged on units it has never seen")
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText(r"e.g. ^(P\d+)_  — the bracketed part names the unit")
        self.pattern_edit.setToolTip("A regular expression with one bracketed group, searched in each file name: "
                                     r"^(P\d+)_ makes P017_scan3.png part of unit P017")
        self.near_check = QCheckBox("Keep near-duplicate pictures together (re-saved, resized or slightly shifted "
                                    "copies)")
        self.near_check.setToolTip("Found by comparing the images themselves; a copy on both sides of the split "
                                   "would make the validation figure too good")
        self.error_label = QLabel()
        self.error_label.setObjectName("error")
        self.error_label.setWordWrap(True)
        grid.addWidget(QLabel("Keep together"), 0, 0)
        grid.addWidget(self.unit_combo, 0, 1)
        grid.addWidget(self.pattern_edit, 0, 2)
        grid.addWidget(self.near_check, 1, 1, 1, 2)
        grid.addWidget(self.error_label, 2, 1, 1, 2)
        grid.setColumnStretch(2, 1)
        self.unit_combo.currentIndexChanged.connect(self._on_edited)
        self.pattern_edit.editingFinished.connect(self._on_edited)
        self.near_check.toggled.connect(self._on_edited)
        state.config_changed.connect(self._on_config_changed)
        self._on_config_changed("data")

    def rule(self) -> str:
        unit = self.unit_combo.currentData()
        return self.pattern_edit.text().strip() if unit == "pattern" else unit

    @Slot()
    def _on_edited(self) -> None:
        self.pattern_edit.setVisible(self.unit_combo.currentData() == "pattern")
        if self._syncing:
            return
        rule = self.rule()
        try:
            check_rule(rule)
        except GroupingError as exc:
            self.error_label.setText(exc.reason)
            return
        self.error_label.setText("")
        self.state.update("data", group_by=rule, near_duplicates=self.near_check.isChecked())

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section != "data":
            return
        data = self.state.config.data
        self._syncing = True
        rule = data.group_by
        key = rule if rule in ("", "folder") else "pattern"
        self.unit_combo.setCurrentIndex(self.unit_combo.findData(key))
        if key == "pattern":
            self.pattern_edit.setText(rule)
        self.pattern_edit.setVisible(key == "pattern")
        self.near_check.setChecked(data.near_duplicates)
        self._syncing = False
