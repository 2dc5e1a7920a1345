"""Decode every image once per run into a square uint8 array.

On small images the model's arithmetic, not JPEG decoding, should be the
bottleneck; decoding each file once and keeping the pixels lets every epoch
after the first touch only memory. Sets larger than the memory budget spill
into a file-backed array in the project's cache folder, which a later run
with the same images and size reuses instead of decoding again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from studio.core.errors import Cancelled, ImageError
from studio.core.images import load_for_model, to_tensor


class ImageCache:
    """uint8 [N,3,S,S] pixels for a fixed list of files, indexable by a tensor of positions."""

    def __init__(self, pixels: np.ndarray, failures: dict[int, str]) -> None:
        self.pixels = pixels
        self.failures = failures  # position → reason, for files that became unreadable since the scan

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def image_size(self) -> int:
        return int(self.pixels.shape[-1])

    def take(self, positions: torch.Tensor | Sequence[int]) -> torch.Tensor:
        idx = positions.numpy() if isinstance(positions, torch.Tensor) else np.asarray(positions)
        # Sorted reads are kinder to a disk-backed array; the order is restored afterwards.
        order = np.argsort(idx, kind="stable")
        block = self.pixels[idx[order]]
        out = np.empty_like(block)
        out[order] = block
        return torch.from_numpy(out)

    @property
    def on_disk(self) -> bool:
        return isinstance(self.pixels, np.memmap)


def _cache_key(root: Path, paths: Sequence[str], size: int) -> str:
    digest = hashlib.sha1(f"v1|{size}|{root}".encode())
    for rel in paths:
        try:
            st = (root / rel).stat()
            digest.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{rel}|missing\n".encode())
    return digest.hexdigest()[:20]


def build_cache(
    root: str | Path,
    paths: Sequence[str],
    size: int,
    *,
    memory_mb: int = 2048,
    spill_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 2,
) -> ImageCache:
    """Decode `paths` (relative to `root`) at `size`×`size`.

    A file that fails now although the scan accepted it (changed on disk in
    between) becomes a grey image and is listed in `failures`, so the caller
    can leave it out instead of stopping the run.
    """
    root = Path(root)
    n = len(paths)
    nbytes = n * 3 * size * size
    spill = spill_dir is not None and nbytes > memory_mb * 1024 * 1024
    meta_path: Path | None = None
    if spill:
        assert spill_dir is not None
        folder = Path(spill_dir)
        folder.mkdir(parents=True, exist_ok=True)
        key = _cache_key(root, paths, size)
        data_path, meta_path = folder / f"{key}.u8", folder / f"{key}.json"
        if meta_path.exists() and data_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta.get("complete") and meta.get("count") == n:
                os.utime(meta_path)  # recently used: kept by the clean-up below
                pixels = np.memmap(data_path, dtype=np.uint8, mode="r", shape=(n, 3, size, size))
                if progress:
                    progress(n, n)
                return ImageCache(pixels, {int(k): v for k, v in meta.get("failures", {}).items()})
        pixels = np.memmap(data_path, dtype=np.uint8, mode="w+", shape=(n, 3, size, size))
    else:
        pixels = np.empty((n, 3, size, size), dtype=np.uint8)

    failures: dict[int, str] = {}

    def decode(i: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return i, to_tensor(load_for_model(root / paths[i], size)).numpy(), ""
        except ImageError as exc:
            return i, None, exc.reason

    chunk = 64
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, n, chunk):
            if should_stop and should_stop():
                raise Cancelled()
            for i, arr, reason in pool.map(decode, range(start, min(n, start + chunk))):
                if arr is None:
                    pixels[i] = 128
                    failures[i] = reason
                else:
                    pixels[i] = arr
            if progress:
                progress(min(n, start + chunk), n)
    if progress and n == 0:
        progress(0, 0)
    if isinstance(pixels, np.memmap) and meta_path is not None:
        pixels.flush()
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"complete": True, "count": n, "size": size, "failures": failures}))
        os.replace(tmp, meta_path)
        _forget_old_caches(meta_path.parent, keep=KEEP_DISK_CACHES)
    return ImageCache(pixels, failures)


KEEP_DISK_CACHES = 3


def _forget_old_caches(folder: Path, keep: int) -> None:
    """Disk caches are large; keep the few most recently used, not one per run forever."""
    metas = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for meta in metas[keep:]:
        for path in (meta, meta.with_suffix(".u8")):
            with contextlib.suppress(OSError):  # in use elsewhere or gone: the next clean-up tries again
                path.unlink()
