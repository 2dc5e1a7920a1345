"""The one write helper: whole files or nothing, and a readable line when the disk says no."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from studio.core import atomic

pytestmark = pytest.mark.timeout(60)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    atomic.write_text(target, "old")

    def broken(handle) -> None:
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(atomic.StorageError, match="disk is full") as info:
        atomic.write_with(target, broken)
    assert str(tmp_path) in str(info.value)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_torch_zip_writer_full_disk_message_is_translated(tmp_path: Path) -> None:
    def torch_like(handle) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 89536 vs 89432")

    with pytest.raises(atomic.StorageError, match="free"):
        atomic.write_with(tmp_path / "last.pt", torch_like)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(atomic.StorageError, match="no longer exists"):
        atomic.write_text(tmp_path / "gone" / "x.txt", "x")


def test_two_writers_never_share_a_temp_name(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    with atomic.atomic_open(target, "w") as first, atomic.atomic_open(target, "w") as second:
        assert first.name != second.name
        first.write("one")
        second.write("two")
    assert target.read_text() in ("one", "two")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
