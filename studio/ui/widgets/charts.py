"""matplotlib charts inside the window: the class balance and the learning curves.

Every chart redraws at a bounded rate (`MIN_DRAW_INTERVAL_MS`) and only while
visible: new data marks it dirty, a timer draws. A run that reports an epoch
every few milliseconds therefore costs the UI thread at most four draws a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QSizePolicy, QWidget

MIN_DRAW_INTERVAL_MS = 250
TRAIN_COLOUR, VAL_COLOUR, LR_COLOUR = "#1f77b4", "#ff7f0e", "#2ca02c"
RUN_STYLES = ("-", ":")  # first and second run of a comparison
FONT = 8


class _QtChart(FigureCanvasQTAgg):
    """A canvas that draws when dirty, visible, and not more often than the interval allows."""

    def __init__(self, width: float, height: float, parent: QWidget | None = None) -> None:
        self.figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 140)
        self._dirty = True
        self.draw_count = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(MIN_DRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)

    def schedule_draw(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start(0 if self.draw_count == 0 else MIN_DRAW_INTERVAL_MS)

    def redraw_now(self) -> None:
        """Draw immediately (for screenshots and tests)."""
        self._render()
        self.draw()
        self._dirty = False
        self.draw_count += 1

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._dirty:
            self.schedule_draw()

    def _on_timer(self) -> None:
        if self._dirty and self.isVisible():
            self.redraw_now()

    def _render(self) -> None:
        raise NotImplementedError


def _style(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    ax.grid(True, alpha=0.3)


class QtBalanceChart(_QtChart):
    """Images per class as horizontal bars; classes below the advised minimum in orange."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(4, 2.5, parent)
        self.counts: dict[str, int] = {}
        self.minimum = 0

    def set_counts(self, counts: dict[str, int], minimum: int = 0) -> None:
        self.counts, self.minimum = dict(counts), minimum
        self.schedule_draw()

    def _render(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot()
        _style(ax, "Images per class")
        if not self.counts:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "No data folder yet", ha="center", va="center", fontsize=FONT + 1, color="grey")
            return
        names = list(self.counts)[::-1]  # first class on top
        values = [self.counts[n] for n in names]
        colours = ["#e08a1e" if v < self.minimum else TRAIN_COLOUR for v in values]
        ax.barh(range(len(names)), values, color=colours)
        many = len(names) > 25
        ax.set_yticks(range(len(names)), [] if many else [_short(n) for n in names])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        if not many:
            for i, v in enumerate(values):
                ax.text(v, i, f" {v}", va="center", fontsize=FONT)
            ax.set_xlim(0, max(values) * 1.18 or 1)
        ax.set_xlabel("images", fontsize=FONT)


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


class QtTrainingPlot(_QtChart):
    """Loss, accuracy and learning rate per epoch of one run, or two runs overlaid (solid and dotted)."""

    KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(9, 2.8, parent)
        self.setMinimumSize(420, 200)
        self.runs: list[tuple[str, list[dict[str, Any]]]] = []
        self.lines: dict[tuple[int, str], Any] = {}
        self.placeholder = "Start a run to watch its learning curves here, epoch by epoch."

    def set_runs(self, runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> None:
        """[(label, [{"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr"}, ...])], at most two."""
        self.runs = [(label, [dict(r) for r in rows]) for label, rows in list(runs)[:2]]
        self.schedule_draw()

    def points(self, key: str, run: int = 0) -> list[tuple[float, float]]:
        """What the plot holds (as drawn) for one curve of one run."""
        line = self.lines.get((run, key))
        if line is None:
            return []
        return list(zip(map(float, line.get_xdata()), map(float, line.get_ydata())))

    def _render(self) -> None:
        self.figure.clear()
        self.lines = {}
        ax_loss, ax_acc, ax_lr = self.figure.subplots(1, 3)
        for ax, title in ((ax_loss, "Loss"), (ax_acc, "Accuracy (%)"), (ax_lr, "Learning rate")):
            _style(ax, title)
            ax.set_xlabel("epoch", fontsize=FONT)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not any(rows for _, rows in self.runs):
            for ax in (ax_loss, ax_acc, ax_lr):
                ax.set_xticks([])
                ax.set_yticks([])
            ax_acc.text(0.5, 0.5, self.placeholder, ha="center", va="center", wrap=True, fontsize=FONT + 1,
                        color="grey", transform=ax_acc.transAxes)
            return
        compare = len(self.runs) > 1
        for i, (label, rows) in enumerate(self.runs):
            style = RUN_STYLES[i % len(RUN_STYLES)]
            suffix = f" · {label}" if compare else ""
            epochs = [r["epoch"] for r in rows]
            for ax, key, colour, name, scale in (
                (ax_loss, "train_loss", TRAIN_COLOUR, "train", 1), (ax_loss, "val_loss", VAL_COLOUR, "validation", 1),
                (ax_acc, "train_acc", TRAIN_COLOUR, "train", 100), (ax_acc, "val_acc", VAL_COLOUR, "validation", 100),
                (ax_lr, "lr", LR_COLOUR, "lr", 1),
            ):
                xs = [e for e, r in zip(epochs, rows) if _finite(r.get(key))]
                ys = [r[key] * scale for r in rows if _finite(r.get(key))]
                if xs:
                    (line,) = ax.plot(xs, ys, style, color=colour, marker="o", markersize=3, label=name + suffix)
                    self.lines[(i, key)] = line
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax_lr.yaxis.get_offset_text().set_fontsize(FONT)
        ax_acc.set_ylim(-2, 102)
        ax_loss.legend(fontsize=FONT, loc="upper right")
        if compare:
            ax_acc.legend(fontsize=FONT - 1, loc="lower right")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
