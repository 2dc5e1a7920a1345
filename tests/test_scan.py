"""dataset: the scan finds what ImageFolder would, reports every bad file, writes nothing."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from studio.core.dataset import DatasetError, ScanCancelled, ScanReport, scan, stratified_split
from tests.hostile import EMPTY_CLASS, EXPECTED_REASONS, UNICODE_CLASS, make_hostile_folder


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile")
    return root, make_hostile_folder(root)


@pytest.fixture(scope="module")
def report(hostile: tuple[Path, dict[str, str]]) -> ScanReport:
    return scan(hostile[0])


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (folders too) with size and mtime: any write changes it."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            state[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return state


def _write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (3, 2), (i, 0, 0)).save(folder / f"{i:03d}.png")


def test_hostile_outcomes_and_reasons(hostile: tuple[Path, dict[str, str]], report: ScanReport) -> None:
    _, expected = hostile
    by_path = {r.path: r for r in report.records}
    assert set(by_path) == {rel for rel, outcome in expected.items() if outcome in ("ok", "bad")}
    for rel, outcome in expected.items():
        if outcome == "ok":
            assert by_path[rel].ok and by_path[rel].problem == "" and by_path[rel].label >= 0, rel
            assert report.classes[by_path[rel].label] == by_path[rel].class_name == rel.split("/")[0]
        elif outcome == "bad":
            assert not by_path[rel].ok and by_path[rel].label == -1, rel
            assert EXPECTED_REASONS[rel] in by_path[rel].problem, (rel, by_path[rel].problem)
    assert report.hidden_skipped == sum(outcome == "hidden" for outcome in expected.values())
    assert report.stray_files == [rel for rel, outcome in expected.items() if outcome == "stray"]


def test_hostile_classes_counts_and_sizes(report: ScanReport) -> None:
    assert report.classes == ["cats", "dogs", UNICODE_CLASS]
    assert report.empty_classes == [EMPTY_CLASS]
    assert report.counts() == {"cats": 12, "dogs": 11, UNICODE_CLASS: 2}
    assert report.usable and report.imbalance_ratio() == 6.0
    sizes = {r.path: (r.width, r.height) for r in report.records}
    assert sizes["cats/exif_rotated.jpg"] == (16, 30)  # as a viewer shows it
    assert sizes["dogs/wide_4000x3.png"] == (4000, 3)
    assert sizes["cats/corrupt.jpg"] == (0, 0)
    assert [r.path for r in report.records] == sorted((r.path for r in report.records),
                                                      key=lambda p: (p.split("/")[0], p))


def test_scan_writes_nothing(hostile: tuple[Path, dict[str, str]]) -> None:
    root = hostile[0]
    before = _tree_state(root)
    scan(root)
    scan(root, check_pixels=False)
    assert _tree_state(root) == before


def test_class_order_and_samples_match_imagefolder(tmp_path: Path) -> None:
    for name in ["b", "B", "_under", "a-b", "a", "Zebra", "ü"]:
        _write_images(tmp_path / name, 2)
    _write_images(tmp_path / "a" / "nested", 1)
    torchvision_view = ImageFolder(str(tmp_path))
    ours = scan(tmp_path)
    assert ours.classes == torchvision_view.classes
    assert sorted((r.path, r.label) for r in ours.good) == sorted(
        (Path(p).relative_to(tmp_path).as_posix(), t) for p, t in torchvision_view.samples)


def test_report_round_trips_through_json(report: ScanReport) -> None:
    restored = ScanReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored == report
    assert restored.counts() == report.counts()


def test_warnings_and_table(report: ScanReport) -> None:
    warnings = "\n".join(report.warnings())
    assert f"class '{UNICODE_CLASS}' has only 2 images: aim for at least 20" in warnings
    assert f"'cats' has 6× more images than '{UNICODE_CLASS}'" in warnings
    assert f"'{EMPTY_CLASS}' has no usable images" in warnings
    assert "README.txt" not in warnings and "1 file directly in the data folder is ignored" in warnings
    table = report.format_table()
    cats_row = next(line for line in table.splitlines() if line.startswith("cats "))
    assert cats_row.split()[:3] == ["cats", "12", "3"] and cats_row.endswith("#" * 30)
    assert "dogs/bomb.png" in table and "too large" in table and "Warnings:" in table


def test_progress_and_cancel(tmp_path: Path) -> None:
    _write_images(tmp_path / "x", 60)
    _write_images(tmp_path / "y", 2)
    calls: list[tuple[int, int]] = []
    scan(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 62), (50, 62), (62, 62)]

    polls = 0

    def stop_after_ten() -> bool:
        nonlocal polls
        polls += 1
        return polls > 10

    with pytest.raises(ScanCancelled, match="cancelled") as caught:
        scan(tmp_path, should_stop=stop_after_ten)
    assert isinstance(caught.value, DatasetError) and polls == 11


def test_folder_level_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="folder not found") as caught:
        scan(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (2, 2)).save(flat / "one.png")
    with pytest.raises(DatasetError, match="no class sub-folders") as caught:
        scan(flat)
    assert str(flat) in str(caught.value) and "1 image file(s)" in str(caught.value)
    with pytest.raises(DatasetError, match="not a folder"):
        scan(flat / "one.png")


def test_symlink_loops_end_and_count_once(tmp_path: Path) -> None:
    _write_images(tmp_path / "cats", 2)
    _write_images(tmp_path / "dogs" / "inner", 2)
    try:
        (tmp_path / "cats" / "back_to_root").symlink_to(tmp_path, target_is_directory=True)
        (tmp_path / "dogs" / "inner" / "loop").symlink_to(tmp_path / "dogs", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks are not available here")
    found = scan(tmp_path)
    assert found.counts() == {"cats": 2, "dogs": 2}


def test_stratified_split_rules() -> None:
    labels = [0] * 10 + [1] * 5 + [2] * 2 + [3] + [-1] * 3
    order = np.random.default_rng(7).permutation(len(labels))
    labels = [labels[i] for i in order]
    parts = stratified_split(labels, 0.2, 0.2, seed=0)
    everything = parts["train"] + parts["val"] + parts["test"]
    assert len(everything) == len(set(everything))
    assert set(everything) == {i for i, label in enumerate(labels) if label >= 0}
    assert all(parts[name] == sorted(parts[name]) for name in parts)
    per_class = {name: Counter(labels[i] for i in parts[name]) for name in parts}
    assert per_class["val"] == {0: 2, 1: 1, 2: 1}
    assert per_class["test"] == {0: 2, 1: 1}
    assert per_class["train"] == {0: 6, 1: 3, 2: 1, 3: 1}


def test_stratified_split_is_seeded() -> None:
    labels = [i % 3 for i in range(90)]
    first = stratified_split(labels, 0.3, 0.1, seed=5)
    assert first == stratified_split(labels, 0.3, 0.1, seed=5)
    assert first["val"] != stratified_split(labels, 0.3, 0.1, seed=6)["val"]
    assert stratified_split(labels, 0.0, 0.0, seed=5) == {"train": list(range(90)), "val": [], "test": []}
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, 0.6, 0.5, seed=0)
