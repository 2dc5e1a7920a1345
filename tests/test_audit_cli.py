"""`studio audit` and `studio labels` from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from studio.cli import main
from tests.conftest import make_colour_folder, snapshot


def test_audit_json_and_label_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=6, size=32)
    shutil.copy(data / "red" / "red_01.png", data / "blue" / "red_01.png")
    before = snapshot(data)
    project = str(tmp_path / "project")
    assert main(["audit", str(data), "--project", project, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"file", "given", "suggested", "score"} <= set(out["suspected_labels"][0])
    assert ["blue/red_01.png", "red/red_01.png"] in out["duplicates"]

    assert main(["labels", str(data), "--project", project, "--relabel", "blue/red_01.png", "purple"]) == 1
    assert "the classes are: blue, green, red" in capsys.readouterr().err
    assert main(["labels", str(data), "--project", project, "--relabel", "blue/red_01.png", "red"]) == 0
    assert main(["labels", str(data), "--project", project, "--exclude", "green/green_00.png"]) == 0
    csv_out = tmp_path / "fixes.csv"
    assert main(["labels", str(data), "--project", project, "--csv", str(csv_out),
                 "--copy-to", str(tmp_path / "fixed")]) == 0
    assert "blue/red_01.png,blue,red,no" in csv_out.read_text()
    assert sorted(p.name for p in (tmp_path / "fixed" / "red").iterdir()).count("red_01.png") == 1
    assert len(list((tmp_path / "fixed" / "red").iterdir())) == 7
    assert snapshot(data) == before
