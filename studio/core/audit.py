"""Find likely wrong labels, duplicates and outliers in a labelled image folder.

Every image is scored by a model that never saw it: a linear classifier on the
stored backbone features, trained k times on the other folds. An image whose
given class gets less probability than that class's own images get on average,
while another class gets at least its average, is a suspect (the confident-
learning rule); suspects are ranked by how many times likelier the other class
is than the given one, in powers of ten (a log-odds margin: a difference of
probabilities saturates at 1 for every clear case and hides their order, and
ranking by the ratio found more of the planted wrong labels on both benchmark
sets). Duplicates come from studio.core.neardup, checked against the classes and
against a past run's split; outliers are images unlike their nearest neighbours.

The audit only reads: features are stored whole or not at all, and the result
is returned, not written, so a cancelled audit leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from studio.core.dataset import ScanReport
from studio.core.errors import Cancelled
from studio.core.features import FeatureStore
from studio.core.near_copies import near_copy_groups
from studio.core.neardup import group_lists, renumber

FOLDS = 5
_L2 = 1e-3
_STEPS = 150
_OUTLIER_NEIGHBOURS = 5
_CURVATURE_MARGIN = 1.25


@dataclass
class Suspect:
    file: str
    given: str
    suggested: str
    score: float
    confidence_given: float
    confidence_suggested: float


@dataclass
class DuplicateGroup:
    files: list[str]
    classes: list[str]
    kind: str  # "same class", "label conflict" or "leak" (split across a past run's train and validation)


@dataclass
class AuditResult:
    root: str
    files: list[str]
    given: list[str]
    suspected_labels: list[Suspect]
    duplicates: list[DuplicateGroup]
    outliers: list[dict[str, Any]]
    map_xy: np.ndarray
    skipped: list[dict[str, str]] = field(default_factory=list)
    overlay_version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "images": len(self.files), "overlay_version": self.overlay_version,
                "score": "log10 of how many times likelier the suggested class is than the given one",
                "suspected_labels": [asdict(s) for s in self.suspected_labels],
                "duplicates": [g.files for g in self.duplicates],
                "duplicate_groups": [asdict(g) for g in self.duplicates],
                "outliers": self.outliers, "skipped": self.skipped}


def run_audit(report: ScanReport, project_folder: str | Path, *, folds: int = FOLDS,
              split_of: dict[str, str] | None = None, progress: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None, overlay_version: int = 0) -> AuditResult:
    """Audit the usable images of `report` (already read through the label overlay, if any).

    `split_of` maps file to "train"/"val"/"test" from a past run, to find duplicates that leaked.
    """
    store = FeatureStore(project_folder)
    stop = should_stop or (lambda: False)
    good = report.good
    paths = [report.abspath(r) for r in good]
    feats = store.embed_files(paths, progress=progress, should_stop=should_stop)
    ok = ~np.isnan(feats).any(axis=1)
    skipped = [{"file": r.path, "reason": "could not be read for the audit"} for r, k in zip(good, ok) if not k]
    skipped += [{"file": r.path, "reason": r.problem} for r in report.bad]
    records = [r for r, k in zip(good, ok) if k]
    feats = feats[ok]
    files = [r.path for r in records]
    labels = np.array([report.classes.index(r.class_name) for r in records], dtype=np.int64)
    # One BLAS thread: these products are small, so a second thread gains little on an idle machine, and
    # on a busy one (the window's own thread, other programs) threads waiting on each other made the
    # k-fold step four times slower (19 s instead of 4.5 s for 1,800 images, measured).
    with threadpool_limits(limits=1, user_api="blas"):
        if stop():
            raise Cancelled()
        log_probs = out_of_fold_log_probabilities(feats, labels, len(report.classes), folds=folds)
        if stop():
            raise Cancelled()
        suspects = rank_suspects(np.exp(log_probs), labels, report.classes, files, log_probs=log_probs)
        groups = renumber(near_copy_groups(store, paths, should_stop=should_stop)[ok])
        dups = describe_duplicates(groups, files, [r.class_name for r in records], split_of or {})
        return AuditResult(report.root, files, [r.class_name for r in records], suspects, dups,
                           find_outliers(feats, files), dataset_map(feats), skipped, overlay_version)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """In float64, so a label the model finds a billion times less likely still has a finite logarithm."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _fit_linear(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = _STEPS,
                curvature: float | None = None) -> np.ndarray:
    """Multinomial logistic regression with a little L2 and class balancing: weights [(d+1), classes].

    Full-batch Nesterov gradient descent with the step from the data's largest curvature: a few
    hundred small matrix products, no optimiser library, the same answer every time.
    """
    xb = np.hstack([x, np.ones((len(x), 1), dtype=np.float32)])
    counts = np.maximum(np.bincount(y, minlength=n_classes), 1)
    sample_w = (len(y) / (n_classes * counts))[y].astype(np.float32)[:, None] / len(y)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    step = 1.0 / (curvature or _curvature(xb, sample_w))
    w = np.zeros((xb.shape[1], n_classes), dtype=np.float32)
    ahead = w.copy()
    for t in range(1, steps + 1):
        grad = xb.T @ ((_softmax(xb @ ahead) - onehot) * sample_w) + 2 * _L2 * ahead
        new = ahead - step * grad
        ahead = new + (t - 1) / (t + 2) * (new - w)
        w = new
    return w


def _curvature(xb: np.ndarray, sample_w: np.ndarray) -> float:
    """An upper bound of the loss's curvature: half the weighted data's largest eigenvalue, plus the L2 term."""
    return _largest_eigenvalue(xb, sample_w) / 2 + 2 * _L2


def _largest_eigenvalue(xb: np.ndarray, sample_w: np.ndarray, iterations: int = 20) -> float:
    v = np.ones(xb.shape[1], dtype=np.float32) / np.sqrt(xb.shape[1])
    value = 1.0
    for _ in range(iterations):
        u = xb.T @ ((xb @ v) * sample_w[:, 0])
        value = float(np.linalg.norm(u))
        v = u / max(value, 1e-12)
    return value * 1.05


def out_of_fold_probabilities(feats: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int = FOLDS,
                              seed: int = 0) -> np.ndarray:
    """(n, classes) probabilities, each row from a model trained without that image (stratified k-fold)."""
    return np.exp(out_of_fold_log_probabilities(feats, labels, n_classes, folds=folds, seed=seed))


def out_of_fold_log_probabilities(feats: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int = FOLDS,
                                  seed: int = 0) -> np.ndarray:
    """(n, classes) natural-log probabilities (float64), each row from a model trained without that image."""
    n = len(labels)
    probs = np.full((n, n_classes), np.nan, dtype=np.float64)
    if n == 0:
        return probs
    x_all = np.asarray(feats, dtype=np.float32)
    x_all = (x_all - x_all.mean(0)) / np.maximum(x_all.std(0), 1e-6)
    fold = _stratified_folds(labels, folds, seed)
    # Measured once on all images: each fold holds 80 % of them with the same class weighting, so its
    # curvature is close; the margin keeps the step safe (and saves four power iterations).
    counts = np.maximum(np.bincount(labels, minlength=n_classes), 1)
    weights = (n / (n_classes * counts))[labels].astype(np.float32)[:, None] / n
    curvature = _CURVATURE_MARGIN * _curvature(np.hstack([x_all, np.ones((n, 1), np.float32)]), weights)
    for k in range(int(fold.max()) + 1):
        test, train = fold == k, fold != k
        if not test.any() or len(np.unique(labels[train])) < 2:
            continue
        w = _fit_linear(x_all[train], labels[train], n_classes, curvature=curvature)
        probs[test] = _log_softmax(np.hstack([x_all[test], np.ones((int(test.sum()), 1), np.float32)]) @ w)
    return probs


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold[idx] = np.arange(len(idx)) % folds
    return fold


def rank_suspects(probs: np.ndarray, labels: np.ndarray, classes: list[str], files: list[str], *,
                  log_probs: np.ndarray | None = None) -> list[Suspect]:
    """Confident-learning suspects, most suspicious first.

    A class's threshold is the mean probability its own images give it. An image is a suspect when its
    given class is below that threshold and the likeliest other class reaches its own threshold or
    beats the given one; its score is log10(other / given): 2 means the suggested class is a hundred
    times likelier than the label. Pass `log_probs` (exact where probabilities round to 0). Classes
    with fewer than two images are not judged.
    """
    if log_probs is None:
        log_probs = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-300))
    n_classes = len(classes)
    scored = ~np.isnan(probs).any(axis=1)
    sizes = np.bincount(labels, minlength=n_classes)
    thresholds = np.array([probs[scored & (labels == c), c].mean() if (scored & (labels == c)).any() else 1.0
                           for c in range(n_classes)])
    found: list[Suspect] = []
    for i in np.flatnonzero(scored):
        given = labels[i]
        if sizes[given] < 2 or probs[i, given] >= thresholds[given]:
            continue
        others = np.where(np.arange(n_classes) != given, probs[i], -1.0)
        best = int(others.argmax())
        if others[best] < thresholds[best] and others[best] <= probs[i, given]:
            continue
        ratio = (log_probs[i, best] - log_probs[i, given]) / np.log(10)
        found.append(Suspect(files[i], classes[given], classes[best], round(float(ratio), 3),
                             float(f"{probs[i, given]:.3g}"), float(f"{probs[i, best]:.3g}")))
    return sorted(found, key=lambda s: (-s.score, s.file))


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def odds_text(score: float) -> str:
    """A suspect's score as a person reads it: how many times likelier the suggested class is than the
    label ("35×", "4,200×", "3.1·10⁸×"), so two clear cases still show which is clearer."""
    if score < 1:
        return f"{10 ** score:.1f}×"
    if score < 6:
        return f"{float(f'{10 ** score:.2g}'):,.0f}×"
    exponent = int(np.floor(score))
    return f"{10 ** (score - exponent):.1f}·10{str(exponent).translate(_SUPERSCRIPT)}×"


def describe_duplicates(groups: np.ndarray, files: list[str], classes: list[str],
                        split_of: dict[str, str]) -> list[DuplicateGroup]:
    found = []
    for members in group_lists(groups):
        names = sorted({classes[i] for i in members})
        splits = {split_of.get(files[i]) for i in members} - {None}
        if "train" in splits and splits & {"val", "test"}:
            kind = "leak"
        else:
            kind = "label conflict" if len(names) > 1 else "same class"
        found.append(DuplicateGroup([files[i] for i in members], names, kind))
    order = {"label conflict": 0, "leak": 1, "same class": 2}
    return sorted(found, key=lambda g: (order[g.kind], g.files[0]))


def find_outliers(feats: np.ndarray, files: list[str], limit: float = 0.02) -> list[dict[str, Any]]:
    """Images far from all others: low mean similarity to their nearest neighbours, by a robust cut-off."""
    n = len(feats)
    if n <= _OUTLIER_NEIGHBOURS + 1:
        return []
    closeness = np.empty(n, dtype=np.float32)
    for start in range(0, n, 1024):
        sims = feats[start:start + 1024] @ feats.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        top = -np.partition(-sims, _OUTLIER_NEIGHBOURS, axis=1)[:, :_OUTLIER_NEIGHBOURS]
        closeness[start:start + len(sims)] = top.mean(axis=1)
    median = float(np.median(closeness))
    spread = float(np.median(np.abs(closeness - median))) or 1e-6
    cut = median - 5 * spread
    order = np.argsort(closeness)[: max(1, int(n * limit))]
    return [{"file": files[i], "score": round(float((median - closeness[i]) / spread), 2)}
            for i in order if closeness[i] < cut]


def dataset_map(feats: np.ndarray, iterations: int = 30) -> np.ndarray:
    """(n, 2) positions: the two main directions of the features (PCA by subspace iteration, which needs
    only a few products with the data instead of a full decomposition), enough to see classes and strays."""
    if len(feats) < 3:
        return np.zeros((len(feats), 2), dtype=np.float32)
    centred = (feats - feats.mean(axis=0)).astype(np.float32)
    basis = np.random.default_rng(0).normal(size=(centred.shape[1], 2)).astype(np.float32)
    for _ in range(iterations):
        basis, _ = np.linalg.qr(centred.T @ (centred @ basis))
    return (centred @ basis).astype(np.float32)
