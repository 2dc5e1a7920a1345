"""The first thing a newcomer sees: what the studio wants, and the sample data set one click away."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.sample import SAMPLE_CLASSES
from studio.ui.widgets.common import hint


class QtWelcome(QWidget):
    """A centred card: a sentence on the folder layout, "Open the sample data set", "Choose your own folder…"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        box = QFrame()
        box.setObjectName("welcome")
        box.setMaximumWidth(620)
        inner = QVBoxLayout(box)
        title = QLabel("Welcome to Classification Studio")
        title.setObjectName("title")
        inner.addWidget(title)
        inner.addWidget(hint("Turn a folder of labelled images into an image classifier. The folder holds one "
                             "sub-folder per class, named after it: for example photos/cats and photos/dogs."))
        self.sample_button = QPushButton("Open the sample data set")
        self.sample_button.setObjectName("primary")
        self.sample_button.setToolTip("A small made-up data set of shapes, to try every page before using your "
                                      "own images")
        inner.addWidget(self.sample_button)
        inner.addWidget(hint(f"{len(SAMPLE_CLASSES)} kinds of shapes ({', '.join(SAMPLE_CLASSES)}), drawn on the "
                             "spot: train a classifier on them in about a minute, even without a GPU."))
        self.choose_button = QPushButton("Choose your own folder…")
        self.choose_button.setToolTip("A folder with one sub-folder per class; nothing in it is ever changed")
        inner.addWidget(self.choose_button)
        inner.addWidget(hint("…or drop a folder anywhere onto this window."))
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(box, 2)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
