"""The project database: what was trained on what, answerable long after the fact.

SQLite from the standard library: nothing to install, one file beside the
runs. It holds every scanned image with its status, each run's split
assignment, the runs and their per-epoch metrics, so "which images were in
run 7's validation set" is one query.

The window, the CLI and a `torchrun` job may use one project at once, so the
database runs in WAL mode (readers never wait for the writer). Its schema only
grows: tables and columns are added where missing (`register_table`,
`register_column`), and a database from a newer studio is refused in words.
A run row records the process that owns it; a run whose owner is gone reads
"interrupted", whatever its row says.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.atomic import StorageError, storage_message
from studio.core.dataset import ScanReport
from studio.core.errors import ProjectError
from studio.core.owner import current_owner, owner_alive
from studio.core.userdirs import documents_folder

# 2: runs record their owner process.
SCHEMA_VERSION = 2

_TABLES: list[str] = ["""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""", """
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
)""", """
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
)""", """
CREATE TABLE IF NOT EXISTS splits (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id),
    split TEXT NOT NULL,
    PRIMARY KEY (run_id, image_id)
)""", """
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, lr REAL, seconds REAL,
    PRIMARY KEY (run_id, epoch)
)"""]

# Columns added after a table first shipped: (table, column, declaration). A database made
# before them gets them on open, so old projects keep working and nothing is ever dropped.
_COLUMNS: list[tuple[str, str, str]] = [
    ("runs", "owner_pid", "INTEGER"),
    ("runs", "owner_host", "TEXT NOT NULL DEFAULT ''"),
    ("runs", "owner_started", "TEXT NOT NULL DEFAULT ''"),
    ("runs", "test_acc", "REAL"),  # accuracy on the held-out test share: the figure to trust
]


def register_table(create_sql: str) -> None:
    """Add a table (a `CREATE TABLE IF NOT EXISTS ...` statement) that every project opened later gets."""
    if create_sql not in _TABLES:
        _TABLES.append(create_sql)


def register_column(table: str, column: str, declaration: str) -> None:
    """Add a column that every project opened later gets, when its table lacks it (additive only)."""
    if (table, column, declaration) not in _COLUMNS:
        _COLUMNS.append((table, column, declaration))


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
    owner_pid: int | None = None
    owner_host: str = ""
    test_acc: float | None = None


def default_project_dir() -> Path:
    """Beside the user's documents, never inside an image folder; $STUDIO_HOME overrides."""
    env = os.environ.get("STUDIO_HOME")
    if env:
        return Path(env)
    return documents_folder() / "Classification Studio"


class Project:
    """One folder: `project.sqlite` and `runs/<run-id>/`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(storage_message(self.runs_dir, exc)) from None
        self.db_path = self.folder / "project.sqlite"
        self._migrate()

    def _migrate(self) -> None:
        """Refuse a newer schema; otherwise add what is missing, in one transaction two processes cannot split."""
        with self._connect() as db:
            with contextlib.suppress(sqlite3.DatabaseError):  # some network folders cannot do WAL: stay as is
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("BEGIN IMMEDIATE")
            found = _schema_version(db)
            if found > SCHEMA_VERSION:
                raise ProjectError(
                    f"{self.db_path}: this project was written by a newer Classification Studio (database "
                    f"version {found}, this one reads up to {SCHEMA_VERSION}); update the studio or choose "
                    "another project folder")
            for create in _TABLES:
                db.execute(create)
            for table, column, declaration in _COLUMNS:
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(max(found, SCHEMA_VERSION)),))

    @property
    def runs_dir(self) -> Path:
        return self.folder / "runs"

    @property
    def cache_dir(self) -> Path:
        """The user's cache folder, shared by projects: caches can be rebuilt and do not belong in Documents."""
        from studio.core.userdirs import cache_folder

        return cache_folder()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: the trainer thread and the window both use the project.
        try:
            db = sqlite3.connect(self.db_path, timeout=30)
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise ProjectError(f"{self.db_path}: cannot open the project database ({exc})") from None
        try:
            with db:
                yield db
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "disk" in str(exc) or "unable to open" in str(exc):
                raise ProjectError(_unwritable(self.db_path, exc)) from None
            raise
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise ProjectError(f"{self.db_path}: damaged project database ({exc})") from None
            raise
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
        """A new run row owned by this process."""
        owner = current_owner()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO runs (name, folder, data_root, arch, config, status, started_at, owner_pid, owner_host, "
                "owner_started) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (name, str(folder), data_root, config["model"]["arch"], json.dumps(config), "running", time.time(),
                 owner.pid, owner.host, owner.started),
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

    def reconcile_epochs(self, run_id: int, history: list[dict[str, Any]]) -> int:
        """Make the epoch rows equal `history` (the checkpoint's own record), in one transaction.

        A run killed between writing its checkpoint and its database row leaves the database an
        epoch behind; resuming calls this first, so no epoch is ever missing from the curves.
        Returns how many rows were added or corrected.
        """
        with self._connect() as db:
            have = {int(r[0]): r[1:] for r in db.execute(
                "SELECT epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds FROM epochs WHERE run_id = ?",
                (run_id,))}
            rows = [(run_id, int(h["epoch"]), h.get("train_loss"), h.get("train_acc"), h.get("val_loss"),
                     h.get("val_acc"), h.get("lr"), h.get("seconds")) for h in history]
            changed = [row for row in rows if have.get(row[1]) != tuple(row[2:])]
            db.executemany("INSERT OR REPLACE INTO epochs VALUES (?,?,?,?,?,?,?,?)", changed)
            last = max((row[1] for row in rows), default=0)
            db.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, last))
            db.execute("UPDATE runs SET epochs_done = ? WHERE id = ?", (last, run_id))
        return len(changed)

    def finish_run(
        self, run_id: int, status: str, *, best_metric: float | None = None, best_epoch: int | None = None,
        message: str = "", test_acc: float | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status=?, finished_at=?, best_metric=COALESCE(?, best_metric), "
                "best_epoch=COALESCE(?, best_epoch), message=?, test_acc=COALESCE(?, test_acc) WHERE id=?",
                (status, time.time(), best_metric, best_epoch, message, test_acc, run_id),
            )

    def mark_running(self, run_id: int) -> None:
        """Resume: the run row is continued, now owned by this process."""
        owner = current_owner()
        with self._connect() as db:
            db.execute("UPDATE runs SET status='running', finished_at=NULL, message='', owner_pid=?, owner_host=?, "
                       "owner_started=? WHERE id=?", (owner.pid, owner.host, owner.started, run_id))

    def runs(self) -> list[RunRow]:
        """Every run, oldest first; "running" only while its owner process is alive (else "interrupted").

        The best metric falls back to the epoch rows, so an interrupted run still shows how far it got.
        """
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, folder, data_root, arch, status, started_at, finished_at, epochs_done, "
                "COALESCE(best_metric, (SELECT MAX(val_acc) FROM epochs WHERE run_id = runs.id)), "
                "COALESCE(best_epoch, (SELECT epoch FROM epochs WHERE run_id = runs.id AND val_acc IS NOT NULL "
                "ORDER BY val_acc DESC, epoch LIMIT 1)), message, owner_pid, owner_host, owner_started, test_acc "
                "FROM runs ORDER BY id"
            ).fetchall()
        return [_run_row(row) for row in rows]

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


def _run_row(row: tuple[Any, ...]) -> RunRow:
    *fields, owner_pid, owner_host, owner_started, test_acc = row
    run = RunRow(*fields, owner_pid=owner_pid, owner_host=owner_host or "", test_acc=test_acc)
    if run.status == "running" and owner_alive(owner_pid, owner_host, owner_started) is False:
        run.status = "interrupted"
        run.message = run.message or (
            f"The program running it ended without finishing (closed, killed or crashed) after epoch "
            f"{run.epochs_done}; continue it with `studio train --resume {run.folder}`.")
    return run


def _unwritable(db_path: Path, exc: sqlite3.Error) -> str:
    """Why SQLite cannot write, in the words the other writes use (read-only disk, permission, full disk)."""
    folder = db_path.parent
    code = errno.ENOSPC if "full" in str(exc) else None
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            code = errno.EROFS
    if code is None and not os.access(folder, os.W_OK):
        code = errno.EACCES
    if code is None:
        return f"{folder}: cannot write the project database ({exc}); choose a project folder you can write to"
    return storage_message(db_path, OSError(code, os.strerror(code)))


def _schema_version(db: sqlite3.Connection) -> int:
    """0 for a new database; the number it records otherwise (garbage counts as newer than us)."""
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return 0
    try:
        return int(row[0])
    except ValueError:
        return 1 << 30


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.strip())
    return cleaned.strip("-")[:40] or "run"
