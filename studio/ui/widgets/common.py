"""Small building blocks shared by the panes: message banners, hint labels, pixels → images."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QToolButton,
    QWidget,
)

_LEVELS = ("info", "warning", "error")


class QtBanner(QWidget):
    """A coloured strip with a message in words: how every error reaches the user (no modal dialog)."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None, *, closable: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.label, 1)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Hide this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.clear)
        self.close_button.setVisible(closable)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        if level not in _LEVELS:
            raise ValueError(f"unknown level {level!r}")
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.level else ""

    def clear(self) -> None:
        self.label.clear()
        self.level = ""
        self.hide()
        self.closed.emit()


def choice_combo(choices: tuple[tuple[object, str], ...] | list[tuple[object, str]], tooltip: str = "") -> QComboBox:
    """A drop-down of (value, words) pairs: the person reads the words, the code gets the value."""
    combo = QComboBox()
    for value, words in choices:
        combo.addItem(words, value)
    combo.setToolTip(tooltip)
    return combo


def hint(text: str) -> QLabel:
    """A one-line (wrapping) explanation in a quieter colour under a control."""
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


def heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("heading")
    return label


def array_to_image(pixels: np.ndarray) -> QImage:
    """uint8 [H, W, 3] or [3, H, W] → a QImage that owns its memory."""
    if pixels.ndim == 3 and pixels.shape[0] == 3 and pixels.shape[2] != 3:
        pixels = pixels.transpose(1, 2, 0)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, _ = pixels.shape
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def array_to_pixmap(pixels: np.ndarray, size: int | None = None) -> QPixmap:
    pixmap = QPixmap.fromImage(array_to_image(pixels))
    if size:
        pixmap = pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                               Qt.TransformationMode.SmoothTransformation)
    return pixmap


def make_table(columns: tuple[str, ...]) -> QTableWidget:
    """A read-only table with a header, whole-row selection and compact rows; the first column stretches."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setDefaultSectionSize(24)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col in range(1, len(columns)):
        header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
    return table
