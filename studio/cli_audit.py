"""`studio audit` and `studio labels`: find likely wrong labels and duplicates, and correct them in the project.

Corrections live in the project database as an overlay on the scan; the image
folder is only ever read. `studio labels --copy-to NEW` is the one way they
leave the project: a corrected copy in a new folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

Command = Callable[[argparse.Namespace], int]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="list images whose label looks wrong, duplicates and outliers")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--project", metavar="P", help="project folder (features are kept there; default: yours)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--top", type=int, default=30, help="how many suspects to print (default 30)")
    p = sub.add_parser("labels", help="correct labels in the project (never in DIR); export or copy them")
    p.add_argument("folder", metavar="DIR", nargs="?", help="the image folder (default: the project's latest)")
    p.add_argument("--project", metavar="P")
    p.add_argument("--relabel", nargs=2, metavar=("FILE", "CLASS"), help="give FILE (relative to DIR) a class")
    p.add_argument("--exclude", metavar="FILE", help="leave FILE out of training")
    p.add_argument("--restore", metavar="FILE", help="undo the correction of FILE")
    p.add_argument("--csv", metavar="OUT", help="write the corrections to a CSV file")
    p.add_argument("--copy-to", metavar="NEW", help="write a corrected copy of DIR into the new folder NEW")


def _project(args: argparse.Namespace):  # noqa: ANN202 - a Project; imported lazily to keep startup light
    from studio.core.project import Project, default_project_dir

    return Project(Path(args.project) if args.project else default_project_dir())


def _split_of_latest_run(project, root: str) -> dict[str, str]:  # noqa: ANN001
    """Files by split in the latest run on this folder, so duplicates across train and validation show."""
    runs = [r for r in project.runs() if str(Path(r.data_root).resolve()) == root]
    if not runs:
        return {}
    return {path: split for path, _, split in project.split_images(max(runs, key=lambda r: r.id).id)}


def cmd_audit(args: argparse.Namespace) -> int:
    from studio.core.audit import odds_text, run_audit
    from studio.core.dataset import scan
    from studio.core.labels import apply_overlay

    project = _project(args)
    report, version = apply_overlay(scan(args.folder), project)
    quiet = args.json or not sys.stderr.isatty()
    progress = None if quiet else (lambda d, t: print(f"\rfeatures {d}/{t}", end="", file=sys.stderr))
    result = run_audit(report, project.folder, split_of=_split_of_latest_run(project, report.root),
                       progress=progress, overlay_version=version)
    if progress:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(f"{len(result.files)} images audited in {report.root}")
    print(f"\nSuspected wrong labels ({len(result.suspected_labels)}), most suspicious first:")
    print("  (how many times likelier the suggested class is than the label, by a model that never saw the image)")
    for s in result.suspected_labels[: args.top]:
        print(f"  {odds_text(s.score):>10}  {s.file}: labelled {s.given}, looks like {s.suggested}")
    print(f"\nDuplicates ({len(result.duplicates)} groups):")
    for g in result.duplicates[: args.top]:
        print(f"  [{g.kind}] " + ", ".join(g.files))
    print(f"\nOutliers ({len(result.outliers)}):")
    for o in result.outliers[: args.top]:
        print(f"  {o['file']}")
    for s in result.skipped:
        print(f"skipped {s['file']}: {s['reason']}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from studio.core import labels
    from studio.core.dataset import scan

    project = _project(args)
    folder = args.folder or _latest_root(project)
    report = scan(folder)
    if args.relabel:
        version = labels.relabel(project, report, args.relabel[0], args.relabel[1])
        print(f"{args.relabel[0]}: now {args.relabel[1]} (labels version {version})")
    if args.exclude:
        version = labels.exclude(project, report, args.exclude)
        print(f"{args.exclude}: left out of training (labels version {version})")
    if args.restore:
        version = labels.restore(project, report, args.restore)
        print(f"{args.restore}: restored (labels version {version})")
    if args.csv:
        n = labels.export_csv(report, project, args.csv)
        print(f"{n} correction(s) written to {args.csv}")
    if args.copy_to:
        print(f"corrected copy written to {labels.write_corrected_copy(report, project, args.copy_to)}")
    if not (args.relabel or args.exclude or args.restore or args.csv or args.copy_to):
        fixes = labels.corrections(project, report)
        stale = {c.path for c in labels.stale_corrections(report, project)}
        for fix in sorted(fixes.values(), key=lambda c: c.path):
            what = "left out" if fix.excluded else f"-> {fix.new_class}"
            print(f"{fix.path}\t{what}\t{fix.who}" + ("\t(stale: file no longer there)" if fix.path in stale else ""))
        print(f"{len(fixes)} correction(s), labels version {labels.overlay_version(project, report)}")
    return 0


def _latest_root(project) -> str:  # noqa: ANN001
    runs = project.runs()
    if not runs:
        from studio.core.labels import LabelError

        raise LabelError("DIR: name the image folder (this project has no runs to take it from)")
    return max(runs, key=lambda r: r.id).data_root


AUDIT_COMMANDS: dict[str, Command] = {"audit": cmd_audit, "labels": cmd_labels}
