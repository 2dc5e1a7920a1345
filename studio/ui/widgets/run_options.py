"""Where a run computes, and the recipe's finer settings under an "Advanced" fold.

Every choice the engine has is reachable in the window: the device (automatic, the CPU or each
GPU found, each with the number format it would use) and, folded away because the defaults are
good, the pretrained part's learning-rate scale, the first stage's length, warm-up, label
smoothing, weight decay and gradient clipping. Ranges are the config's own (studio/core/config.py).
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

from studio.core.devices import device_choices
from studio.ui.state import QtStudioState

# field, label, low, high, step, decimals, suffix, tooltip: what it changes and when to touch it
ADVANCED = (
    ("backbone_lr_scale", "Pretrained part's rate", 0.0, 10.0, 0.05, 2, " × the rate",
     "A pretrained network learns at the learning rate times this, the new last layer at the full rate, so what "
     "it already knows is adjusted, not overwritten. Raise it (towards 1) when your images look nothing like "
     "photographs; lower it when a fine-tuned run gets worse than the first stage."),
    ("head_epochs", "First stage", 0, 10_000, 1, 0, " epochs",
     "With two stages: how many epochs only the new last layer learns before the whole network does."),
    ("warmup_epochs", "Warm-up", 0.0, 1000.0, 0.5, 1, " epochs",
     "The learning rate rises from zero over this many epochs, so the first updates cannot wreck a pretrained "
     "network. Lengthen it if the loss jumps at the start."),
    ("label_smoothing", "Label smoothing", 0.0, 0.5, 0.05, 2, "",
     "Teaches the model to be a little less than 100 % sure (0.1 is common). Helps when some labels may be wrong "
     "or classes overlap; 0 turns it off."),
    ("weight_decay", "Weight decay", 0.0, 1.0, 0.0001, 5, "",
     "Pulls the learned numbers gently towards zero, a guard against memorising. Raise it (e.g. 0.01-0.05) if "
     "training accuracy runs far ahead of validation accuracy."),
    ("grad_clip", "Gradient clipping", 0.0, 1e6, 0.5, 1, "",
     "Caps how big one update may be (0 = no cap). Try 1-5 if the loss suddenly jumps or becomes NaN."),
)


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
        self.device_combo.setToolTip("Where the run computes. Automatic takes a GPU when there is one. Choose the "
                                     "CPU to keep a GPU free for other work, or one GPU of several.")
        self.device_combo.currentIndexChanged.connect(self._on_edited)
        top.addRow("Runs on", self.device_combo)
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
        for name, label, low, high, step, decimals, suffix, tip in ADVANCED:
            spin: QSpinBox | QDoubleSpinBox = QSpinBox() if decimals == 0 else QDoubleSpinBox()
            if isinstance(spin, QDoubleSpinBox):
                spin.setDecimals(decimals)
            spin.setRange(low, high)
            spin.setSingleStep(step)
            spin.setSuffix(suffix)
            spin.setToolTip(tip)
            if name in ("label_smoothing", "grad_clip", "warmup_epochs"):
                spin.setSpecialValueText("off")  # shown at 0
            spin.valueChanged.connect(self._on_edited)
            form.addRow(label, spin)
            self.spins[name] = spin
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
