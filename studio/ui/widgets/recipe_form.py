"""The training recipe of the Train pane: epochs, learning rate, batch size, optimizer, schedule, early stop."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QWidget,
)

from studio.ui.state import QtStudioState
from studio.ui.widgets.bound import bound_combo, bound_spin, label_for
from studio.ui.widgets.common import choice_combo, hint

# "applied" is what a run's saved config says after the recipe ran; a person chooses between these two.
CHOOSE = (("recommended", "Recommended for these images"), ("manual", "Exactly as set on the pages"))


class QtRecipeForm(QGroupBox):
    """Edits `config.train` of the shared state, and shows it back when it changes elsewhere."""

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__("Training recipe", parent)
        self.state = state
        self._syncing = False
        form = QFormLayout(self)
        self.choose_combo = choice_combo(CHOOSE, "Recommended: the studio looks at the images and this computer and "
                                         "picks the network, image size, augmentation and epochs; whatever you "
                                         "change yourself on the Model, Augment and Train pages is kept as you set it")
        self.budget_combo = bound_combo("recipe.budget")
        self.budget_combo.setToolTip("How long the recommended settings may take; the estimate is shown when "
                                     "training starts, and the run ends in time with its best model")
        form.addRow(label_for("recipe.mode"), self.choose_combo)
        form.addRow(label_for("recipe.budget"), self.budget_combo)
        self.chosen_hint = hint("The studio sets the numbers below when you press Start, unless you change them "
                                "yourself.")
        form.addRow("", self.chosen_hint)
        self.choose_combo.currentIndexChanged.connect(self._on_recipe_edited)
        self.budget_combo.currentIndexChanged.connect(self._on_recipe_edited)
        self.epochs_spin = bound_spin("train.epochs")
        self.epochs_spin.setSuffix("")
        self.lr_spin = bound_spin("train.lr", decimals=6, step=0.0001)
        self.batch_spin = bound_spin("train.batch_size")
        self.optimizer_combo = bound_combo("train.optimizer")
        self.schedule_combo = bound_combo("train.schedule")
        self.early_check = QCheckBox("if no progress for")
        self.early_spin = bound_spin("train.early_stopping")
        self.early_spin.setValue(5)
        self.early_check.setToolTip("Ends the run when validation accuracy stops improving; the best model is kept")
        self.imbalance_combo = bound_combo("train.imbalance")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("optional, e.g. 'first try'")
        self.name_edit.setToolTip("A name to recognise this run by in the runs table and when comparing curves")
        early = QHBoxLayout()
        early.addWidget(self.early_check)
        early.addWidget(self.early_spin, 1)
        for key, widget in (("train.epochs", self.epochs_spin), ("train.lr", self.lr_spin),
                            ("train.batch_size", self.batch_spin), ("train.optimizer", self.optimizer_combo),
                            ("train.schedule", self.schedule_combo), ("train.early_stopping", early),
                            ("train.imbalance", self.imbalance_combo)):
            form.addRow(label_for(key), widget)
        form.addRow("Run name", self.name_edit)
        for spin in (self.epochs_spin, self.batch_spin, self.early_spin, self.lr_spin):
            spin.valueChanged.connect(self._on_edited)
        for combo in (self.optimizer_combo, self.schedule_combo, self.imbalance_combo):
            combo.currentIndexChanged.connect(self._on_edited)
        self.early_check.toggled.connect(self._on_edited)
        state.config_changed.connect(self._on_config_changed)
        self._on_config_changed("train")
        self._on_config_changed("recipe")


    # ------------------------------------------------------------------------------------ recipe ↔ state

    @Slot()
    def _on_recipe_edited(self) -> None:
        recommended = self.choose_combo.currentData() == "recommended"
        self.budget_combo.setEnabled(recommended)
        self.chosen_hint.setVisible(recommended)
        if not self._syncing:
            self.state.update("recipe", mode=self.choose_combo.currentData(), budget=self.budget_combo.currentData())

    @Slot()
    def _on_edited(self) -> None:
        if self._syncing:
            return
        self.state.update(
            "train", epochs=self.epochs_spin.value(), lr=round(self.lr_spin.value(), 6),
            batch_size=self.batch_spin.value(), optimizer=self.optimizer_combo.currentData(),
            schedule=self.schedule_combo.currentData(), imbalance=self.imbalance_combo.currentData(),
            early_stopping=self.early_spin.value() if self.early_check.isChecked() else 0,
        )

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section == "recipe":
            r = self.state.config.recipe
            self._syncing = True
            self.choose_combo.setCurrentIndex(max(0, self.choose_combo.findData(
                "manual" if r.mode == "manual" else "recommended")))
            self.budget_combo.setCurrentIndex(max(0, self.budget_combo.findData(r.budget)))
            self.budget_combo.setEnabled(r.mode != "manual")
            self.chosen_hint.setVisible(r.mode != "manual")
            self._syncing = False
            return
        if section != "train":
            return
        t = self.state.config.train
        self._syncing = True
        self.epochs_spin.setValue(t.epochs)
        self.lr_spin.setValue(t.lr)
        self.batch_spin.setValue(t.batch_size)
        for combo, value in ((self.optimizer_combo, t.optimizer), (self.schedule_combo, t.schedule),
                             (self.imbalance_combo, t.imbalance)):
            combo.setCurrentIndex(max(0, combo.findData(value)))
        self.early_check.setChecked(t.early_stopping > 0)
        self.early_spin.setEnabled(t.early_stopping > 0)
        if t.early_stopping:
            self.early_spin.setValue(t.early_stopping)
        self._syncing = False
