"""Augment: random changes that show the model more variety than the folder holds, previewed live."""

from __future__ import annotations

import random

import numpy as np
import torch
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.augment import build_train_transform
from studio.core.config import AUGMENT_PRESETS, AugmentConfig
from studio.core.dataset import ScanReport
from studio.core.errors import ImageError
from studio.core.images import load_for_model, to_tensor
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import heading, hint
from studio.ui.widgets.thumbnails import QtThumbnailGrid
from studio.ui.workers import QtTaskRunner

PREVIEW_ROWS = 4
PREVIEW_VERSIONS = 4
PREVIEW_SIZE = 108

PRESET_TEXT = {
    "none": ("None", "Images are used as they are. Augmentation helps most when there are few images."),
    "natural": ("Natural photos", "Everyday photos: mirror left–right, tilt a little, zoom in, vary the light."),
    "medical": ("Medical", "Scans and slides whose orientation means something: no mirroring, a mild tilt and zoom."),
    "aerial": ("Aerial", "Seen from above there is no 'up': every mirror and right-angle turn, tilt, zoom."),
    "custom": ("Custom", "Your own mix of the switches below."),
}

# field, label, kind, explanation, strength when first switched on
TOGGLES = (
    ("hflip", "Mirror left–right", "chance", "For pictures whose left and right do not matter (most photos).", 50),
    ("vflip", "Mirror top–bottom", "chance", "Only where up and down do not matter: aerial or microscope images.", 50),
    ("rotation", "Tilt", "degrees", "Rotates by a random angle, up to this many degrees either way; the corners "
     "are filled with the picture's own mirrored edge, not black.", 10),
    ("rotate90", "Turn by right angles", "switch", "Turns by 0, 90, 180 or 270 degrees: for images with no 'up'.", 0),
    ("crop_scale", "Zoom in", "keep", "Zooms in on a random part that always holds the middle of the picture, "
     "keeping at least this much of it.", 70),
    ("color_jitter", "Vary light and colour", "strength", "Random brightness, contrast and saturation changes.", 20),
    ("grayscale", "Sometimes grey", "chance", "Turns some images grey, so colour alone cannot decide.", 10),
    ("erasing", "Hide a patch", "chance", "Covers a random rectangle, so the model looks at the whole object.", 25),
)
SUFFIX = {"chance": " % of images", "degrees": " °", "keep": " % kept", "strength": " % strength"}


def augment_samples(report: ScanReport, settings: AugmentConfig, size: int, seed: int
                    ) -> tuple[int, list[tuple[str, list[tuple[np.ndarray, str]]]]]:
    """A few real images, each as the model sees it plus augmented versions (runs on a worker thread)."""
    rng = random.Random(seed)
    by_class: dict[str, list] = {}
    for record in report.good:
        by_class.setdefault(record.class_name, []).append(record)
    classes = list(by_class)
    rng.shuffle(classes)
    picks = [rng.choice(by_class[classes[i % len(classes)]]) for i in range(min(PREVIEW_ROWS, len(report.good)))]
    transform = build_train_transform(settings, size)
    generator = torch.Generator().manual_seed(seed)  # its own: a run training meanwhile draws from its own too
    rows = []
    for record in picks:
        try:
            pixels = to_tensor(load_for_model(report.abspath(record), size))
        except ImageError:
            continue
        versions = [(pixels.permute(1, 2, 0).numpy(), f"{record.path}\nas the model sees it, unchanged")]
        for i in range(PREVIEW_VERSIONS):
            out = transform(pixels, generator) if transform is not None else pixels
            versions.append((out.permute(1, 2, 0).numpy().copy(), f"{record.path}\nrandom version {i + 1}"))
        rows.append((record.class_name, versions))
    return seed, rows


class AugmentPane(QWidget):
    """Preset, one toggle with a strength per augmentation, and a preview grid with a re-roll button."""

    title = "Augment"

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.seed = 0
        self._syncing = False
        self._size = state.config.model.image_size
        self._preview = QtTaskRunner("studio-preview", self)
        self._preview.result.connect(self._on_preview)
        self._preview.failed.connect(self._on_preview_failed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._refresh_preview)
        self._build()
        state.config_changed.connect(self._on_config_changed)
        state.report_changed.connect(self._debounce.start)
        self._on_config_changed("augment")

    def _build(self) -> None:
        layout = QHBoxLayout(self)
        left = QWidget()
        left.setMaximumWidth(470)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Preset"))
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("A ready mix of random changes for a kind of picture; choose the one like "
                                     "your images, then adjust the switches below if needed")
        for name in (*AUGMENT_PRESETS, "custom"):
            self.preset_combo.addItem(PRESET_TEXT[name][0], name)
        self.preset_combo.currentIndexChanged.connect(self._on_preset_chosen)
        row.addWidget(self.preset_combo, 1)
        lv.addLayout(row)
        self.preset_hint = hint("")
        lv.addWidget(self.preset_hint)

        box = QGroupBox("Random changes to training images")
        grid = QGridLayout(box)
        grid.setColumnStretch(0, 1)
        self.checks: dict[str, QCheckBox] = {}
        self.strengths: dict[str, QSpinBox] = {}
        for i, (name, label, kind, explanation, start) in enumerate(TOGGLES):
            check = QCheckBox(label)
            check.setToolTip(explanation)
            check.toggled.connect(self._on_edited)
            grid.addWidget(check, 2 * i, 0)
            self.checks[name] = check
            if kind != "switch":
                spin = QSpinBox()
                # A zoom keeps at least half the picture: tighter crops cut the object off.
                low, high = {"keep": (50, 99), "degrees": (1, 180)}.get(kind, (1, 100))
                spin.setRange(low, high)
                spin.setValue(start)
                spin.setSuffix(SUFFIX[kind])
                spin.setToolTip(f"{label}: {explanation} Watch the preview: the class must stay recognisable.")
                spin.valueChanged.connect(self._on_edited)
                grid.addWidget(spin, 2 * i, 1)
                self.strengths[name] = spin
            grid.addWidget(hint(explanation), 2 * i + 1, 0, 1, 2)
        lv.addWidget(box)
        lv.addWidget(hint("Only training images are changed, and differently every epoch; validation and test "
                          "images are always used as they are."))
        lv.addStretch(1)
        layout.addWidget(left)

        right = QVBoxLayout()
        head = QHBoxLayout()
        head.addWidget(heading("Preview on your images"), 1)
        self.reroll_button = QPushButton("Re-roll")
        self.reroll_button.setToolTip("Draw new random versions of other images")
        self.reroll_button.clicked.connect(self._on_reroll)
        head.addWidget(self.reroll_button)
        right.addLayout(head)
        self.preview = QtThumbnailGrid(PREVIEW_SIZE, title_width=90)
        self.preview.set_placeholder("Choose a data folder to preview the augmentations on your own images.")
        right.addWidget(self.preview, 1)
        self.preview_note = hint("")
        right.addWidget(self.preview_note)
        layout.addLayout(right, 1)

    # ------------------------------------------------------------------------------------ edits → state

    @Slot()
    def _on_preset_chosen(self) -> None:
        name = self.preset_combo.currentData()
        if self._syncing or name == "custom":
            return
        self.state.replace("augment", AugmentConfig.from_preset(name))

    @Slot()
    def _on_edited(self) -> None:
        if self._syncing:
            return
        values: dict[str, object] = {}
        for name, _, kind, _, _ in TOGGLES:
            on = self.checks[name].isChecked()
            spin = self.strengths.get(name)
            if kind == "switch":
                values[name] = on
            elif kind == "keep":
                values[name] = spin.value() / 100 if on else 1.0
            elif kind == "degrees":
                values[name] = float(spin.value()) if on else 0.0
            else:
                values[name] = spin.value() / 100 if on else 0.0
        self.state.update("augment", preset="custom", **values)

    @Slot()
    def _on_reroll(self) -> None:
        self.seed += 1
        self._refresh_preview()

    # ------------------------------------------------------------------------------------ state → widgets

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section == "model" and self.state.config.model.image_size != self._size:
            self._size = self.state.config.model.image_size
            self._debounce.start()
        if section != "augment":
            return
        cfg = self.state.config.augment
        self._syncing = True
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(cfg.preset))
        self.preset_hint.setText(PRESET_TEXT[cfg.preset][1])
        for name, _, kind, _, _ in TOGGLES:
            value = getattr(cfg, name)
            on = value < 1.0 if kind == "keep" else bool(value)
            self.checks[name].setChecked(on)
            spin = self.strengths.get(name)
            if spin is not None:
                spin.setEnabled(on)
                if on:
                    spin.setValue(round(value) if kind == "degrees" else round(100 * value))
        self._syncing = False
        self._debounce.start()

    @Slot()
    def _refresh_preview(self) -> None:
        report = self.state.report
        if report is None or not report.good:
            self.preview.set_rows([])
            self.preview_note.setText("")
            return
        settings = AugmentConfig(**vars(self.state.config.augment))
        self._preview.submit(augment_samples, report, settings, self.state.config.model.image_size, self.seed)

    @Slot(object)
    def _on_preview(self, value: object) -> None:
        seed, rows = value  # type: ignore[misc]
        if self.state.report is None:
            return
        titles = ["As is"] + [f"Version {i + 1}" for i in range(PREVIEW_VERSIONS)]
        self.preview.set_rows(rows, titles)
        size = self.state.config.model.image_size
        self.preview_note.setText(f"Each image at the model's input size ({size} × {size} px), scaled here to "
                                  f"{PREVIEW_SIZE} px. Re-roll for other images and other random draws.")

    @Slot(str)
    def _on_preview_failed(self, message: str) -> None:
        self.preview.set_rows([])
        self.preview_note.setText(message)

    def shutdown(self) -> None:
        self._debounce.stop()
        self._preview.shutdown()
