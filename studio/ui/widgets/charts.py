"""matplotlib charts inside the window: the class balance and the learning curves.

matplotlib draws on a worker thread (Agg, no Qt), and the UI thread only paints the
finished picture. A draw costs 40-70 ms of Python alone and several times that while
a training thread competes for the GIL; on the UI thread that was a visible stutter
(benchmarks/ui_responsiveness.py). Draws also happen at a bounded rate
(`MIN_DRAW_INTERVAL_MS`), only while the chart is visible, and a newer request
replaces one still waiting.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QRectF, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from studio.core.fonts import use_system_fonts
from studio.core.words import axis_scale
from studio.ui.workers import QtTaskRunner

MIN_DRAW_INTERVAL_MS = 250
TRAIN_COLOUR, VAL_COLOUR, LR_COLOUR = "#1f77b4", "#ff7f0e", "#2ca02c"
RUN_STYLES = ("-", ":")  # first and second run of a comparison
FONT = 8
DPI = 100

DrawFn = Callable[[Figure], dict]
# A class name in a script the installed fonts lack draws as a box; a warning per draw helps nobody.
warnings.filterwarnings("ignore", message=r"Glyph .* missing from font", category=UserWarning)


def render(draw: DrawFn, width: int, height: int, ratio: float = 1.0) -> tuple[np.ndarray, dict]:
    """Draw into a fresh Agg figure of width × height logical pixels; (RGBA pixels, what draw returned)."""
    use_system_fonts()  # class names in any script the system has a font for
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI * ratio, layout="constrained")
    info = draw(figure) or {}
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy(), info


class _QtChart(QWidget):
    """Shows the latest picture `render` made of `_draw_function()`; asks for a new one when dirty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 140)
        self.image: QImage | None = None
        self.info: dict = {}
        self.draw_count = 0
        self._dirty = True
        self._runner = QtTaskRunner("studio-chart", self)
        self._runner.result.connect(self._on_rendered)
        self._runner.failed.connect(self._on_failed)
        self.error = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(MIN_DRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)

    def schedule_draw(self, delay_ms: int | None = None) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start(0 if self.draw_count == 0 and delay_ms is None else (delay_ms or MIN_DRAW_INTERVAL_MS))

    def redraw_now(self) -> None:
        """Draw on the calling thread and show it at once (screenshots, tests)."""
        self._on_rendered(render(self._draw_function(), *self._size()))

    def shutdown(self) -> None:
        self._timer.stop()
        self._runner.shutdown()

    def _size(self) -> tuple[int, int, float]:
        return max(self.width(), 50), max(self.height(), 50), self.devicePixelRatioF()

    @Slot()
    def _on_timer(self) -> None:
        if not self._dirty:
            return
        if not self.isVisible():
            return  # drawn when shown
        if self._runner.busy:
            self._timer.start(MIN_DRAW_INTERVAL_MS)
            return
        self._dirty = False
        self._runner.submit(render, self._draw_function(), *self._size())

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.image, self.error = None, f"The chart cannot be drawn: {message}"
        self.update()

    @Slot(object)
    def _on_rendered(self, value: object) -> None:
        pixels, info = value  # type: ignore[misc]
        height, width, _ = pixels.shape
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
        image.setDevicePixelRatio(width / max(1, self._size()[0]))
        self.image, self.info, self.error = image, info, ""
        self.draw_count += 1
        self.update()

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._dirty:
            self.schedule_draw()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.schedule_draw(MIN_DRAW_INTERVAL_MS)

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("white"))
        if self.image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(QRectF(self.rect()), self.image)
        elif self.error:
            painter.drawText(self.rect().adjusted(12, 12, -12, -12), Qt.TextFlag.TextWordWrap, self.error)
        painter.end()

    def _draw_function(self) -> DrawFn:
        raise NotImplementedError


def _style(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    ax.grid(True, alpha=0.3)


class QtBalanceChart(_QtChart):
    """Images per class as horizontal bars; classes below the advised minimum in orange."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts: dict[str, int] = {}
        self.minimum = 0

    def set_counts(self, counts: dict[str, int], minimum: int = 0) -> None:
        self.counts, self.minimum = dict(counts), minimum
        self.schedule_draw()

    def _draw_function(self) -> DrawFn:
        return partial(draw_balance, dict(self.counts), self.minimum)


def draw_balance(counts: dict[str, int], minimum: int, figure: Figure) -> dict:
    ax = figure.add_subplot()
    _style(ax, "Images per class")
    if not counts:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No data folder yet", ha="center", va="center", fontsize=FONT + 1, color="grey")
        return {}
    names = list(counts)[::-1]  # first class on top
    values = [counts[n] for n in names]
    ax.barh(range(len(names)), values, color=["#e08a1e" if v < minimum else TRAIN_COLOUR for v in values])
    many = len(names) > 25
    ax.set_yticks(range(len(names)), [] if many else [_short(n) for n in names])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    if not many:
        for i, v in enumerate(values):
            ax.text(v, i, f" {v}", va="center", fontsize=FONT)
        ax.set_xlim(0, max(values) * 1.18 or 1)
    ax.set_xlabel("images" + (f" (orange: fewer than {minimum})" if min(values) < minimum else ""), fontsize=FONT)
    return {"bars": dict(zip(names, values))}


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


class QtTrainingPlot(_QtChart):
    """Loss, accuracy and learning rate per epoch of one run, or two runs overlaid (solid and dotted)."""

    KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(420, 200)
        self.runs: list[tuple[str, list[dict[str, Any]]]] = []
        self.placeholder = "Start a run to watch its learning curves here, epoch by epoch."
        self.planned = 0

    def set_runs(self, runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], placeholder: str = "",
                 planned: int = 0) -> None:
        """[(label, [{"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr"}, ...])], at most two.

        placeholder: shown while no run has an epoch yet; planned: epochs the x axis spans (a live run)."""
        self.runs = [(label, [dict(r) for r in rows]) for label, rows in list(runs)[:2]]
        self.planned = planned
        if placeholder:
            self.placeholder = placeholder
        self.schedule_draw()

    def points(self, key: str, run: int = 0) -> list[tuple[float, float]]:
        """What the plot on screen holds for one curve of one run (accuracy in percent)."""
        return list(self.info.get("points", {}).get((run, key), []))

    def _draw_function(self) -> DrawFn:
        return partial(draw_training, [(label, list(rows)) for label, rows in self.runs], self.placeholder,
                       self.planned)


def draw_training(runs: list[tuple[str, list[dict[str, Any]]]], placeholder: str, planned: int,
                  figure: Figure) -> dict:
    if not any(rows for _, rows in runs):
        figure.text(0.5, 0.5, placeholder, ha="center", va="center", fontsize=FONT + 3, color="grey")
        return {"points": {}}
    ax_loss, ax_acc, ax_lr = figure.subplots(1, 3)
    for ax, title in ((ax_loss, "Loss"), (ax_acc, "Accuracy (%)"), (ax_lr, "Learning rate")):
        _style(ax, title)
        ax.set_xlabel("epoch", fontsize=FONT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    points: dict[tuple[int, str], list[tuple[float, float]]] = {}
    compare = len(runs) > 1
    last = max([planned, 2] + [int(r["epoch"]) for _, rows in runs for r in rows])
    # The learning rate in plain numbers with its unit in the title ("× 10⁻⁴"), never an offset label.
    lr_unit, lr_text = axis_scale([float(r["lr"]) for _, rows in runs for r in rows if _finite(r.get("lr"))])
    if lr_text:
        ax_lr.set_title(f"Learning rate ({lr_text})", fontsize=FONT + 1)
    for i, (_label, rows) in enumerate(runs):
        style = RUN_STYLES[i % len(RUN_STYLES)]
        for ax, key, colour, name, scale in (
            (ax_loss, "train_loss", TRAIN_COLOUR, "train", 1), (ax_loss, "val_loss", VAL_COLOUR, "validation", 1),
            (ax_acc, "train_acc", TRAIN_COLOUR, "train", 100), (ax_acc, "val_acc", VAL_COLOUR, "validation", 100),
            (ax_lr, "lr", LR_COLOUR, "lr", 1),
        ):
            xy = [(float(r["epoch"]), float(r[key]) * scale) for r in rows if _finite(r.get(key))]
            if xy:
                xs, ys = zip(*xy)
                shown = [y / lr_unit for y in ys] if key == "lr" else ys
                ax.plot(xs, shown, style, color=colour, marker="o", markersize=3, label=name)
                points[(i, key)] = xy
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlim(0.5, last + 0.5)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax_acc.set_ylim(-2, 102)
    colours = [Line2D([], [], color=TRAIN_COLOUR, marker="o", markersize=3, label="train"),
               Line2D([], [], color=VAL_COLOUR, marker="o", markersize=3, label="validation")]
    ax_loss.legend(handles=colours, fontsize=FONT, loc="best")
    if compare:
        styles = [Line2D([], [], color="grey", linestyle=RUN_STYLES[i], label=_short(label, 22))
                  for i, (label, _) in enumerate(runs)]
        ax_acc.legend(handles=styles, fontsize=FONT, loc="best")
    return {"points": points}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
