"""The project database: what was trained on what, answerable long after the fact.

SQLite from the standard library: nothing to install, one file beside the
runs. It holds every scanned image with its status, each run's split
assignment, the runs and their per-epoch metrics, so "which images were in
run 7's validation set" is one query.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.dataset import ScanReport

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    data_root TEXT NOT NULL,
    path TEXT NOT NULL,
    class TEXT NOT NULL,
    width INTEGER, height INTEGER,
    status TEXT NOT NULL,
    problem TEXT NOT NULL DEFAULT '',
    scanned_at REAL NOT NULL,
    UNIQUE (data_root, path)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    folder TEXT NOT NULL UNIQUE,
    data_root TEXT NOT NULL,
    arch TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    best_metric REAL,
    best_epoch INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS splits (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id),
    split TEXT NOT NULL,
    PRIMARY KEY (run_id, image_id)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, lr REAL, seconds REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass
class RunRow:
    id: int
    name: str
    folder: str
    data_root: str
    arch: str
    status: str
    started_at: float
    finished_at: float | None
    epochs_done: int
    best_metric: float | None
    best_epoch: int | None
    message: str


def default_project_dir() -> Path:
    """Beside the user's documents, never inside an image folder; $STUDIO_HOME overrides."""
    env = os.environ.get("STUDIO_HOME")
    if env:
        return Path(env)
    docs = Path.home() / "Documents"
    return (docs if docs.is_dir() else Path.home()) / "Classification Studio"


class Project:
    """One folder: `project.sqlite` and `runs/<run-id>/`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "project.sqlite"
        with self._connect() as db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: the trainer thread and the window both use the project.
        db = sqlite3.connect(self.db_path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        try:
            with db:
                yield db
        finally:
            db.close()

    def record_scan(self, report: ScanReport) -> dict[str, int]:
        """Insert or refresh every scanned file; returns image ids by relative path."""
        now = time.time()
        rows = [
            (report.root, r.path, r.class_name, r.width, r.height, "ok" if r.ok else "bad", r.problem, now)
            for r in report.records
        ]
        with self._connect() as db:
            db.executemany(
                "INSERT INTO images (data_root, path, class, width, height, status, problem, scanned_at) "
                "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (data_root, path) DO UPDATE SET class=excluded.class, "
                "width=excluded.width, height=excluded.height, status=excluded.status, problem=excluded.problem, "
                "scanned_at=excluded.scanned_at",
                rows,
            )
            found = db.execute("SELECT path, id FROM images WHERE data_root = ?", (report.root,)).fetchall()
        return dict(found)

    def new_run_folder(self, name: str = "") -> tuple[str, Path]:
        """A fresh `runs/<id>` folder; the id sorts by time and stays readable."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(name)}" if name else stamp
        run_id, n = base, 1
        while True:
            try:
                (self.runs_dir / run_id).mkdir(parents=True)
                return run_id, self.runs_dir / run_id
            except FileExistsError:
                n += 1
                run_id = f"{base}-{n}"

    def add_run(self, name: str, folder: Path, data_root: str, config: dict[str, Any]) -> int:
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO runs (name, folder, data_root, arch, config, status, started_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (name, str(folder), data_root, config["model"]["arch"], json.dumps(config), "running", time.time()),
            )
            return int(cur.lastrowid)

    def run_id_for_folder(self, folder: Path) -> int | None:
        with self._connect() as db:
            row = db.execute("SELECT id FROM runs WHERE folder = ?", (str(folder),)).fetchone()
        return int(row[0]) if row else None

    def record_split(self, run_id: int, image_ids: Iterable[tuple[int, str]]) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM splits WHERE run_id = ?", (run_id,))
            db.executemany("INSERT INTO splits VALUES (?,?,?)", [(run_id, i, s) for i, s in image_ids])

    def record_epoch(self, run_id: int, row: dict[str, float]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?,?,?,?,?,?,?,?)",
                (run_id, int(row["epoch"]), row.get("train_loss"), row.get("train_acc"), row.get("val_loss"),
                 row.get("val_acc"), row.get("lr"), row.get("seconds")),
            )
            db.execute("UPDATE runs SET epochs_done = ? WHERE id = ?", (int(row["epoch"]), run_id))

    def finish_run(
        self, run_id: int, status: str, *, best_metric: float | None = None, best_epoch: int | None = None,
        message: str = "",
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status=?, finished_at=?, best_metric=COALESCE(?, best_metric), "
                "best_epoch=COALESCE(?, best_epoch), message=? WHERE id=?",
                (status, time.time(), best_metric, best_epoch, message, run_id),
            )

    def mark_running(self, run_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE runs SET status='running', finished_at=NULL, message='' WHERE id=?", (run_id,))

    def runs(self) -> list[RunRow]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, folder, data_root, arch, status, started_at, finished_at, epochs_done, "
                "best_metric, best_epoch, message FROM runs ORDER BY id"
            ).fetchall()
        return [RunRow(*r) for r in rows]

    def find_run(self, key: str | int) -> RunRow:
        """By database id, run folder name or folder path."""
        for run in self.runs():
            if str(key) in (str(run.id), Path(run.folder).name, run.folder):
                return run
        raise KeyError(f"no run {key!r} in {self.folder}")

    def split_images(self, run_id: int, split: str | None = None) -> list[tuple[str, str, str]]:
        """(path, class, split) of the images a run used, optionally one split only."""
        query = (
            "SELECT images.path, images.class, splits.split FROM splits JOIN images ON images.id = splits.image_id "
            "WHERE splits.run_id = ?"
        )
        args: list[Any] = [run_id]
        if split:
            query += " AND splits.split = ?"
            args.append(split)
        with self._connect() as db:
            return [tuple(r) for r in db.execute(query + " ORDER BY images.path", args).fetchall()]

    def split_balance(self, run_id: int) -> dict[str, dict[str, int]]:
        """{split: {class: count}}: how balanced each class was per split."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT splits.split, images.class, COUNT(*) FROM splits JOIN images ON images.id = splits.image_id "
                "WHERE splits.run_id = ? GROUP BY splits.split, images.class",
                (run_id,),
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for split, cls, count in rows:
            out.setdefault(split, {})[cls] = count
        return out

    def epochs(self, run_id: int) -> list[dict[str, float]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        return [dict(r) for r in rows]


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.strip())
    return cleaned.strip("-")[:40] or "run"
