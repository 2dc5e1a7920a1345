"""`studio train --resume`: any spelling of the folder continues the same run; other options are applied or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.cli import main
from studio.core.project import Project
from tests.conftest import make_colour_folder

TINY = ["--image-size", "16", "--width", "4", "--blocks", "2", "--batch-size", "8", "--quiet", "--precision", "fp32"]


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A two-epoch run in a project under a fake home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = make_colour_folder(tmp_path / "data", per_class=6, size=16)
    project = tmp_path / "home" / "Documents" / "Classification Studio"
    assert main(["train", "--data", str(data), "--project", str(project), "--epochs", "2", *TINY]) == 0
    [run] = Project(project).runs()
    return Path(run.folder)


def test_resume_with_a_home_relative_path_trains_further_in_the_same_row(trained: Path, capsys) -> None:
    quoted = "~/" + trained.relative_to(Path.home()).as_posix()  # as the README shows it, quotes and all
    assert main(["train", "--resume", quoted, "--epochs", "3", "--quiet"]) == 0
    [run] = Project(trained.parents[1]).runs()
    assert run.status == "finished" and run.epochs_done == 3
    assert [row["epoch"] for row in Project(trained.parents[1]).epochs(run.id)] == [1, 2, 3]


def test_resume_with_a_relative_path(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(trained.parent)
    assert main(["train", "--resume", trained.name, "--epochs", "3", "--quiet"]) == 0
    [run] = Project(trained.parents[1]).runs()
    assert run.folder == str(trained) and run.epochs_done == 3 and run.status == "finished"
    assert not (trained.parent / "runs").exists()  # no second project made beside it


def test_options_with_resume_are_applied_or_refused_by_name(trained: Path, capsys) -> None:
    assert main(["train", "--resume", str(trained), "--lr", "0.5"]) != 0
    err = capsys.readouterr().err
    assert "--lr" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--resume", str(trained), "--epochs", "2"]) != 0  # nothing further to train
    assert "--epochs 2" in capsys.readouterr().err
    [run] = Project(trained.parents[1]).runs()
    assert run.epochs_done == 2 and run.status == "finished"
