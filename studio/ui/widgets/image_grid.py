"""Pictures the inspect and predict views draw: a fitted image, a grid of small maps, a colour scale.

All three paint numpy arrays the engine hands out; none of them computes anything about a model.
The grid paints every tile itself instead of holding one QLabel per map, so showing 64 new
feature maps costs one repaint, which is what keeps switching layers instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QLinearGradient, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.ui.widgets.common import array_to_image


@lru_cache(maxsize=8)
def colour_table(cmap: str) -> np.ndarray:
    """uint8 [256, 3]: a matplotlib colour map as a lookup table (indexing is ~20× faster than calling it)."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def colourize(values: np.ndarray, cmap: str) -> np.ndarray:
    """Values in 0..1 (any shape) → uint8 RGB (same shape + 3) through `cmap`."""
    index = (np.clip(values, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return colour_table(cmap)[index]


class QtImageView(QWidget):
    """One image scaled to fit, never distorted; optionally the centre square the model sees marked on it."""

    def __init__(self, parent: QWidget | None = None, *, smooth: bool = True, minimum: int = 120,
                 max_scale: float = 0.0) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.smooth = smooth
        self.max_scale = max_scale  # 0: fill the widget; else never enlarge more than this
        self.show_crop = False
        self.placeholder = ""
        self.setMinimumSize(minimum, minimum)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_array(self, pixels: np.ndarray | None, *, smooth: bool | None = None) -> None:
        self.image = None if pixels is None else array_to_image(pixels)
        if smooth is not None:
            self.smooth = smooth
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def target_rect(self) -> QRect:
        if self.image is None:
            return QRect()
        size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        if self.max_scale and size.width() > self.max_scale * self.image.width():
            size = self.image.size() * self.max_scale
        return QRect(QPoint((self.width() - size.width()) // 2, (self.height() - size.height()) // 2), size)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        if self.image is None:
            painter.setPen(QColor("#5f6368"))
            painter.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter
                             | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        target = self.target_rect()
        # Enlarged a lot, a small image is shown as its pixels: a blur would hide what the model got.
        enlarged = target.width() >= 3 * self.image.width()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth and not enlarged)
        painter.drawImage(target, self.image)
        if self.show_crop and target.width() != target.height():
            side = min(target.width(), target.height())
            square = QRect(0, 0, side, side)
            square.moveCenter(target.center())
            shade = QColor(255, 255, 255, 120)  # what the model never sees, faded
            if target.width() > target.height():
                painter.fillRect(QRect(target.left(), target.top(), square.left() - target.left(), side), shade)
                painter.fillRect(QRect(square.right() + 1, target.top(), target.right() - square.right(), side), shade)
            else:
                painter.fillRect(QRect(target.left(), target.top(), side, square.top() - target.top()), shade)
                painter.fillRect(QRect(target.left(), square.bottom() + 1, side, target.bottom() - square.bottom()),
                                 shade)
            painter.setPen(QPen(QColor(255, 255, 255, 230), 2, Qt.PenStyle.DashLine))
            painter.drawRect(square)
            painter.setPen(QPen(QColor(0, 0, 0, 160), 1, Qt.PenStyle.DashLine))
            painter.drawRect(square.adjusted(2, 2, -2, -2))


class QtImageGrid(QWidget):
    """Small images in a grid that fits the widget (no scrolling); a click selects one and says which.

    Tiles are drawn with nearest-neighbour scaling: a 7×7 feature map must look like 49 cells,
    not like a blur.
    """

    clicked = Signal(int)  # index into the images given to `set_images`

    def __init__(self, parent: QWidget | None = None, *, gap: int = 3, max_cell: int = 160,
                 framed: bool = False) -> None:
        super().__init__(parent)
        self.gap, self.max_cell, self.framed = gap, max_cell, framed
        self.images: list[QImage] = []
        self.captions: list[str] = []
        self.selected = -1
        self.placeholder = ""
        self.paint_count = 0
        self._shape: tuple[tuple[int, int, int], tuple[int, int, int]] = ((0, 0, 0), (0, 0, 0))
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)

    def set_images(self, images: Sequence[np.ndarray], captions: Sequence[str] = ()) -> None:
        """uint8 H×W×3 arrays; captions (e.g. channel numbers) are drawn on tiles big enough to hold them."""
        self.images = [array_to_image(a) for a in images]
        self.captions = list(captions) or [""] * len(self.images)
        self.selected = -1
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def clear(self) -> None:
        self.set_images([])

    def grid_shape(self) -> tuple[int, int, int]:
        """(columns, rows, cell size) giving the largest square cells that fit all images."""
        n = len(self.images)
        if not n:
            return 0, 0, 0
        width, height = max(1, self.width() - 2), max(1, self.height() - 2)
        if self._shape[0] == (n, width, height):
            return self._shape[1]
        best = (1, n, 1)
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            cell = min((width - self.gap * (cols - 1)) // cols, (height - self.gap * (rows - 1)) // rows)
            if cell > best[2]:
                best = (cols, rows, cell)
        cols, rows, cell = best
        self._shape = ((n, width, height), (cols, rows, max(1, min(cell, self.max_cell))))
        return self._shape[1]

    def cell_rect(self, index: int) -> QRect:
        cols, _, cell = self.grid_shape()
        if not cols:
            return QRect()
        r, c = divmod(index, cols)
        return QRect(1 + c * (cell + self.gap), 1 + r * (cell + self.gap), cell, cell)

    def index_at(self, pos: QPoint) -> int:
        for i in range(len(self.images)):
            if self.cell_rect(i).contains(pos):
                return i
        return -1

    def select(self, index: int) -> None:
        self.selected = index
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self.paint_count += 1
        painter = QPainter(self)
        if not self.images:
            painter.setPen(QColor("#5f6368"))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12), Qt.AlignmentFlag.AlignCenter
                             | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        _, _, cell = self.grid_shape()
        font = painter.font()
        font.setPointSizeF(7.5)
        painter.setFont(font)
        for i, image in enumerate(self.images):
            rect = self.cell_rect(i)
            fitted = QRect(QPoint(0, 0), image.size().scaled(rect.size(), Qt.AspectRatioMode.KeepAspectRatio))
            fitted.moveCenter(rect.center())
            painter.drawImage(fitted, image)
            if self.framed:
                painter.setPen(QColor("#80868b"))
                painter.drawRect(fitted.adjusted(-1, -1, 0, 0))
            if self.captions[i] and cell >= 36:
                text_rect = QRect(rect.left(), rect.top(), rect.width(), 13)
                painter.fillRect(QRect(rect.left(), rect.top(), min(rect.width(), 7 * len(self.captions[i]) + 6), 13),
                                 QColor(0, 0, 0, 140))
                painter.setPen(QColor("white"))
                painter.drawText(text_rect.adjusted(3, 0, 0, 0), Qt.AlignmentFlag.AlignLeft
                                 | Qt.AlignmentFlag.AlignVCenter, self.captions[i])
        if 0 <= self.selected < len(self.images):
            painter.setPen(QPen(QColor("#1a73e8"), 3))
            painter.drawRect(self.cell_rect(self.selected).adjusted(-1, -1, 1, 1))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        index = self.index_at(event.position().toPoint())
        if index >= 0:
            self.select(index)
            self.clicked.emit(index)


class QtColourBar(QWidget):
    """The one colour scale of a grid: a gradient with the values at its ends and what it measures."""

    def __init__(self, cmap: str = "viridis", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmap, self.low, self.high, self.label = cmap, 0.0, 1.0, ""
        self.low_text, self.high_text = "", ""
        self.setFixedHeight(34)
        self.setMinimumWidth(220)

    def set_scale(self, low: float, high: float, label: str, low_text: str = "", high_text: str = "") -> None:
        self.low, self.high, self.label = low, high, label
        self.low_text, self.high_text = low_text, high_text
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(320, 34)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        table = colour_table(self.cmap)
        bar = QRectF(60, 2, max(10, self.width() - 120), 14)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for stop in np.linspace(0, 1, 11):
            r, g, b = (int(v) for v in table[int(stop * 255)])
            gradient.setColorAt(float(stop), QColor(r, g, b))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor("#9aa0a6"))
        painter.drawRect(bar)
        painter.setPen(QColor("#3c4043"))
        left = self.low_text or f"{self.low:.3g}"
        right = self.high_text or f"{self.high:.3g}"
        painter.drawText(QRectF(0, 0, 56, 18), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, left)
        painter.drawText(QRectF(bar.right() + 4, 0, 60, 18), Qt.AlignmentFlag.AlignLeft
                         | Qt.AlignmentFlag.AlignVCenter, right)
        painter.setPen(QColor("#5f6368"))
        painter.drawText(QRectF(0, 17, self.width(), 16), Qt.AlignmentFlag.AlignCenter, self.label)
