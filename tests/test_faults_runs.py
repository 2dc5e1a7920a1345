"""A run killed at any moment, then listed, resumed and checked: the database and the files agree.

Each drill runs the real `studio train` in a subprocess and ends it with SIGKILL, the way the OOM
killer or a power cut ends it: no handler runs. The two moments that a timer cannot hit reliably
(inside the first epoch; between the epoch's checkpoint and its database row) are reached by a
wrapper that sends the SIGKILL to its own process at that point; the mid-run drill kills from outside.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.core.project import Project
from tests.conftest import make_colour_folder

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4
pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL drills are POSIX")

# Runs `studio train` with two probes: a line on stdout as each epoch starts, and an optional
# SIGKILL of this very process at a chosen point (STUDIO_DRILL = "epoch-start:N" or "db-row:N").
_WRAPPER = """
import os, signal, sys
import studio.core.loop as loop
import studio.core.project as project
when, _, at = os.environ.get("STUDIO_DRILL", "").partition(":")
real_epoch, real_row = loop.train_one_epoch, project.Project.record_epoch

def train_one_epoch(*args, **kwargs):
    train_one_epoch.n += 1
    print(f"epoch-start {train_one_epoch.n}", flush=True)
    if when == "epoch-start" and train_one_epoch.n == int(at):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_epoch(*args, **kwargs)
train_one_epoch.n = 0

def record_epoch(self, run_id, row):
    if when == "db-row" and int(row["epoch"]) == int(at):
        os.kill(os.getpid(), signal.SIGKILL)  # checkpoint and history.csv written, database row not
    return real_row(self, run_id, row)

loop.train_one_epoch, project.Project.record_epoch = train_one_epoch, record_epoch
from studio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _train_args(data: Path, project: Path) -> list[str]:
    return ["train", "--data", str(data), "--project", str(project), "--epochs", str(EPOCHS), "--image-size", "16",
            "--width", "4", "--blocks", "2", "--batch-size", "8", "--seed", "3", "--quiet"]


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True,
                          env=_env(**env), timeout=240, cwd=ROOT)


def _runs(project: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "studio.cli", "runs", "--project", str(project), "--json"],
                         capture_output=True, text=True, env=_env(), timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _check_files_agree_with_database(project: Path, epochs: int) -> None:
    runs = Project(project).runs()
    assert len(runs) == 1, "resuming must continue the same run row, not add one"
    run = runs[0]
    folder = Path(run.folder)
    with (folder / "history.csv").open(encoding="utf-8") as fh:
        history = [int(float(row["epoch"])) for row in csv.DictReader(fh)]
    last = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)["training"]
    database = [int(row["epoch"]) for row in Project(project).epochs(run.id)]
    expected = list(range(1, epochs + 1))
    assert history == expected and database == expected and last["epoch"] == epochs
    assert [int(h["epoch"]) for h in last["history"]] == expected
    assert run.status == "finished" and run.epochs_done == epochs
    assert not [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".part"))]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_colour_folder(tmp_path / "data", per_class=8, size=16)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("drill", ["epoch-start:1", "db-row:2"])
def test_killed_run_is_interrupted_then_resumes_to_agreement(drill: str, data: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    killed = _cli(_train_args(data, project), STUDIO_DRILL=drill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [row] = _runs(project)
    assert row["status"] == "interrupted"
    done = int(drill.split(":")[1]) if drill.startswith("db-row") else 0
    if done:
        assert row["epochs_done"] >= done - 1 and row["best_metric"] is not None
    resumed = _cli(["train", "--resume", row["folder"], "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    _check_files_agree_with_database(project, EPOCHS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_killed_from_outside_mid_run_resumes_with_a_relative_path(data: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, *_train_args(data, project)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "epoch-start 3":
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    [row] = _runs(project)
    assert row["status"] == "interrupted" and row["epochs_done"] == 2
    relative = os.path.relpath(row["folder"], tmp_path)
    resumed = subprocess.run([sys.executable, "-m", "studio.cli", "train", "--resume", relative, "--quiet"],
                             capture_output=True, text=True, env=_env(), timeout=240, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _check_files_agree_with_database(project, EPOCHS)
