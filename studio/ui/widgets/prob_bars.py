"""The top classes of one prediction as labelled horizontal bars, the likeliest first and emphasised."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

ROW = 34
TOP_COLOUR, OTHER_COLOUR, LOW_COLOUR, TRACK = "#1a73e8", "#9bb8e6", "#e8a33d", "#eef1f5"


class QtProbabilityBars(QWidget):
    """Bars on one 0–100 % scale, so two bars compare by length as well as by number.

    A top class under `low_confidence` is drawn amber: the model is unsure, whatever its first guess.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.top: list[tuple[str, float]] = []
        self.low_confidence = 0.5
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(260)
        self.setFixedHeight(ROW)

    def set_top(self, top: Sequence[tuple[str, float]], low_confidence: float | None = None) -> None:
        self.top = [(str(c), float(p)) for c, p in top]
        if low_confidence is not None:
            self.low_confidence = low_confidence
        self.setFixedHeight(max(1, len(self.top)) * ROW)
        self.setToolTip("\n".join(f"{c}: {100 * p:.2f}%" for c, p in self.top))
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(420, max(1, len(self.top)) * ROW)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        base = QFont(self.font())
        bold = QFont(base)
        bold.setBold(True)
        name_width = min(max(120, self.width() // 3), 240)
        value_width = 64
        bar_left = name_width + 10
        bar_width = max(20, self.width() - bar_left - value_width - 8)
        for i, (name, p) in enumerate(self.top):
            y = i * ROW
            font = bold if i == 0 else base
            painter.setFont(font)
            painter.setPen(QColor("#202124"))
            elided = QFontMetrics(font).elidedText(name, Qt.TextElideMode.ElideMiddle, name_width)
            painter.drawText(QRectF(0, y, name_width, ROW), Qt.AlignmentFlag.AlignRight
                             | Qt.AlignmentFlag.AlignVCenter, elided)
            track = QRectF(bar_left, y + 8, bar_width, ROW - 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(TRACK))
            painter.drawRoundedRect(track, 3, 3)
            colour = (LOW_COLOUR if p < self.low_confidence else TOP_COLOUR) if i == 0 else OTHER_COLOUR
            painter.setBrush(QColor(colour))
            painter.drawRoundedRect(QRectF(track.left(), track.top(), max(2.0, track.width() * p), track.height()),
                                    3, 3)
            painter.setPen(QColor("#202124"))
            painter.drawText(QRectF(track.right() + 6, y, value_width, ROW), Qt.AlignmentFlag.AlignLeft
                             | Qt.AlignmentFlag.AlignVCenter, _percent(p))


def _percent(p: float) -> str:
    """Never "100.0%" or "0.0%" for a probability that is not exactly that: both would be false."""
    value = 100 * p
    if 99.95 <= value < 100:
        return ">99.9%"
    if 0 < value < 0.05:
        return "<0.1%"
    return f"{value:.1f}%"
