"""The Predict page's row of tools and its empty-page hint, built here so the page keeps only its behaviour."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget


def _button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    return button


class QtPredictTools(QWidget):
    """Ways to bring images in, the flag threshold and filters, and what to do with the rows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        tools = QHBoxLayout(self)
        tools.setContentsMargins(0, 0, 0, 0)
        self.add_button = _button("Add images…", "Choose image files to classify with the current model")
        self.folder_button = _button("Add a folder…", "Classify every image in a folder and its sub-folders")
        self.paste_button = _button("Paste image", "Classify the picture on the clipboard (Ctrl+V)")
        for b in (self.add_button, self.folder_button, self.paste_button):
            tools.addWidget(b)
        tools.addSpacing(16)
        tools.addWidget(QLabel("Flag below"))
        self.threshold = QSpinBox()
        self.threshold.setRange(1, 99)
        self.threshold.setValue(50)
        self.threshold.setSuffix(" %")
        self.threshold.setToolTip("Predictions whose top class has less probability than this are marked ⚠")
        tools.addWidget(self.threshold)
        self.only_flagged = QCheckBox("Only flagged rows")
        self.only_flagged.setToolTip("Show only the images marked ⚠: the ones worth a second look")
        tools.addWidget(self.only_flagged)
        self.only_unfamiliar = QCheckBox("Only unfamiliar")
        self.only_unfamiliar.setToolTip("Show only the images that are not like the training images")
        tools.addWidget(self.only_unfamiliar)
        tools.addStretch(1)
        self.inspect_button = _button("Inspect", "Look inside the model for this image (Inspect page)")
        self.csv_button = _button("Export CSV…", "Save the table (file, top classes, probabilities) as a CSV file "
                                  "for a spreadsheet")
        self.clear_button = _button("Clear", "Empty the table; the images themselves are not touched")
        for b in (self.inspect_button, self.csv_button, self.clear_button):
            tools.addWidget(b)


def drop_hint() -> QLabel:
    """What the empty page says: where the images can come from."""
    label = QLabel("Drop images or a folder of images here\n\nor use Add images…, Add a folder… "
                   "or paste a picture (Ctrl+V)")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("QLabel { border: 2px dashed #b0b8c4; border-radius: 10px; color: #5f6368;"
                        " font-size: 13pt; }")
    return label
