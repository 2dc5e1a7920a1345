"""Decode every image once per run into a square uint8 array.

On small images the model's arithmetic, not JPEG decoding, should be the
bottleneck; decoding each file once and keeping the pixels lets every epoch
after the first touch only memory. Sets larger than the memory budget spill
into a file-backed array in the user's cache folder, which a later run with
the same images and preprocessing reuses instead of decoding again.

A disk cache is built under a file lock into a temporary file that is renamed
into place, and its description (the .json) is written last: a reader sees a
complete cache or none, two processes never write one file, and a cancelled
or killed build leaves only a temporary file the next build removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
import torch
from filelock import FileLock, Timeout

from studio.core.atomic import StorageError, storage_message, write_text
from studio.core.errors import Cancelled, ImageError
from studio.core.images import DRAFT_RULE, RESIZE_RULE, load_for_model, to_tensor

# Part of every key: a change to how pixels are made must never reuse pixels made the old way.
CACHE_FORMAT = 2
KEEP_DISK_CACHES = 3
# Disk caches beyond this many bytes in all are removed, oldest first ($STUDIO_CACHE_CAP_GB overrides).
DEFAULT_CAP_BYTES = 20 * 1024**3


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
    rules = f"v{CACHE_FORMAT}|{size}|{RESIZE_RULE}|{DRAFT_RULE}|pillow {PIL.__version__}|{root}"
    digest = hashlib.sha1(rules.encode())
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
    if spill_dir is None or n * 3 * size * size <= memory_mb * 1024 * 1024:
        pixels = np.empty((n, 3, size, size), dtype=np.uint8)
        failures = _decode_into(pixels, root, paths, size, progress, should_stop, workers)
        return ImageCache(pixels, failures)
    folder = Path(spill_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = _cache_key(root, paths, size)
    with _locked(folder, key, should_stop):
        found = _reuse(folder, key, n, size)
        if found is None:
            _remove_parts(folder, key)  # left by a build that was killed: we hold its lock now
            _build_on_disk(folder, key, root, paths, size, progress, should_stop, workers)
            found = _reuse(folder, key, n, size)
            assert found is not None
        elif progress:
            progress(n, n)
    forget_old_caches(folder, keep=KEEP_DISK_CACHES)
    return found


def _decode_into(pixels: np.ndarray, root: Path, paths: Sequence[str], size: int,
                 progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None,
                 workers: int) -> dict[int, str]:
    n = len(paths)
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
    return failures


@contextlib.contextmanager
def _locked(folder: Path, key: str, should_stop: Callable[[], bool] | None) -> Iterator[None]:
    """One builder per cache across processes; waiting for another's build can still be cancelled."""
    lock = FileLock(str(folder / f"{key}.lock"))
    while True:
        try:
            lock.acquire(timeout=0.5)
            break
        except Timeout:
            if should_stop and should_stop():
                raise Cancelled() from None
    try:
        yield
    finally:
        lock.release()


def _reuse(folder: Path, key: str, n: int, size: int) -> ImageCache | None:
    meta_path, data_path = folder / f"{key}.json", folder / f"{key}.u8"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (meta.get("complete") and meta.get("count") == n and meta.get("size") == size and data_path.is_file()):
        return None
    if data_path.stat().st_size != n * 3 * size * size:
        return None
    os.utime(meta_path)  # recently used: kept by the clean-up
    pixels = np.memmap(data_path, dtype=np.uint8, mode="r", shape=(n, 3, size, size)) if n else \
        np.empty((0, 3, size, size), dtype=np.uint8)
    return ImageCache(pixels, {int(k): v for k, v in meta.get("failures", {}).items()})


def _build_on_disk(folder: Path, key: str, root: Path, paths: Sequence[str], size: int,
                   progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None,
                   workers: int) -> None:
    """Decode into `<key>.<pid>.part`, rename it to `<key>.u8`, then describe it in `<key>.json`."""
    n = len(paths)
    part = folder / f"{key}.{os.getpid()}.part"
    try:
        failures: dict[int, str] = {}
        if n:
            _reserve(part, n * 3 * size * size)
            pixels = np.memmap(part, dtype=np.uint8, mode="r+", shape=(n, 3, size, size))
            failures = _decode_into(pixels, root, paths, size, progress, should_stop, workers)
            pixels.flush()
            del pixels
        else:
            part.write_bytes(b"")
        os.replace(part, folder / f"{key}.u8")
    finally:
        with contextlib.suppress(OSError):
            part.unlink()
    write_text(folder / f"{key}.json", json.dumps(
        {"complete": True, "count": n, "size": size, "format": CACHE_FORMAT, "failures": failures}))


def _reserve(path: Path, nbytes: int) -> None:
    """Claim the disk space up front: a memory-mapped write into a full disk kills the process (SIGBUS)
    instead of raising, so a full disk must be found here, as a readable error."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, nbytes)
            else:
                os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(storage_message(path, exc)) from None


def _remove_parts(folder: Path, key: str) -> None:
    for part in folder.glob(f"{key}.*.part"):
        with contextlib.suppress(OSError):
            part.unlink()


def cap_bytes() -> int:
    try:
        return int(float(os.environ["STUDIO_CACHE_CAP_GB"]) * 1024**3)
    except (KeyError, ValueError):
        return DEFAULT_CAP_BYTES


def _entries(folder: Path) -> dict[str, list[Path]]:
    """Cache files by key: data, description and temporary parts (lock files are left: deleting a
    lock file another process is about to lock would let two builders in)."""
    found: dict[str, list[Path]] = {}
    for path in folder.glob("*"):
        if path.is_file() and path.suffix in (".u8", ".json", ".part"):
            found.setdefault(path.name.split(".", 1)[0], []).append(path)
    return found


def forget_old_caches(folder: Path, keep: int = KEEP_DISK_CACHES, cap: int | None = None) -> int:
    """Keep the most recently used caches (at most `keep`, within the byte cap); remove the rest and orphans.

    A cache whose lock another process holds is in use and left alone. Returns the bytes freed.
    """
    cap = cap_bytes() if cap is None else cap
    ranked = []
    for key, files in _entries(Path(folder)).items():
        meta = next((p for p in files if p.suffix == ".json"), None)
        used = meta.stat().st_mtime if meta is not None else -1.0  # no description: an orphan, goes first
        ranked.append((used, key, files))
    ranked.sort(key=lambda item: item[0], reverse=True)
    freed, kept, total = 0, 0, 0
    for used, key, files in ranked:
        size = sum(p.stat().st_size for p in files if p.exists())
        if used >= 0 and kept < keep and (total + size <= cap or kept == 0):
            kept, total = kept + 1, total + size
            continue
        freed += _remove_key(Path(folder), key, files)
    return freed


def _remove_key(folder: Path, key: str, files: list[Path]) -> int:
    lock = FileLock(str(folder / f"{key}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return 0  # being built or read by another process right now
    freed = 0
    try:
        for path in files:
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                freed += size
    finally:
        lock.release()
    return freed


def cache_usage(folder: Path) -> int:
    """Bytes the decode caches take in `folder`: what the window shows beside "Clear"."""
    return sum(p.stat().st_size for files in _entries(Path(folder)).values() for p in files if p.exists())


def clear_caches(folder: Path) -> int:
    """Remove every decode cache not in use; returns the bytes freed."""
    return forget_old_caches(folder, keep=0)
