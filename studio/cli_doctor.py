"""`studio doctor`: what the studio found on this machine, and what to do about anything missing.

Thin over `studio.core.doctor`; exit code 1 when something needed is missing, so a script
(or a support request) can tell at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

MARK = {"ok": "ok     ", "note": "note   ", "missing": "MISSING"}
TITLES = {"versions": "Versions", "devices": "Devices", "window": "Window", "weights": "Pretrained weights",
          "disk": "Disk space", "export": "Export tools"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `doctor` on the `studio` parser's sub-commands (see COMMANDS)."""
    p = sub.add_parser("doctor", help="check this machine: versions, devices, the window, weights, disk, export")
    p.add_argument("--project", metavar="DIR", help="project folder whose disk to check (default: the usual one)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


def cmd_doctor(args: argparse.Namespace) -> int:
    from studio.core.doctor import SECTIONS, diagnose

    findings = diagnose(Path(args.project) if args.project else None)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        for section in SECTIONS:
            rows = [f for f in findings if f.section == section]
            if rows:
                print(TITLES[section])
                for f in rows:
                    print(f"  {MARK[f.status]}  {f.name + ':':<18} {f.detail}")
        missing = [f for f in findings if f.status == "missing"]
        print(f"\n{len(missing)} problem(s): see MISSING above." if missing else "\nEverything needed is here.")
    return 1 if any(f.status == "missing" for f in findings) else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"doctor": cmd_doctor}
