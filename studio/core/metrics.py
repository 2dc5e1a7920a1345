"""How good a model is, and what to do about it, in numbers and in words.

Pure numpy on label arrays and probabilities, so the evaluation of a run, a
test and the window all compute the same figures. Empty denominators give 0
rather than a warning: a class missing from a small validation split is
normal, not an error. The diagnostics turn the numbers and the training
history into sentences a domain expert can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from studio.core.diagnostic import Diagnostic
from studio.core.words import percent

__all__ = ["Diagnostic", "Metrics", "compute_metrics", "diagnose", "still_improving"]

SEVERITIES = ("error", "warning", "info")


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """int64 [n, n]: rows are the true class, columns the predicted one (as scikit-learn lays it out)."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{len(t)} true labels but {len(p)} predictions")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n):
        raise ValueError(f"labels must lie in 0..{n - 1}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


@dataclass
class ClassMetrics:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # true images of this class
    predicted: int  # images the model assigned to it


@dataclass
class Metrics:
    """Accuracy and per-class figures from one confusion matrix.

    Macro averages run over the classes that occur among the true labels or the predictions
    (scikit-learn's default), so a class absent from both does not drag them down.
    """

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_f1: float
    total: int
    per_class: list[ClassMetrics]
    confusion: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["confusion"] = self.confusion.tolist()
        return out


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class_metrics(cm: np.ndarray, classes: Sequence[str] | None = None) -> list[ClassMetrics]:
    cm = np.asarray(cm)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    names = list(classes) if classes is not None else [str(i) for i in range(len(cm))]
    return [ClassMetrics(names[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]),
                         int(predicted[i])) for i in range(len(cm))]


def compute_metrics(cm: np.ndarray, classes: Sequence[str] | None = None) -> Metrics:
    cm = np.asarray(cm, dtype=np.int64)
    rows = per_class_metrics(cm, classes)
    present = [r for r in rows if r.support or r.predicted]
    total = int(cm.sum())

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    weighted = sum(r.f1 * r.support for r in rows) / total if total else 0.0
    return Metrics(
        accuracy=float(np.trace(cm) / total) if total else 0.0,
        macro_precision=mean([r.precision for r in present]), macro_recall=mean([r.recall for r in present]),
        macro_f1=mean([r.f1 for r in present]), weighted_f1=float(weighted), total=total, per_class=rows,
        confusion=cm,
    )


@dataclass
class WrongExample:
    index: int
    path: str
    true: int
    predicted: int
    p_predicted: float  # how sure the model was of its wrong answer
    p_true: float  # what it gave the right answer


def most_wrong(paths: Sequence[str], y_true: Sequence[int], probs: np.ndarray, k: int = 20) -> list[WrongExample]:
    """The misclassified images the model was surest about, surest first.

    Confident mistakes are where mislabelled images and real blind spots hide; ties go to the
    image whose true class got less probability.
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    if len(paths) != len(t) or probs.shape[:1] != t.shape:
        raise ValueError("paths, labels and probabilities must have one entry per image")
    if not len(t):
        return []
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != t)
    rows = [WrongExample(int(i), str(paths[i]), int(t[i]), int(pred[i]), float(probs[i, pred[i]]),
                         float(probs[i, t[i]])) for i in wrong]
    rows.sort(key=lambda r: (-r.p_predicted, r.p_true, r.index))
    return rows[:k]


# ---------------------------------------------------------------- diagnostics


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def diagnose(history: Sequence[Mapping[str, Any]], metrics: Metrics | None, counts: Mapping[str, int],
             n_classes: int, *, message: str = "", imbalance_setting: str = "none", held_out: bool = True,
             similarity: Mapping[str, float | None] | None = None, solved: bool = False) -> list[Diagnostic]:
    """Plain-language findings about a run, most serious first, each with what to try next.

    history: per-epoch rows as in history.csv; metrics: of the evaluated split; counts:
    training images per class; message: the run's own failure message, if any (a run stopped by
    a NaN loss never writes that epoch to its history); held_out: False when `metrics` were
    measured on the training images, which then say nothing about generalizing; similarity: how
    close the evaluated images are to the training images (see `studio.core.leakage`); solved: the last
    layer was solved exactly, so its rounds converge to an answer that more time would not change.
    A class is blamed only when the run had finished learning: while the loss still falls,
    the cure is more training, not more images.
    """
    out: list[Diagnostic] = []
    out += _nan_loss(history, message)
    out += _learning(history, metrics, n_classes, held_out, solved)
    out += _data(counts, imbalance_setting)
    if similarity:
        from studio.core.leakage import leak_diagnostics

        out += leak_diagnostics(similarity, history)
    if metrics is not None and not any(d.data.get("improving") for d in out):
        out += _weak_classes(metrics)
        if 0 < metrics.total < 30:
            out.append(Diagnostic(
                "info", "Few images to judge by",
                f"Only {metrics.total} images were evaluated; each one moves the accuracy by "
                f"{100 / metrics.total:.1f} points, so small differences between runs mean little.",
                "Add images, or give validation a larger share (Data → Validation).",
            ))
    if not any(d.severity in ("error", "warning") for d in out):
        out.append(Diagnostic("info", "No problems found",
                              "Training and validation agree and every class is learned.", ""))
    return sorted(out, key=lambda d: SEVERITIES.index(d.severity))


def _nan_loss(history: Sequence[Mapping[str, Any]], message: str) -> list[Diagnostic]:
    bad = [row for row in history for key in ("train_loss", "val_loss")
           if row.get(key) is not None and not _finite(row.get(key))]
    if not bad and "nan" not in message.lower():
        return []
    where = f" at epoch {int(bad[0]['epoch'])}" if bad and bad[0].get("epoch") is not None else ""
    lrs = [row.get("lr") for row in history if _finite(row.get("lr"))]
    lower = f" (for example {lrs[0] / 10:g})" if lrs else ""
    return [Diagnostic(
        "error", "The loss became NaN",
        f"The training loss stopped being a number{where}: the weights blew up, and training could not go on.",
        f"Lower the learning rate tenfold{lower}, keep gradient clipping on, and check for broken images.",
    )]


def _learning(history: Sequence[Mapping[str, Any]], metrics: Metrics | None, n_classes: int,
              held_out: bool, solved: bool = False) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    rows = [r for r in history if _finite(r.get("train_acc"))]
    last = rows[-1] if rows else {}
    train_acc = last.get("train_acc")
    evaluated = metrics.accuracy if metrics is not None and metrics.total and held_out else None
    val_acc = evaluated if evaluated is not None else last.get("val_acc")
    # Training and validation accuracy of the same epoch, when the history has both.
    gap_val = last.get("val_acc") if _finite(last.get("val_acc")) else val_acc
    chance = 1.0 / max(n_classes, 1)
    if evaluated is not None:
        chance = max(chance, max(r.support for r in metrics.per_class) / metrics.total)  # "always the biggest"
    if _finite(val_acc) and n_classes > 1 and val_acc <= chance + 0.05:
        if _finite(train_acc) and train_acc >= chance + 0.25:
            out.append(Diagnostic(
                "error", "Training images are learned, new ones are not",
                f"Training accuracy reached {percent(train_acc, 0)} but validation stays at {percent(val_acc, 0)}, "
                f"no better than guessing ({percent(chance, 0)}): the model memorised the training images.",
                "Switch on augmentation (Augment → Natural photos), start from a pretrained network (Model → "
                "EfficientNet-Lite0 works offline), and add images; check that the training and validation "
                "folders show the same kinds of pictures.",
            ))
        else:
            out.append(Diagnostic(
                "error", "Accuracy is stuck at chance",
                f"Accuracy is {percent(val_acc, 0)}, what guessing gives ({percent(chance, 0)}): the model has not "
                "learned to tell the classes apart.",
                "Check that each folder really holds its class; try a learning rate ten times lower, a "
                "pretrained backbone, or more epochs.",
            ))
        return out
    if _finite(train_acc) and _finite(gap_val) and train_acc - gap_val > 0.15:
        out.append(Diagnostic(
            "warning", "Overfitting: training is far ahead of validation",
            f"The model is right on {percent(train_acc, 0)} of its training images but only {percent(gap_val, 0)} of "
            "images it has not seen: it learns the training images by heart.",
            "Switch on augmentation (Augment → Natural photos), start from a pretrained network (Model → "
            "EfficientNet-Lite0), add images, or keep Stop early on; the saved model is already the best epoch's.",
            {"train_acc": train_acc, "val_acc": gap_val},
        ))
    if not solved and still_improving(history) \
            and not (_finite(train_acc) and _finite(gap_val) and train_acc - gap_val > 0.15):
        last_val = gap_val if _finite(gap_val) else train_acc
        out.append(Diagnostic(
            "warning" if _finite(last_val) and last_val < 0.95 else "info", "Still improving when training ended",
            f"The validation loss was still falling in the last epochs (accuracy {percent(last_val, 0)}): "
            "the model had not finished learning.",
            "Train longer: on the Train page choose 'about 10 minutes', or raise Epochs.",
            {"improving": True},
        ))
    return out


def still_improving(history: Sequence[Mapping[str, Any]], window: int = 3) -> bool:
    """The last epoch is the best one so far and the recent trend is clearly downhill.

    Uses the validation loss when there is one (training loss otherwise): it falls smoothly
    while accuracy moves in steps, and it keeps falling as long as more epochs would help.
    """
    key = "val_loss" if sum(_finite(r.get("val_loss")) for r in history) >= 2 else "train_loss"
    losses = [float(r[key]) for r in history if _finite(r.get(key))]
    if len(losses) < 2:
        return False
    recent = losses[-window:]
    best_earlier = min(losses[:-1])
    falling = recent[-1] < recent[0] * 0.97 if len(recent) >= 2 else False
    return losses[-1] <= best_earlier * 0.995 and falling


def _data(counts: Mapping[str, int], imbalance_setting: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    present = dict(counts)
    small = {c: n for c, n in present.items() if n < 10}
    if small:
        listed = ", ".join(f"{c} ({n})" for c, n in sorted(small.items(), key=lambda kv: kv[1]))
        out.append(Diagnostic(
            "warning", "Some classes have very few images",
            f"Training images per class: {listed}. Under about ten examples a class cannot be learned reliably.",
            "Add images to these classes (50 or more each is a good target); until then a pretrained "
            "backbone copes best with few images.",
            {"classes": small},
        ))
    if len(present) > 1 and min(present.values()) > 0:
        big = max(present, key=present.get)
        low = min(present, key=present.get)
        ratio = present[big] / present[low]
        if ratio >= 3:
            on = imbalance_setting not in ("", "none")
            out.append(Diagnostic(
                "warning" if not on else "info", "Classes are imbalanced",
                f"{big} has {present[big]} training images, {low} only {present[low]} ({ratio:.1f}×): the model "
                "is drawn toward the larger classes.",
                f"Imbalance handling ({imbalance_setting}) is already on; adding images to {low} helps most."
                if on else "Turn on class weighting (Train → Class sizes: weighted loss, or balanced sampler), "
                f"or add images to {low}.",
                {"ratio": ratio},
            ))
    return out


def _weak_classes(metrics: Metrics) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if metrics.accuracy < 0.5:
        return out  # the model as a whole is the problem, already reported
    cm = metrics.confusion
    for i, row in enumerate(metrics.per_class):
        if row.support >= 3 and row.recall < 0.5:
            off = cm[i].copy()
            off[i] = 0
            other = metrics.per_class[int(off.argmax())].name if off.any() else ""
            taken = f"; it is most often taken for {other}" if other else ""
            found = f"Only {percent(row.recall, 0)}" if row.recall else "None"
            out.append(Diagnostic(
                "warning", f"{row.name} is often missed",
                f"{found} of the {row.support} {row.name} images were recognised{taken}.",
                f"Look through its misclassified images: add more varied {row.name} examples and check for "
                "wrong labels.",
                {"class": row.name, "recall": row.recall, "confused_with": other},
            ))
    return out
