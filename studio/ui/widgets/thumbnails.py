"""A scrollable grid of small images in labelled rows: class samples, augmentation previews."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QScrollArea, QWidget

from studio.ui.widgets.common import array_to_pixmap

Row = tuple[str, Sequence[tuple[np.ndarray, str]]]  # title, [(uint8 pixels, tooltip)]


class QtThumbnailGrid(QScrollArea):
    """Rows of thumbnails, each row headed by its title; optional column titles above."""

    def __init__(self, thumb_size: int = 72, title_width: int = 110, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb_size = thumb_size
        self.title_width = title_width
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._placeholder = ""
        self.rows: list[Row] = []
        self._build([], [])

    def set_placeholder(self, text: str) -> None:
        """Shown when there is nothing to show (yet)."""
        self._placeholder = text
        if not self.rows:
            self._build([], [])

    def set_rows(self, rows: Sequence[Row], column_titles: Sequence[str] = ()) -> None:
        self.rows = list(rows)
        self._build(self.rows, list(column_titles))

    def image_count(self) -> int:
        return sum(len(images) for _, images in self.rows)

    def _build(self, rows: list[Row], column_titles: list[str]) -> None:
        body = QWidget()
        body.setObjectName("thumbnails")
        grid = QGridLayout(body)
        grid.setContentsMargins(8, 8, 8, 8)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        if not rows and self._placeholder:
            label = QLabel(self._placeholder)
            label.setObjectName("hint")
            label.setWordWrap(True)
            grid.addWidget(label, 0, 0)
        offset = 0
        if rows and column_titles:
            offset = 1
            for col, title in enumerate(column_titles, start=1):
                label = QLabel(title)
                label.setObjectName("hint")
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                grid.addWidget(label, 0, col)
        for r, (title, images) in enumerate(rows):
            name = QLabel(title)
            name.setWordWrap(True)
            name.setFixedWidth(self.title_width)
            name.setToolTip(title)
            grid.addWidget(name, r + offset, 0, Qt.AlignmentFlag.AlignVCenter)
            for c, (pixels, tooltip) in enumerate(images, start=1):
                cell = QLabel()
                cell.setObjectName("thumb")
                cell.setFixedSize(self.thumb_size + 4, self.thumb_size + 4)
                cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
                cell.setPixmap(array_to_pixmap(pixels, self.thumb_size))
                cell.setToolTip(tooltip)
                grid.addWidget(cell, r + offset, c)
        self.setWidget(body)
