"""A clickable confusion matrix: rows are the true class, columns the predicted one.

Cells are coloured by their share of the true class (as in the run's confusion.png), so a small
class's mistakes stay as visible as a large class's; the count is written in the cell. Painted
directly rather than through matplotlib so a click maps to a cell without any hit-testing of a
figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QHelpEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from studio.ui.widgets.image_grid import colour_table

CMAP = "Blues"
LABEL_MAX = 150


class QtConfusionMatrix(QWidget):
    """`cell_clicked(true, predicted)` when a cell is clicked; the clicked cell stays outlined."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cm = np.zeros((0, 0), dtype=np.int64)
        self.classes: list[str] = []
        self.selected: tuple[int, int] | None = None
        self.setMinimumSize(260, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)

    def set_matrix(self, cm: np.ndarray, classes: Sequence[str]) -> None:
        self.cm = np.asarray(cm, dtype=np.int64)
        self.classes = list(classes)
        self.selected = None
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(460, 420)

    # ------------------------------------------------------------------------------------ geometry

    def _label_width(self) -> int:
        metrics = QFontMetrics(self.font())
        return min(LABEL_MAX, max((metrics.horizontalAdvance(c) for c in self.classes), default=20)) + 10

    def _layout(self) -> tuple[int, int, int, bool]:
        """(left, top, cell size, vertical column labels)."""
        n = max(1, len(self.classes))
        left = self._label_width() + 22  # room for the "true class" title
        widest = max((QFontMetrics(self.font()).horizontalAdvance(c) for c in self.classes), default=0) + 6
        for vertical in (False, True):  # column names across when they fit in a cell, else upright
            top = 22 + (self._label_width() if vertical else 18)
            cell = max(8, min((self.width() - left - 8) // n, (self.height() - top - 4) // n, 90))
            if vertical or widest <= cell:
                break
        return left, top, cell, vertical

    def cell_rect(self, row: int, col: int) -> QRect:
        left, top, cell, _ = self._layout()
        return QRect(left + col * cell, top + row * cell, cell, cell)

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        left, top, cell, _ = self._layout()
        n = len(self.classes)
        col, row = (pos.x() - left) // cell, (pos.y() - top) // cell
        if pos.x() >= left and pos.y() >= top and 0 <= row < n and 0 <= col < n:
            return int(row), int(col)
        return None

    # ------------------------------------------------------------------------------------ drawing

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        n = len(self.classes)
        if not n:
            painter.setPen(QColor("#5f6368"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No evaluation yet")
            return
        left, top, cell, vertical = self._layout()
        rows = self.cm.sum(axis=1, keepdims=True)
        share = np.divide(self.cm, rows, out=np.zeros(self.cm.shape), where=rows > 0)
        table = colour_table(CMAP)
        metrics = QFontMetrics(self.font())
        small = QFont(self.font())
        small.setPointSizeF(max(6.5, min(10.0, cell / 4.5)))
        for i in range(n):
            for j in range(n):
                rect = self.cell_rect(i, j)
                r, g, b = (int(v) for v in table[int(share[i, j] * 255)])
                painter.fillRect(rect, QColor(r, g, b))
                if cell >= 18 and (self.cm[i, j] or i == j):
                    painter.setFont(small)
                    painter.setPen(QColor("white") if share[i, j] > 0.5 else QColor("#202124"))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(int(self.cm[i, j])))
        painter.setFont(self.font())
        painter.setPen(QColor("#d0d4da"))
        painter.drawRect(QRect(left, top, n * cell, n * cell).adjusted(0, 0, -1, -1))
        label_w = self._label_width()
        painter.setPen(QColor("#202124"))
        for i, name in enumerate(self.classes):
            text = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, label_w - 8)
            painter.drawText(QRect(left - label_w, top + i * cell, label_w - 6, cell),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
            x = left + i * cell
            if vertical:
                painter.save()
                painter.translate(x + cell / 2 + metrics.ascent() / 2 - 2, top - 4)
                painter.rotate(-90)
                painter.drawText(QRectF(0, -metrics.ascent(), label_w, metrics.height()),
                                 Qt.AlignmentFlag.AlignLeft, text)
                painter.restore()
            else:
                painter.drawText(QRect(x, top - 20, cell, 18), Qt.AlignmentFlag.AlignCenter, text)
        painter.setPen(QColor("#5f6368"))
        painter.drawText(QRect(left, 0, n * cell, 18), Qt.AlignmentFlag.AlignCenter, "predicted class →")
        painter.save()
        painter.translate(4, top + n * cell / 2)
        painter.rotate(-90)
        painter.drawText(QRectF(-n * cell / 2, 0, n * cell, 16), Qt.AlignmentFlag.AlignCenter, "← true class")
        painter.restore()
        if self.selected is not None:
            painter.setPen(QPen(QColor("#e8710a"), 3))
            painter.drawRect(self.cell_rect(*self.selected).adjusted(1, 1, -1, -1))

    # ------------------------------------------------------------------------------------ input

    def click_cell(self, row: int, col: int) -> None:
        self.selected = (row, col)
        self.update()
        self.cell_clicked.emit(row, col)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        hit = self.cell_at(event.position().toPoint())
        if hit is not None:
            self.click_cell(*hit)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        hit = self.cell_at(event.position().toPoint())
        self.setCursor(Qt.CursorShape.PointingHandCursor if hit else Qt.CursorShape.ArrowCursor)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            hit = self.cell_at(event.pos())
            if hit is None:
                QToolTip.hideText()
            else:
                i, j = hit
                total = int(self.cm[i].sum())
                what = "correctly recognised" if i == j else f"taken for {self.classes[j]}"
                share = f" ({100 * self.cm[i, j] / total:.0f}% of them)" if total else ""
                QToolTip.showText(event.globalPos(), f"{int(self.cm[i, j])} {self.classes[i]} image(s) {what}"
                                  f"{share}. Click to see them.", self)
            return True
        return super().event(event)
