"""Confidence that means what it says: one temperature fitted on validation, and how far off it was.

A network trained to low loss on its training images is usually over-confident on
others: its "95 %" is right less often than 95 % of the time. Dividing the logits
by one temperature, chosen to minimise the negative log-likelihood of the
validation images, fixes most of that without changing any answer (the order of
the classes is the same at every temperature). The expected calibration error (ECE)
and a reliability diagram say how far confidence and accuracy were apart, before
and after.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio.core.atomic import write_with

T_MIN, T_MAX = 0.1, 20.0  # beyond these the logits are broken, not mis-scaled
ECE_BINS = 15


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes at `temperature`."""
    return float(F.cross_entropy(logits.double() / temperature, labels.long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises validation NLL; 1.0 when there is nothing to fit on.

    Searched over log T, so the search cannot cross zero; the logits are those of the un-augmented
    validation images, the images predictions will resemble.
    """
    if logits.numel() == 0 or len(labels) < 2:
        return 1.0
    z = logits.detach().double()
    y = labels.long()
    if bool((z.argmax(1) == y).all()):
        return _all_right(z)
    return _search(z, y)


def _all_right(z: torch.Tensor) -> float:
    """Every validation answer right: the likelihood keeps rising as the temperature falls toward zero,
    which would make every answer 100 %. Sharpen only until the mean confidence reaches n/(n+1), the
    accuracy one would expect after n successes (Laplace's rule), and never soften.
    """
    n = len(z)
    target = n / (n + 1.0)

    def mean_confidence(t: float) -> float:
        return float(torch.softmax(z / t, 1).max(1).values.mean())

    if mean_confidence(1.0) >= target:
        return 1.0
    low, high = math.log(T_MIN), 0.0  # mean confidence falls as the temperature rises
    if mean_confidence(T_MIN) <= target:
        return T_MIN
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if mean_confidence(math.exp(mid)) > target else (low, mid)
    return math.exp((low + high) / 2)


def _search(z: torch.Tensor, y: torch.Tensor) -> float:
    """Golden-section search over log T between the bounds.

    The NLL is convex in 1/T, so along log T it has a single minimum: a bracketing search finds it to
    machine precision without step sizes, gradients or line searches that can stall on a flat stretch
    (as a gradient method can when a few hundred validation images are nearly all right), and it can
    never step outside the bounds.
    """
    def loss(log_t: float) -> float:
        return nll(z, y, math.exp(log_t))

    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    low, high = math.log(T_MIN), math.log(T_MAX)
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    while high - low > 1e-6:
        if fa <= fb:  # the minimum lies left of b
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    t = math.exp((low + high) / 2)
    if not math.isfinite(loss(math.log(t))):
        return 1.0
    # A flat likelihood (logits that carry nothing) gains nothing from a temperature: leave them alone.
    return t if nll(z, y, t) < nll(z, y, 1.0) else 1.0


def calibrated(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits.float() / float(temperature), dim=1)


@dataclass
class Reliability:
    """Per confidence bin: mean confidence, observed accuracy and image count (empty bins dropped)."""

    confidence: list[float]
    accuracy: list[float]
    counts: list[int]
    ece: float


def reliability(probabilities: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                bins: int = ECE_BINS) -> Reliability:
    """Equal-width bins of top-class confidence; ECE is the count-weighted gap between the two curves."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.size == 0:
        return Reliability([], [], [], 0.0)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out = Reliability([], [], [], 0.0)
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if not n:
            continue
        c, a = float(conf[mask].mean()), float(correct[mask].mean())
        out.confidence.append(c)
        out.accuracy.append(a)
        out.counts.append(n)
        out.ece += n / len(y) * abs(c - a)
    return out


def expected_calibration_error(probabilities: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                               bins: int = ECE_BINS) -> float:
    return reliability(probabilities, labels, bins).ece


def plot_reliability(before: Reliability, after: Reliability, path: str | Path, title: str = "") -> Path:
    """Confidence against how often the model was right: the diagonal is honest confidence.

    Drawn on the Agg canvas directly (no pyplot), so it is safe off the main thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#9aa0a6", linestyle="--", linewidth=1, label="perfectly honest")
    for rel, colour, name in ((before, "#d93025", "as trained"), (after, "#1a73e8", "calibrated")):
        if rel.counts:
            sizes = 12 + 120 * np.asarray(rel.counts) / max(rel.counts)
            ax.plot(rel.confidence, rel.accuracy, color=colour, linewidth=1.5,
                    label=f"{name} (calibration error {100 * rel.ece:.1f}%)")
            ax.scatter(rel.confidence, rel.accuracy, s=sizes, color=colour, alpha=0.7)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence the model gave (top class)")
    ax.set_ylabel("share of those answers that were right")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        write_with(path, lambda handle: fig.savefig(handle, format="png"))
    return path
