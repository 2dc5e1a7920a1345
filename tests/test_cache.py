"""The decode cache: once per run, spills to disk past its budget, survives a file going bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import studio.core.cache as cache_mod
from studio.core.cache import Cancelled, build_cache
from studio.core.images import load_for_model, to_tensor
from tests.conftest import make_colour_folder


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.png"))


def test_memory_cache_holds_the_evaluation_pixels(colour_folder: Path) -> None:
    paths = files(colour_folder)
    cache = build_cache(colour_folder, paths, 16)
    assert not cache.on_disk and len(cache) == len(paths) and cache.image_size == 16
    expected = to_tensor(load_for_model(colour_folder / paths[5], 16))
    assert torch.equal(cache.take([5])[0], expected)
    picked = cache.take(torch.tensor([7, 2, 7]))
    assert torch.equal(picked[0], picked[2]) and torch.equal(picked[1], cache.take([2])[0])


def test_spill_to_disk_and_reuse_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_colour_folder(tmp_path / "d")
    paths = files(root)
    spill = tmp_path / "cache"
    first = build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    assert first.on_disk and list(spill.glob("*.u8"))
    calls = []
    monkeypatch.setattr(cache_mod, "load_for_model", lambda *a: calls.append(a) or (_ for _ in ()).throw(OSError))
    again = build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    assert calls == [], "a complete disk cache for the same files must be reused, not decoded again"
    assert np.array_equal(np.asarray(first.pixels), np.asarray(again.pixels))


def test_changed_file_invalidates_disk_cache_and_late_failures_are_reported(tmp_path: Path) -> None:
    root = make_colour_folder(tmp_path / "d")
    paths = files(root)
    spill = tmp_path / "cache"
    build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    (root / paths[3]).write_bytes(b"broken after the scan")
    cache = build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    assert list(cache.failures) == [3] and cache.failures[3]
    assert len(list(spill.glob("*.u8"))) == 2  # a new key: the old cache no longer matches the files


def test_cancel_stops_decoding(colour_folder: Path) -> None:
    with pytest.raises(Cancelled):
        build_cache(colour_folder, files(colour_folder), 16, should_stop=lambda: True)


def test_only_the_most_recent_disk_caches_are_kept(tmp_path: Path) -> None:
    root = make_colour_folder(tmp_path / "d")
    paths = files(root)
    spill = tmp_path / "cache"
    for size in (8, 10, 12, 14, 16):  # five different caches of the same images
        build_cache(root, paths, size, memory_mb=0, spill_dir=spill)
    assert len(list(spill.glob("*.u8"))) == cache_mod.KEEP_DISK_CACHES == len(list(spill.glob("*.json")))
    newest = build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    assert newest.on_disk and newest.image_size == 16


_BUILDER = """
import sys, time
from pathlib import Path
import studio.core.cache as cache_mod
real = cache_mod.load_for_model
def slow(*args):
    time.sleep(0.02)  # both processes are surely decoding at once without the lock
    print("decoded", flush=True)
    return real(*args)
cache_mod.load_for_model = slow
root, spill = Path(sys.argv[1]), Path(sys.argv[2])
paths = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.png"))
cache = cache_mod.build_cache(root, paths, 16, memory_mb=0, spill_dir=spill, workers=1)
print("sum", int(cache.pixels.astype("int64").sum()), flush=True)
"""


@pytest.mark.timeout(120)
def test_two_processes_build_one_cache_once(tmp_path: Path) -> None:
    """The second builder waits for the first and reuses its file; nobody truncates anybody's array."""
    import os
    import subprocess
    import sys

    root = make_colour_folder(tmp_path / "d", per_class=6)
    spill = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(root), str(spill)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=100)[0].splitlines() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    expected = sum(int(to_tensor(load_for_model(root / rel, 16)).sum()) for rel in files(root))
    assert [line for out in outputs for line in out if line.startswith("sum")] == [f"sum {expected}"] * 2
    assert sum(line == "decoded" for out in outputs for line in out) == len(files(root))  # decoded once in all
    assert len(list(spill.glob("*.u8"))) == 1 and not list(spill.glob("*.part"))


def test_key_follows_every_preprocessing_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_colour_folder(tmp_path / "d", per_class=3)
    paths = files(root)
    base = cache_mod._cache_key(root, paths, 16)
    for name, value in (("RESIZE_RULE", "stretch"), ("DRAFT_RULE", "full-decode"), ("CACHE_FORMAT", 99)):
        with monkeypatch.context() as m:
            m.setattr(cache_mod, name, value)
            assert cache_mod._cache_key(root, paths, 16) != base, name
    with monkeypatch.context() as m:
        m.setattr(cache_mod.PIL, "__version__", "0.0.1")
        assert cache_mod._cache_key(root, paths, 16) != base


def test_cancelled_build_and_orphans_leave_nothing_behind(tmp_path: Path) -> None:
    root = make_colour_folder(tmp_path / "d", per_class=30)
    paths = files(root)
    spill = tmp_path / "cache"
    calls = iter(range(1000))
    with pytest.raises(Cancelled):  # stops after the first chunk has been written
        build_cache(root, paths, 16, memory_mb=0, spill_dir=spill, should_stop=lambda: next(calls) >= 1)
    assert not [p for p in spill.iterdir() if p.suffix in (".u8", ".part", ".json")]
    (spill / "0123456789abcdef0123.u8").write_bytes(bytes(1000))  # a decode from an older studio, cut short
    key = cache_mod._cache_key(root, paths, 16)
    (spill / f"{key}.4242.part").write_bytes(bytes(1000))  # a build that was killed
    build_cache(root, paths, 16, memory_mb=0, spill_dir=spill)
    assert sorted(p.suffix for p in spill.iterdir() if p.suffix != ".lock") == [".json", ".u8"]


def test_cache_lives_in_the_user_cache_folder_and_can_be_cleared(tmp_path: Path) -> None:
    from studio.core.project import Project

    project = Project(tmp_path / "project")
    assert tmp_path / "cache" in project.cache_dir.parents and project.folder not in project.cache_dir.parents
    root = make_colour_folder(tmp_path / "d", per_class=3)
    build_cache(root, files(root), 16, memory_mb=0, spill_dir=project.cache_dir)
    used = cache_mod.cache_usage(project.cache_dir)
    assert used >= len(files(root)) * 3 * 16 * 16
    assert cache_mod.clear_caches(project.cache_dir) == used and cache_mod.cache_usage(project.cache_dir) == 0


def test_byte_cap_keeps_only_what_fits(tmp_path: Path) -> None:
    root = make_colour_folder(tmp_path / "d", per_class=3)
    spill = tmp_path / "cache"
    for size in (8, 16):
        build_cache(root, files(root), size, memory_mb=0, spill_dir=spill)
    cache_mod.forget_old_caches(spill, keep=3, cap=1)  # nothing fits: only the newest stays
    assert len(list(spill.glob("*.u8"))) == 1


def test_full_disk_while_caching_is_one_line_and_leaves_no_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """Space is claimed before the array is mapped: writing a mapped page into a full disk kills the process."""
    import errno

    from studio.core.atomic import StorageError

    root = make_colour_folder(tmp_path / "d", per_class=3)
    spill = tmp_path / "cache"

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod.os, "posix_fallocate", full, raising=False)
    with pytest.raises(StorageError, match="disk is full") as caught:
        build_cache(root, files(root), 16, memory_mb=0, spill_dir=spill)
    assert str(spill) in str(caught.value)
    assert not [p for p in spill.iterdir() if p.suffix in (".u8", ".part", ".json")]
