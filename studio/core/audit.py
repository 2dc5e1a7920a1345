"""Find likely wrong labels, duplicates and outliers in a labelled image folder.

Every image is scored by a model that never saw it: a linear classifier on the
stored backbone features, trained k times on the other folds. An image whose
given class gets less probability than that class's own images get on average,
while another class gets at least its average, is a suspect (the confident-
learning rule); suspects are ranked by how far the other class beats the given
one. Duplicates come from studio.core.neardup, checked against the classes and
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
import torch

from studio.core.dataset import ScanReport
from studio.core.features import FeatureStore
from studio.core.neardup import exact_copy_groups, group_lists, merge_groups, near_duplicate_groups

FOLDS = 5
_L2 = 1e-2
_OUTLIER_NEIGHBOURS = 5


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
    good = report.good
    paths = [report.abspath(r) for r in good]
    feats = store.embed_files(paths, progress=progress, should_stop=should_stop)
    thumbs = store.thumbnails(paths)
    ok = ~np.isnan(feats).any(axis=1)
    skipped = [{"file": r.path, "reason": "could not be read for the audit"} for r, k in zip(good, ok) if not k]
    skipped += [{"file": r.path, "reason": r.problem} for r in report.bad]
    records = [r for r, k in zip(good, ok) if k]
    feats, thumbs = feats[ok], thumbs[ok]
    files = [r.path for r in records]
    labels = np.array([report.classes.index(r.class_name) for r in records], dtype=np.int64)
    probs = out_of_fold_probabilities(feats, labels, len(report.classes), folds=folds)
    suspects = rank_suspects(probs, labels, report.classes, files)
    hashes = store.hashes(paths)
    hashes = [h for h, k in zip(hashes, ok) if k]
    groups = merge_groups(near_duplicate_groups(feats, thumbnails=thumbs), exact_copy_groups(hashes))
    dups = describe_duplicates(groups, files, [r.class_name for r in records], split_of or {})
    return AuditResult(report.root, files, [r.class_name for r in records], suspects, dups,
                       find_outliers(feats, files), dataset_map(feats), skipped, overlay_version)


def _fit_linear(x: torch.Tensor, y: torch.Tensor, n_classes: int, steps: int = 60) -> torch.nn.Linear:
    """Multinomial logistic regression with a little L2, by L-BFGS on the whole set (small, so exact is cheap)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=steps, history_size=10,
                            line_search_fn="strong_wolfe")
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).float()
    weights = (len(y) / (n_classes * counts))  # balanced: a small class is not simply outvoted

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y, weight=weights) + _L2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def out_of_fold_probabilities(feats: np.ndarray, labels: np.ndarray, n_classes: int, *, folds: int = FOLDS,
                              seed: int = 0) -> np.ndarray:
    """(n, classes) probabilities, each row from a model trained without that image (stratified k-fold)."""
    n = len(labels)
    probs = np.full((n, n_classes), np.nan, dtype=np.float32)
    if n == 0:
        return probs
    x_all = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    mean, std = x_all.mean(0), x_all.std(0).clamp(min=1e-6)
    x_all = (x_all - mean) / std
    fold = _stratified_folds(labels, folds, seed)
    y_all = torch.from_numpy(labels)
    with torch.enable_grad():
        for k in range(max(fold.max() + 1, 1)):
            test, train = fold == k, fold != k
            if not test.any() or len(np.unique(labels[train])) < 2:
                continue
            head = _fit_linear(x_all[train], y_all[train], n_classes)
            with torch.no_grad():
                probs[test] = torch.softmax(head(x_all[test]), dim=1).numpy()
    return probs


def _stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fold[idx] = np.arange(len(idx)) % folds
    return fold


def rank_suspects(probs: np.ndarray, labels: np.ndarray, classes: list[str], files: list[str]) -> list[Suspect]:
    """Confident-learning suspects, most suspicious first.

    A class's threshold is the mean probability its own images give it. An image is a suspect when its
    given class is below that threshold and the likeliest other class reaches its own threshold or
    beats the given one; its score is that margin (other minus given). Classes with fewer than two
    images are not judged.
    """
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
        found.append(Suspect(files[i], classes[given], classes[best], round(float(probs[i, best] - probs[i, given]), 4),
                             round(float(probs[i, given]), 4), round(float(probs[i, best]), 4)))
    return sorted(found, key=lambda s: (-s.score, s.file))


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


def dataset_map(feats: np.ndarray) -> np.ndarray:
    """(n, 2) positions: the two main directions of the features (PCA), enough to see classes and strays."""
    if len(feats) < 2:
        return np.zeros((len(feats), 2), dtype=np.float32)
    centred = feats - feats.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:2].T).astype(np.float32)
