"""Splits that cannot leak: whole groups of related images go to one side.

Two images of the same patient, field plot or production batch, or two near-copies of one
picture (re-encoded, resized, a few pixels shifted), teach the model the same thing. If one
is trained on and the other validated on, the validation figure measures memory, not skill.
So a split assigns *groups*, never single images. A group is the union of what the user
declared (a sub-folder level below the class folder, or a file-name pattern) and the
near-duplicate clusters found from image features.

The held-out test share is carved first, from whole groups, and only then is validation
taken from what is left: nothing that chooses epochs or settings needs the test images.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from studio.core.config import AUTO_TEST_SHARE, TEST_FLOOR
from studio.core.group_rule import GroupingError, check_rule, describe_rule, folder_level

__all__ = ["GroupingError", "check_rule", "describe_rule", "folder_level", "plan_split", "group_split"]

# Below this many images in some class, a test share would be too small to mean anything
# (one image moves the figure by more than three points) and is better spent on training.
TEST_FLOOR_PER_CLASS = TEST_FLOOR
DEFAULT_TEST_FRACTION = AUTO_TEST_SHARE
@dataclass
class Grouping:
    """Which group each image belongs to, and how the groups were made (recorded with the split)."""

    ids: np.ndarray  # one group id per image
    rule: str = ""  # the user's declared rule, "" for none
    declared: int = 0  # images whose group came from the rule
    near_duplicates: int = 0  # images that share a near-duplicate cluster with another image
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(len(np.unique(self.ids))) if len(self.ids) else 0

    def describe(self) -> str:
        parts = []
        if self.rule:
            parts.append(f"grouped by {describe_rule(self.rule)} ({self.declared} images in declared groups)")
        if self.near_duplicates:
            parts.append(f"{self.near_duplicates} near-duplicate images kept together")
        return "; ".join(parts) or "every image on its own"


def declared_keys(paths: Sequence[str], rule: str) -> list[str | None]:
    """The unit each image belongs to by the user's rule; None where the rule says nothing.

    `paths` are relative to the data root (class/..../file). A unit is named without its class,
    so one patient's images in two class folders still form one group.
    """
    check_rule(rule)
    if not rule:
        return [None] * len(paths)
    level = folder_level(rule)
    keys: list[str | None] = []
    if level:
        for path in paths:
            parts = path.split("/")
            keys.append("/".join(parts[1:level + 1]) if len(parts) > level + 1 else None)
    else:
        compiled = re.compile(rule)
        for path in paths:
            found = compiled.search(path.rsplit("/", 1)[-1])
            keys.append(found.group(1) if found and found.group(1) else None)
    if paths and all(k is None for k in keys):
        what = (f"no image lies {level} sub-folder level(s) below its class folder" if level
                else "it matches no file name")
        raise GroupingError(f"{rule!r}: {what}, so no groups could be made")
    return keys


def build_groups(paths: Sequence[str], rule: str = "", duplicate_ids: np.ndarray | None = None) -> Grouping:
    """Merge declared units and near-duplicate clusters into one group id per image (union-find)."""
    n = len(paths)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(members: list[int]) -> None:
        root = find(members[0])
        for m in members[1:]:
            parent[find(m)] = root

    keys = declared_keys(paths, rule)
    for members in _members(keys).values():
        join(members)
    near = 0
    if duplicate_ids is not None:
        clusters = _members([int(g) for g in duplicate_ids])
        for members in clusters.values():
            if len(members) > 1:
                near += len(members)
                join(members)
    roots = [find(i) for i in range(n)]
    _, ids = np.unique(np.asarray(roots, dtype=np.int64), return_inverse=True) if n else (None, np.zeros(0, int))
    declared = sum(k is not None for k in keys)
    notes = []
    if rule and declared < n:
        notes.append(f"{n - declared} image(s) do not fit the grouping {describe_rule(rule)} and each count as "
                     "a group of their own.")
    return Grouping(np.asarray(ids, dtype=np.int64), rule, declared, near, notes)


def _members(keys: Sequence[object]) -> dict[object, list[int]]:
    found: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            found.setdefault(key, []).append(i)
    return found


def auto_test_fraction(labels: Sequence[int], floor: int = TEST_FLOOR_PER_CLASS) -> tuple[float, str]:
    """The test share to use when the user did not choose one, and, when it is none, why."""
    array = np.asarray(labels)
    counts = np.bincount(array[array >= 0]) if len(array) else np.zeros(0, int)
    present = counts[counts > 0]
    if len(present) and present.min() >= floor:
        return DEFAULT_TEST_FRACTION, ""
    smallest = int(present.min()) if len(present) else 0
    return 0.0, (f"No held-out test set: the smallest class has {smallest} images, fewer than the {floor} per "
                 "class a trustworthy test figure needs. Validation accuracy is the figure shown.")


def group_split(labels: Sequence[int], groups: np.ndarray, val_fraction: float, test_fraction: float,
                seed: int) -> dict[str, list[int]]:
    """Seeded split of whole groups, stratified by class as far as the groups allow.

    Test groups are chosen first, then validation groups from what remains. Groups go in
    random order, largest first, each to the split whose per-class quota it fills best without
    overshooting; a class keeps at least one training group whatever the fractions say.
    Negative labels (unusable images) go nowhere.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
                         "between 0 and 1 and leave room for training images")
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    usable = labels >= 0
    n_classes = int(labels[usable].max()) + 1 if usable.any() else 0
    totals = np.bincount(labels[usable], minlength=n_classes).astype(float)
    comp = _composition(labels, groups, usable, n_classes)
    rng = np.random.default_rng(seed)
    order = list(comp)
    rng.shuffle(order)
    order.sort(key=lambda g: -comp[g].sum())  # stable: random among equals
    assigned: dict[int, str] = {}
    remaining = totals.copy()
    for name, fraction in (("test", test_fraction), ("val", val_fraction / max(1e-9, 1 - test_fraction))):
        if fraction <= 0:
            continue
        quota = np.floor(remaining * fraction + 0.5)
        taken = _fill(order, comp, assigned, quota, remaining, name)
        remaining -= taken
    split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i in np.flatnonzero(usable):
        split[assigned.get(int(groups[i]), "train")].append(int(i))
    return {name: sorted(idx) for name, idx in split.items()}


def _composition(labels: np.ndarray, groups: np.ndarray, usable: np.ndarray, n_classes: int
                 ) -> dict[int, np.ndarray]:
    comp: dict[int, np.ndarray] = {}
    for g, y in zip(groups[usable], labels[usable]):
        comp.setdefault(int(g), np.zeros(n_classes))[y] += 1
    return comp


def _fill(order: list[int], comp: dict[int, np.ndarray], assigned: dict[int, str], quota: np.ndarray,
          remaining: np.ndarray, name: str) -> np.ndarray:
    """Give `name` whole groups until each class's quota is met; never a class's last training image."""
    taken = np.zeros_like(quota)
    for g in order:
        if g in assigned:
            continue
        c = comp[g]
        classes = c > 0
        need = quota - taken
        if not (need[classes] > 0).any():
            continue
        # A group may overshoot a class's quota by at most half of itself, so one huge group
        # cannot swallow the validation share, yet a class of few big groups still gets one.
        over = np.maximum(0, taken + c - quota)[classes].sum()
        if over > 0.5 * c.sum() and (taken[classes] > 0).any():
            continue
        if ((remaining - taken - c)[classes] < 1).any():
            continue  # that class would have no training image left
        assigned[g] = name
        taken += c
        if (taken >= quota).all():
            break
    return taken


def check_no_straddle(groups: np.ndarray, split: dict[str, list[int]]) -> None:
    """Raise if any group lies on two sides; a guard for callers that edit splits by hand."""
    side: dict[int, str] = {}
    for name, idx in split.items():
        for i in idx:
            g = int(groups[i])
            if side.setdefault(g, name) != name:
                raise AssertionError(f"group {g} is in both {side[g]} and {name}")


@dataclass
class SplitPlan:
    """A run's split: (path, class, split) rows, group ids in the same order, and what made them."""

    rows: list[tuple[str, str, str]]
    groups: list[int]
    grouping: Grouping
    test_fraction: float
    notes: list[str] = field(default_factory=list)


def plan_split(paths: Sequence[str], class_names: Sequence[str], labels: Sequence[int], *, val_fraction: float,
               test_fraction: float, seed: int, rule: str = "", duplicate_ids: np.ndarray | None = None
               ) -> SplitPlan:
    """Groups, the automatic test share and the split itself, for one list of usable images."""
    grouping = build_groups(paths, rule, duplicate_ids)
    notes = list(grouping.notes)
    if test_fraction < 0:
        test_fraction, why = auto_test_fraction(labels)
        if why:
            notes.append(why)
    parts = group_split(labels, grouping.ids, val_fraction, test_fraction, seed)
    which = {i: name for name, idx in parts.items() for i in idx}
    rows = [(p, c, which[i]) for i, (p, c) in enumerate(zip(paths, class_names))]
    if grouping.count < len(paths):
        notes.append(f"Split by group: {grouping.describe()}; a group is never on both sides of the split.")
    return SplitPlan(rows, [int(g) for g in grouping.ids], grouping, test_fraction, notes)


def near_duplicate_ids(project_folder: str, files: Sequence[str], *, progress=None, should_stop=None
                       ) -> np.ndarray:
    """Near-duplicate cluster per file, from the project's cached image features (and its remembered groups)."""
    from studio.core.features import FeatureStore
    from studio.core.near_copies import near_copy_groups

    return near_copy_groups(FeatureStore(project_folder), list(files), progress=progress, should_stop=should_stop)
