"""Which process owns a run, and whether that process still exists.

A run killed by the OOM killer, a power cut or `kill -9` cannot mark itself
finished. So each run records its owner (process id, host name and the
process's start time) and a reader asks the operating system whether that very
process is still there. The start time tells a live owner from an unrelated
process that was later given the same id. Age is never used to guess.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started: str  # opaque process start stamp; "" where the system does not tell


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(pid, socket.gethostname(), process_started(pid))


def process_started(pid: int) -> str:
    """The kernel's start stamp of `pid`, comparable only with another call on the same host."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _psutil_started(pid)
    # The command name (field 2) is in parentheses and may hold spaces; fields after it are plain.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"linux:{fields[19]}" if len(fields) > 19 else ""


def owner_alive(pid: int | None, host: str | None, started: str | None) -> bool | None:
    """True or False when this machine can tell, None when the owner ran on another host."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return None
    if not _pid_exists(pid) or _is_zombie(pid):
        return False
    if started:
        now = process_started(pid)
        if now and now != started:
            return False  # the id was reused by a process that started later
    return True


def _pid_exists(pid: int) -> bool:
    if os.name == "nt":
        return _psutil_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _is_zombie(pid: int) -> bool:
    """A killed child its parent has not yet reaped is dead for our purpose."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].startswith("Z")


def _psutil_started(pid: int) -> str:
    with contextlib.suppress(Exception):
        import psutil  # optional: gives start times on macOS and Windows

        return f"psutil:{psutil.Process(pid).create_time():.3f}"
    return ""


def _psutil_exists(pid: int) -> bool:
    try:
        import psutil
    except ImportError:
        return True  # cannot tell on this system without it: do not call a live run dead
    return bool(psutil.pid_exists(pid))
