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
