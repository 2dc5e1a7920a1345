"""A full disk or a read-only project: one line naming the folder, the last good checkpoint intact,
no temporary file left, and the run recorded as failed with that reason.

As root the drills use a real 20 MB tmpfs (and a read-only remount of it); elsewhere the same faults
are injected where every write goes through, the atomic-write helper.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import studio.core.atomic as atomic
from studio.core.callbacks import Callback
from studio.core.checkpoint import load_checkpoint
from studio.core.config import RunConfig
from studio.core.project import Project
from studio.core.train import Trainer, TrainingError
from tests.conftest import make_colour_folder


def _can_mount(where: Path) -> bool:
    if os.name != "posix" or os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if probe.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


@contextlib.contextmanager
def small_disk(where: Path, size: str = "20m") -> Iterator[Path]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _config(data: Path) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.model.image_size, cfg.model.width, cfg.model.blocks = 16, 16, 3  # a checkpoint of a few hundred KB
    cfg.train.epochs, cfg.train.batch_size, cfg.train.precision = 4, 8, "fp32"
    return cfg


class FillAfterFirstEpoch(Callback):
    """Fill the disk once epoch 1 is recorded: epoch 2's checkpoint then meets a full disk."""

    def __init__(self, folder: Path, real: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder, self.real, self.monkeypatch = folder, real, monkeypatch

    def on_epoch_end(self, info) -> None:
        if info.epoch != 1:
            return
        if self.real:
            _fill(self.folder / "ballast", leave=64 * 1024)  # room for the database's last word, not a checkpoint
        else:
            def full(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.monkeypatch.setattr(atomic.tempfile, "mkstemp", full)


def _fill(path: Path, leave: int) -> None:
    free = os.statvfs(path.parent).f_bavail * os.statvfs(path.parent).f_frsize
    with open(path, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


def _assert_failed_cleanly(project: Path, message: str, epochs_kept: int) -> None:
    assert "\n" not in message and "disk is full" in message and "free" in message, message
    runs = Project(project).runs()
    assert len(runs) == 1 and runs[0].status == "failed" and "disk is full" in runs[0].message
    run = Path(runs[0].folder)
    assert str(run) in message or str(project) in message
    assert load_checkpoint(run / "last.pt")["training"]["epoch"] == epochs_kept
    assert load_checkpoint(run / "best.pt")
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert not (run / "error.log").exists()


@pytest.mark.timeout(300)
def test_disk_full_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=8, size=16)
    mount = tmp_path / "disk"
    real = _can_mount(mount)
    with small_disk(mount) if real else contextlib.nullcontext(mount) as disk:
        project = Path(disk) / "project"
        failed: list[str] = []

        class Failed(Callback):
            def on_failed(self, message: str) -> None:
                failed.append(message)

        trainer = Trainer(_config(data), project=project,
                          callbacks=[FillAfterFirstEpoch(Path(disk), real, monkeypatch), Failed()])
        with pytest.raises(TrainingError) as caught:
            trainer.run()
        monkeypatch.undo()
        assert failed == [str(caught.value)]
        _assert_failed_cleanly(project, str(caught.value), epochs_kept=1)


@pytest.mark.timeout(300)
def test_read_only_project_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=4, size=16)
    mount = tmp_path / "disk"
    real = _can_mount(mount)
    with small_disk(mount) if real else contextlib.nullcontext(mount) as disk:
        project = Path(disk) / "project"
        Project(project)  # an existing project, on a disk that then became read-only
        if real:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        else:
            def refuse(*args, **kwargs):
                raise OSError(errno.EROFS, "Read-only file system")
            monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
            monkeypatch.setattr(Project, "new_run_folder", lambda self, name="": refuse())
        with pytest.raises(Exception) as caught:
            Trainer(_config(data), project=project).run()
        message = str(caught.value)
        assert "\n" not in message and "read-only" in message and str(project) in message, message
        assert "Unexpected error" not in message and "error.log" not in message
        assert list((project / "runs").iterdir()) == []
