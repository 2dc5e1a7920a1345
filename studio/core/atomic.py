"""The one way the studio writes a file: whole or not at all.

A run can be killed, a disk can fill and two threads can write the same report.
Each write therefore goes to a unique temporary file in the destination folder,
is flushed to the disk, and replaces the target in one rename; on any failure the
temporary file is removed and the old file stays as it was. Failures become a
`StorageError` whose one line names the folder and, for a full disk, the space left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


class StorageError(OSError):
    """A file could not be written; the message is for the user as it stands."""


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if free < 1024 or unit == "TB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"  # pragma: no cover - the loop always returns


def storage_message(path: str | os.PathLike[str], exc: BaseException) -> str:
    """One line that names the folder and says what the user can do about it."""
    folder = Path(path).parent
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOSPC or "No space left" in text or "unexpected pos" in text:
        return (f"{folder}: the disk is full ({_free_space(folder)} free) while writing {Path(path).name}; "
                "free some space or choose another project folder")
    if code in (errno.EROFS,):
        return f"{folder}: the folder is on a read-only disk; choose another project folder"
    if code in (errno.EACCES, errno.EPERM):
        return f"{folder}: no permission to write here; choose another project folder"
    if code == errno.ENOENT:
        return f"{folder}: the folder no longer exists"
    reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    return f"{folder}: cannot write {Path(path).name} ({reason})"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None
                ) -> Iterator[IO]:
    """Yield a temporary file next to `path`; it becomes `path` only if the block finishes."""
    path = Path(path)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(storage_message(path, exc)) from None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError(storage_message(path, exc)) from None
        if isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "No space left" in str(exc)):
            # torch.save reports a full disk as a RuntimeError from its zip writer.
            raise StorageError(storage_message(path, exc)) from None
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """The rename itself is durable only once the folder entry is on disk (POSIX)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """For writers that take a file object, such as `torch.save` or `matplotlib`'s `savefig`."""
    with atomic_open(path, "wb") as handle:
        writer(handle)


def unique_temp(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named file beside `path`, for writers that insist on a file name
    (exporters); pair it with `commit_temp`, and unlink it on failure."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise StorageError(storage_message(path, exc)) from None
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Flush a finished temporary file to the disk and put it in place of `path` in one rename."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StorageError(storage_message(path, exc)) from None
    _fsync_folder(Path(path).parent)
