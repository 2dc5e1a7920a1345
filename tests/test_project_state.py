"""The project database tells the truth: owners checked, schema versions respected, old projects upgraded."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core import project as project_module
from studio.core.project import SCHEMA_VERSION, Project, ProjectError

ROOT = Path(__file__).resolve().parents[1]

_OWNER = """
import sys, time
from pathlib import Path
from studio.core.project import Project
p = Project(sys.argv[1])
run = p.add_run("drill", Path(sys.argv[1]) / "runs" / "r1", "/data", {"model": {"arch": "custom"}})
p.record_epoch(run, {"epoch": 1, "train_loss": 1.0, "val_acc": 0.25})
p.record_epoch(run, {"epoch": 2, "train_loss": 0.8, "val_acc": 0.75})
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.timeout(60)
def test_run_whose_owner_was_killed_reads_interrupted_with_progress(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        assert Project(tmp_path).runs()[0].status == "running"  # owner alive: believed
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
    run = Project(tmp_path).runs()[0]
    assert run.status == "interrupted"
    assert run.epochs_done == 2 and run.best_metric == pytest.approx(0.75) and run.best_epoch == 2
    assert "--resume" in run.message


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    Project(tmp_path)
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_database_is_refused_in_words(tmp_path: Path) -> None:
    Project(tmp_path)
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),))
    with pytest.raises(ProjectError, match="newer Classification Studio") as caught:
        Project(tmp_path)
    assert "project.sqlite" in str(caught.value) and "\n" not in str(caught.value)


def test_old_database_gains_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    """A project made before runs recorded their owner opens, keeps its runs and is upgraded in place."""
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
                data_root TEXT NOT NULL, arch TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
                started_at REAL NOT NULL, finished_at REAL, epochs_done INTEGER NOT NULL DEFAULT 0,
                best_metric REAL, best_epoch INTEGER, message TEXT NOT NULL DEFAULT '');
            INSERT INTO runs (name, folder, data_root, arch, config, status, started_at, epochs_done, best_metric)
                VALUES ('old', '/p/runs/a', '/d', 'custom', '{}', 'finished', 1.0, 3, 0.9),
                       ('lost', '/p/runs/b', '/d', 'custom', '{}', 'running', 2.0, 1, NULL);
        """)
    runs = Project(tmp_path).runs()
    found = [(r.name, r.status, r.best_metric) for r in runs]
    assert found == [("old", "finished", 0.9), ("lost", "interrupted", None)]
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert {"owner_pid", "owner_host", "owner_started"} <= columns and int(version) == SCHEMA_VERSION


def test_registered_tables_and_columns_are_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Project(tmp_path)
    monkeypatch.setattr(project_module, "_TABLES", list(project_module._TABLES))
    monkeypatch.setattr(project_module, "_COLUMNS", list(project_module._COLUMNS))
    project_module.register_table("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)")
    project_module.register_column("images", "note", "TEXT NOT NULL DEFAULT ''")
    Project(tmp_path)
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0
        assert "note" in {row[1] for row in db.execute("PRAGMA table_info(images)")}


def test_resumed_run_belongs_to_the_new_process(tmp_path: Path) -> None:
    p = Project(tmp_path)
    run = p.add_run("r", tmp_path / "runs" / "r", "/d", {"model": {"arch": "custom"}})
    with sqlite3.connect(tmp_path / "project.sqlite") as db:
        db.execute("UPDATE runs SET owner_pid = 999999999 WHERE id = ?", (run,))
    assert p.runs()[0].status == "interrupted"
    p.mark_running(run)
    assert p.runs()[0].status == "running" and p.runs()[0].owner_pid == os.getpid()


def test_reconcile_fills_the_gap_a_kill_left(tmp_path: Path) -> None:
    p = Project(tmp_path)
    run = p.add_run("r", tmp_path / "runs" / "r", "/d", {"model": {"arch": "custom"}})
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 0.9, "val_acc": 0.1 * e,
                "lr": 0.01, "seconds": 1.0} for e in (1, 2, 3)]
    p.record_epoch(run, history[0])  # killed after epoch 2's checkpoint, before its database row
    assert p.reconcile_epochs(run, history) == 2
    assert [row["epoch"] for row in p.epochs(run)] == [1, 2, 3] and p.runs()[0].epochs_done == 3
    assert p.reconcile_epochs(run, history) == 0
