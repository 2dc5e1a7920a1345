"""The label overlay: corrections live in the project, the image folder is only read."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from studio.core import labels
from studio.core.dataset import scan
from studio.core.labels import LabelError, apply_overlay
from studio.core.project import Project
from tests.conftest import make_colour_folder


def _folder_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_relabel_exclude_restore_through_the_overlay(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=4)
    before = _folder_hash(data)
    project = Project(tmp_path / "project")
    report = scan(data)
    assert apply_overlay(report, project)[1] == 0
    v1 = labels.relabel(project, report, "red/red_00.png", "blue", who="tester")
    v2 = labels.exclude(project, report, "green/green_01.png")
    corrected, version = apply_overlay(report, project)
    assert version == v2 > v1 > 0
    assert corrected.counts() == {"blue": 5, "green": 3, "red": 3}
    moved = next(r for r in corrected.records if r.path == "red/red_00.png")
    assert moved.class_name == "blue" and moved.label == corrected.classes.index("blue")
    assert labels.corrections(project, report)["red/red_00.png"].who == "tester"
    labels.restore(project, report, "green/green_01.png")
    assert apply_overlay(report, project)[0].counts() == {"blue": 5, "green": 4, "red": 3}
    assert _folder_hash(data) == before


def test_bad_edits_are_refused_in_words(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=2)
    project = Project(tmp_path / "project")
    report = scan(data)
    with pytest.raises(LabelError, match="the classes are: blue, green, red"):
        labels.relabel(project, report, "red/red_00.png", "purple")
    with pytest.raises(LabelError, match="no such image"):
        labels.exclude(project, report, "red/missing.png")
    assert labels.overlay_version(project, report) == 0


def test_stale_entries_are_shown_not_fatal(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=3)
    project = Project(tmp_path / "project")
    labels.relabel(project, scan(data), "red/red_00.png", "green")
    (data / "red" / "red_00.png").unlink()
    report = scan(data)
    corrected, _ = apply_overlay(report, project)
    assert corrected.counts() == {"blue": 3, "green": 3, "red": 2}
    assert [c.path for c in labels.stale_corrections(report, project)] == ["red/red_00.png"]
    out = tmp_path / "fixes.csv"
    assert labels.export_csv(report, project, out) == 1
    row = next(csv.DictReader(out.open()))
    assert row["stale"] == "yes" and row["corrected"] == "green"


def test_corrected_copy_leaves_the_source_byte_identical(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=3)
    before = _folder_hash(data)
    project = Project(tmp_path / "project")
    report = scan(data)
    labels.relabel(project, report, "red/red_00.png", "blue")
    labels.exclude(project, report, "green/green_02.png")
    out = labels.write_corrected_copy(report, project, tmp_path / "fixed")
    assert _folder_hash(data) == before
    assert scan(out).counts() == {"blue": 4, "green": 2, "red": 2}
    assert (out / "blue" / "red_00.png").read_bytes() == (data / "red" / "red_00.png").read_bytes()
    with pytest.raises(LabelError, match="not empty"):
        labels.write_corrected_copy(report, project, out)
    with pytest.raises(LabelError, match="outside the image folder"):
        labels.write_corrected_copy(report, project, data / "inside")
    assert _folder_hash(data) == before
