"""Label corrections kept in the project, as an overlay on the scan: the image folder is never touched.

A user who finds a wrong label relabels the image, leaves it out of training, or
restores it. Each such edit is one row of `label_edits` in the project database,
with who made it and when, so the history stays answerable. The overlay
version is the id of the latest edit for a data folder: a run that records it
can be traced to exactly the labels it trained on.

Everything that reads labels (splits, training, the Data page, Evaluate) reads
the scan through `apply_overlay`. The only way corrections leave the project is
`write_corrected_copy`, into a new folder the user picks.
"""

from __future__ import annotations

import csv
import getpass
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from studio.core.atomic import atomic_open
from studio.core.dataset import DatasetError, ScanReport
from studio.core.project import Project, register_table

_TABLE = """
CREATE TABLE IF NOT EXISTS label_edits (
    id INTEGER PRIMARY KEY,
    data_root TEXT NOT NULL,
    path TEXT NOT NULL,
    action TEXT NOT NULL,
    class TEXT NOT NULL DEFAULT '',
    who TEXT NOT NULL,
    at REAL NOT NULL
)"""
register_table(_TABLE)
ACTIONS = ("relabel", "exclude", "restore")
EXCLUDED_PROBLEM = "left out of training (label review)"


class LabelError(DatasetError):
    """An edit that cannot be made; the message says why and what is allowed."""


@dataclass(frozen=True)
class Correction:
    """The standing edit for one image: its new class (or '' for unchanged), and whether it is left out."""

    path: str
    new_class: str
    excluded: bool
    who: str
    at: float
    stale: bool = False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _root(report_or_root: ScanReport | str | Path) -> str:
    root = report_or_root.root if isinstance(report_or_root, ScanReport) else report_or_root
    return str(Path(root).expanduser().resolve())


def record_edit(project: Project, report: ScanReport, path: str, action: str, new_class: str = "",
                who: str | None = None) -> int:
    """Store one edit and return the new overlay version; refuses unknown files, actions and classes."""
    if action not in ACTIONS:
        raise LabelError(f"{action}: not a label edit; choose one of {', '.join(ACTIONS)}")
    known = {r.path for r in report.records}
    if path not in known:
        raise LabelError(f"{path}: no such image in {report.root}")
    if action == "relabel" and new_class not in report.classes:
        raise LabelError(f"{new_class!r}: no such class in {report.root}; "
                         f"the classes are: {', '.join(report.classes)}")
    with project._connect() as db:
        db.execute(_TABLE)
        cur = db.execute("INSERT INTO label_edits (data_root, path, action, class, who, at) VALUES (?,?,?,?,?,?)",
                         (_root(report), path, action, new_class if action == "relabel" else "",
                          who or _user(), time.time()))
        return int(cur.lastrowid or 0)


def relabel(project: Project, report: ScanReport, path: str, new_class: str, who: str | None = None) -> int:
    return record_edit(project, report, path, "relabel", new_class, who)


def exclude(project: Project, report: ScanReport, path: str, who: str | None = None) -> int:
    return record_edit(project, report, path, "exclude", who=who)


def restore(project: Project, report: ScanReport, path: str, who: str | None = None) -> int:
    return record_edit(project, report, path, "restore", who=who)


def overlay_version(project: Project, root: ScanReport | str | Path) -> int:
    """The id of the latest edit for this data folder; 0 when it has none."""
    with project._connect() as db:
        db.execute(_TABLE)
        row = db.execute("SELECT MAX(id) FROM label_edits WHERE data_root = ?", (_root(root),)).fetchone()
    return int(row[0] or 0)


def corrections(project: Project, root: ScanReport | str | Path) -> dict[str, Correction]:
    """The standing edit per image, replaying the history in order; restored images have none."""
    with project._connect() as db:
        db.execute(_TABLE)
        rows = db.execute("SELECT path, action, class, who, at FROM label_edits WHERE data_root = ? ORDER BY id",
                          (_root(root),)).fetchall()
    state: dict[str, Correction] = {}
    for path, action, new_class, who, at in rows:
        before = state.get(path)
        if action == "restore":
            state.pop(path, None)
        elif action == "relabel":
            state[path] = Correction(path, new_class, False, who, at)
        else:
            state[path] = Correction(path, before.new_class if before else "", True, who, at)
    return state


def apply_overlay(report: ScanReport, project: Project) -> tuple[ScanReport, int]:
    """The scan as corrected: relabelled images in their new class, excluded ones unusable with the reason.

    Edits for files no longer in the folder are ignored here (see `stale_corrections`), never fatal.
    """
    fixes = corrections(project, report)
    version = overlay_version(project, report)
    if not fixes:
        return report, version
    index = {name: i for i, name in enumerate(report.classes)}
    records = []
    for record in report.records:
        fix = fixes.get(record.path)
        if fix is None or not record.ok:
            records.append(record)
        elif fix.excluded:
            records.append(replace(record, ok=False, problem=EXCLUDED_PROBLEM))
        elif fix.new_class in index:
            records.append(replace(record, class_name=fix.new_class, label=index[fix.new_class]))
        else:
            records.append(record)  # the class folder is gone: the edit is stale, the scan stands
    return replace(report, records=records), version


def stale_corrections(report: ScanReport, project: Project) -> list[Correction]:
    """Edits whose file has since left the folder (or whose class has): shown as stale, ignored in use."""
    known = {r.path for r in report.records}
    return [replace(fix, stale=True) for fix in corrections(project, report).values()
            if fix.path not in known or (fix.new_class and fix.new_class not in report.classes)]


def export_csv(report: ScanReport, project: Project, out: str | Path) -> int:
    """Write the standing corrections (given class, new class, left out, who, when, stale); returns the count."""
    given = {r.path: r.class_name for r in report.records}
    stale = {c.path for c in stale_corrections(report, project)}
    fixes = sorted(corrections(project, report).values(), key=lambda c: c.path)
    with atomic_open(out, "w", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["file", "given", "corrected", "excluded", "who", "when", "stale"])
        for fix in fixes:
            writer.writerow([fix.path, given.get(fix.path, ""), fix.new_class or given.get(fix.path, ""),
                             "yes" if fix.excluded else "no", fix.who,
                             time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(fix.at)),
                             "yes" if fix.path in stale else "no"])
    return len(fixes)


def write_corrected_copy(report: ScanReport, project: Project, dest: str | Path) -> Path:
    """Copy (hard-link where the disk allows) the corrected class folders into a new folder.

    Built under a temporary name beside `dest` and renamed at the end, so an interrupted copy
    never looks finished; the source folder is only read.
    """
    corrected, _ = apply_overlay(report, project)
    target = Path(dest).expanduser().resolve()
    source = Path(report.root).resolve()
    if target == source or source in target.parents or target in source.parents:
        raise LabelError(f"{target}: choose a folder outside the image folder {source} (and not above it)")
    if target.exists() and any(target.iterdir()):
        raise LabelError(f"{target}: already exists and is not empty; choose a new folder")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    for record in corrected.good:
        out = partial / record.class_name / Path(record.path).name
        out.parent.mkdir(parents=True, exist_ok=True)
        stem, n = out, 1
        while out.exists():
            out = stem.with_name(f"{stem.stem}-{n}{stem.suffix}")
            n += 1
        try:
            os.link(corrected.abspath(record), out)
        except OSError:
            shutil.copy2(corrected.abspath(record), out)
    partial.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.rmdir()
    os.replace(partial, target)
    return target
