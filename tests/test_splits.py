"""Splits by group: declared units and near-duplicate clusters never straddle train/val/test."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from studio.core.config import ConfigError, DataConfig
from studio.core.splits import (
    GroupingError,
    auto_test_fraction,
    build_groups,
    check_no_straddle,
    declared_keys,
    group_split,
    plan_split,
)


def _patients(n_patients: int = 24, per_patient: int = 6, classes: tuple[str, ...] = ("normal", "tumour"),
              seed: int = 0) -> tuple[list[str], list[int]]:
    """tumour/patient_007/P007_03.png style paths; each patient has one class, sizes vary."""
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for p in range(n_patients):
        label = p % len(classes)
        for k in range(int(per_patient + rng.integers(-2, 3))):
            paths.append(f"{classes[label]}/patient_{p:03d}/P{p:03d}_{k:02d}.png")
            labels.append(label)
    return paths, labels


def _side_of_each_group(keys: list[str | None], split: dict[str, list[int]]) -> dict[str, set[str]]:
    sides: dict[str, set[str]] = {}
    for name, idx in split.items():
        for i in idx:
            sides.setdefault(str(keys[i]), set()).add(name)
    return sides


@pytest.mark.parametrize("rule", ["folder", r"^(P\d+)_"])
def test_declared_groups_stay_on_one_side_and_classes_are_stratified(rule: str) -> None:
    paths, labels = _patients()
    grouping = build_groups(paths, rule)
    assert grouping.count == 24 and grouping.declared == len(paths)
    split = group_split(labels, grouping.ids, 0.2, 0.2, seed=3)
    keys = declared_keys(paths, rule)
    assert all(len(s) == 1 for s in _side_of_each_group(keys, split).values())
    check_no_straddle(grouping.ids, split)
    for name in ("train", "val", "test"):
        per_class = Counter(labels[i] for i in split[name])
        assert set(per_class) == {0, 1}, f"{name} lacks a class: {per_class}"
    assert 0.45 < len(split["train"]) / len(paths) < 0.75


def test_one_patient_in_two_class_folders_is_one_group() -> None:
    paths = ["normal/patient_1/a.png", "tumour/patient_1/b.png", "normal/patient_2/c.png", "tumour/patient_3/d.png"]
    ids = build_groups(paths, "folder").ids
    assert ids[0] == ids[1] and len(set(ids.tolist())) == 3


def test_near_duplicate_clusters_merge_with_declared_units() -> None:
    paths = ["a/x1.png", "a/x2.png", "a/y1.png", "b/z1.png"]
    grouping = build_groups(paths, "", duplicate_ids=np.array([0, 1, 1, 2]))
    assert grouping.ids[1] == grouping.ids[2] and grouping.ids[0] != grouping.ids[1]
    assert grouping.near_duplicates == 2


def test_planted_near_duplicate_clusters_never_straddle() -> None:
    labels = np.repeat([0, 1, 2], 60)
    duplicate_ids = np.arange(len(labels))
    for start in range(0, len(labels), 6):  # every sixth image has two near-copies beside it
        duplicate_ids[start:start + 3] = start
    paths = [f"c{y}/img_{i}.png" for i, y in enumerate(labels)]
    plan = plan_split(paths, [f"c{y}" for y in labels], labels.tolist(), val_fraction=0.2, test_fraction=-1,
                      seed=0, duplicate_ids=duplicate_ids)
    sides: dict[int, set[str]] = {}
    for (_, _, side), g in zip(plan.rows, duplicate_ids):
        sides.setdefault(int(g), set()).add(side)
    assert all(len(s) == 1 for s in sides.values())
    assert plan.test_fraction == 0.2 and {r[2] for r in plan.rows} == {"train", "val", "test"}


@pytest.mark.parametrize("rule, words", [
    ("^(P\\d+_", "not a valid pattern"),
    ("^P\\d+_", "exactly one"),
    ("(a)(b)", "exactly one"),
    ("folder:0", "folder:N"),
])
def test_bad_rule_is_one_line_naming_the_option(rule: str, words: str) -> None:
    with pytest.raises(GroupingError) as caught:
        DataConfig(root="x", group_by=rule).validate()
    message = str(caught.value)
    assert message.startswith("group-by:") and words in message and "\n" not in message
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize("rule", [r"^(Q\d+)_", "folder:3"])
def test_rule_matching_nothing_is_refused(rule: str) -> None:
    paths, _ = _patients(4)
    with pytest.raises(GroupingError, match="group-by: .*no groups could be made"):
        build_groups(paths, rule)


def test_images_outside_the_rule_become_their_own_groups() -> None:
    paths = ["a/P1_x.png", "a/P1_y.png", "a/other.png", "b/P2_z.png"]
    grouping = build_groups(paths, r"^(P\d+)_")
    assert grouping.count == 3 and grouping.declared == 3
    assert any("do not fit" in n for n in grouping.notes)


def test_test_share_is_automatic_above_the_floor_and_explained_below() -> None:
    assert auto_test_fraction([0] * 30 + [1] * 40) == (0.2, "")
    fraction, why = auto_test_fraction([0] * 29 + [1] * 400)
    assert fraction == 0.0 and "29" in why and "30" in why


def test_every_class_keeps_training_images_with_few_big_groups() -> None:
    labels = [0] * 10 + [1] * 10
    groups = np.array([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5)
    split = group_split(labels, groups, 0.2, 0.2, seed=0)
    assert {labels[i] for i in split["train"]} == {0, 1}
    check_no_straddle(groups, split)


def test_split_is_seeded() -> None:
    paths, labels = _patients()
    ids = build_groups(paths, "folder").ids
    assert group_split(labels, ids, 0.2, 0.2, 5) == group_split(labels, ids, 0.2, 0.2, 5)
    assert group_split(labels, ids, 0.2, 0.2, 5) != group_split(labels, ids, 0.2, 0.2, 6)


def test_run_records_groups_and_keeps_patients_together(tmp_path: Path) -> None:
    from PIL import Image

    from studio.core.config import RunConfig
    from studio.core.runfiles import read_split, read_split_groups
    from studio.core.train import Trainer

    rng = np.random.default_rng(0)
    for p in range(8):
        cls = ("red", "blue")[p % 2]
        folder = tmp_path / "d" / cls / f"patient_{p}"
        folder.mkdir(parents=True)
        for k in range(5):
            base = (200, 40, 40) if cls == "red" else (40, 40, 200)
            arr = np.clip(np.array(base) + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{k}.png")
    cfg = RunConfig()
    cfg.data.root, cfg.data.group_by, cfg.data.near_duplicates = str(tmp_path / "d"), "folder", False
    cfg.recipe.mode = "manual"
    cfg.model.image_size, cfg.model.blocks, cfg.model.width, cfg.train.epochs = 16, 1, 4, 1
    result = Trainer(cfg, project=tmp_path / "p").run()
    rows, groups = read_split(Path(result.run_dir)), read_split_groups(Path(result.run_dir))
    sides: dict[str, set[str]] = {}
    group_of: dict[str, set] = {}
    for (path, _, side), g in zip(rows, groups):
        sides.setdefault(path.split("/")[1], set()).add(side)
        group_of.setdefault(path.split("/")[1], set()).add(g)
    # One recorded group per patient folder, a different one for each patient.
    assert all(len(g) == 1 for g in group_of.values()) and len(set().union(*group_of.values())) == 8
    assert len(sides) == 8 and all(len(s) == 1 for s in sides.values())
    assert "Split by group" in (Path(result.run_dir) / "report.md").read_text()


def test_planted_copies_found_from_the_pixels_never_straddle_a_split(tmp_path: Path) -> None:
    """Resized, re-encoded and 5 % shifted copies of a picture land on one side, through the feature store."""
    from PIL import Image

    from studio.core.splits import near_duplicate_ids

    skdata = pytest.importorskip("skimage.data")
    photos = [skdata.astronaut(), skdata.coffee()]
    paths, labels, origin = [], [], []
    for cls in range(2):
        folder = tmp_path / "d" / f"c{cls}"
        folder.mkdir(parents=True)
        for k in range(6):
            y, x = 60 * (k // 3), 120 * (k % 3)  # six distinct parts of one photograph per class
            big = Image.fromarray(photos[cls][y:y + 128, x:x + 128])
            img = big.resize((64, 64))
            variants = {"orig.png": img, "small.png": img.resize((48, 48)), "jpeg.jpg": img,
                        "shift.png": big.crop((6, 6, 128, 128)).resize((64, 64))}
            for name, im in variants.items():
                path = folder / f"{k}_{name}"
                im.save(path, quality=70) if name.endswith(".jpg") else im.save(path)
                paths.append(str(path))
                labels.append(cls)
                origin.append(cls * 10 + k)
    ids = near_duplicate_ids(str(tmp_path / "p"), paths)
    for o in set(origin):
        assert len({int(ids[i]) for i in range(len(paths)) if origin[i] == o}) == 1, o
    assert len(set(ids.tolist())) == 12
    rel = [p.split("/d/", 1)[1] for p in paths]
    plan = plan_split(rel, [r.split("/")[0] for r in rel], labels, val_fraction=0.3, test_fraction=0.0, seed=1,
                      duplicate_ids=ids)
    sides: dict[int, set[str]] = {}
    for (_, _, side), o in zip(plan.rows, origin):
        sides.setdefault(o, set()).add(side)
    assert all(len(s) == 1 for s in sides.values()) and {r[2] for r in plan.rows} == {"train", "val"}
