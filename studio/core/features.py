"""Image features from the bundled ImageNet backbone, computed once per image and kept in the project.

The audit, leak-free splitting and the unfamiliar-image check all compare images
by what a pretrained network sees in them. Running that network is the slow part,
so each file's 1280 pooled EfficientNet-Lite0 features are stored beside the
project, keyed by the file's content hash and the preprocessing identity: a
renamed or moved file is not recomputed, an edited one is, and a change of model,
input size or resize rule never reuses features made the old way.

The store is its own SQLite file under `<project>/features/`. Every batch is one
transaction, so a cancelled or killed computation leaves only complete rows, which
the next call reuses. Content hashes are remembered per (path, size, mtime) so a
second call on 10,000 unchanged files reads none of their bytes. Results made from many
images' features at once (the near-copy groups of studio.core.near_copies) are kept in it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from studio.core import feature_engine
from studio.core.cache import Cancelled
from studio.core.images import DRAFT_RULE, RESIZE_RULE, ImageError, as_rgb, load_for_model, resize_square

EMBED_DIM = 1280
# 160 px costs about half of 224 px per image on CPU (the network's work grows with the pixel count), and
# the audit meets its targets at it (benchmarks/audit_quality.py); 224 px was not needed for them.
INPUT_SIZE = 160
# Small pictures (digits, icons, 32-px patches) are embedded at twice their own size instead, at least 64 px:
# blowing 32-px images up to 160 px cost 8.0 s instead of 2.0 s for the 1,348 training digits (2 cores),
# and the audit of the digits still met its targets at 64 px (precision at N 78-80 % against 81-82 %).
SMALL_NATIVE = 48
_SIZE_SAMPLE = 256
# Bump when the way features are made changes (normalisation, pooling, dtype).
FEATURE_VERSION = 1
FOLDER = "features"
_HASH_CHUNK = 1 << 20
# Grey thumbnails kept beside the features: pixel evidence for near-duplicates (studio.core.neardup),
# where pooled features alone cannot tell a re-encoded copy from a different picture of the same thing.
THUMB_SIZE = 48

_SCHEMA = ("""
CREATE TABLE IF NOT EXISTS features (
    hash TEXT NOT NULL, identity TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (hash, identity)
)""", """
CREATE TABLE IF NOT EXISTS thumbs (
    hash TEXT NOT NULL, identity TEXT NOT NULL, pixels BLOB NOT NULL, PRIMARY KEY (hash, identity)
)""", """
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL
)""", """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, made INTEGER NOT NULL, value BLOB NOT NULL
)""")
# Results derived from many images' features (studio.core.near_copies) kept per project: the newest few,
# since each set of images (a class added, one image fixed) makes a new one.
RESULTS_KEPT = 8


def _network() -> torch.nn.Module:
    """The backbone in PyTorch, for callers that build on it (the export of the reference space)."""
    return feature_engine.network()


def input_size_for(native: int) -> int:
    """The size the backbone sees images of this native size (their shorter side) at."""
    if native <= 0 or native > SMALL_NATIVE:
        return INPUT_SIZE
    return max(64, 32 * math.ceil(2 * native / 32))


def size_for_files(paths: Sequence[str | Path]) -> int:
    """`input_size_for` the median shorter side of the files (read from up to 256 headers, nothing decoded).

    Every caller that embeds a project's images asks with the same images, so they all meet at the
    same size; a file that cannot be opened is left out here and reported where it is decoded.
    """
    if not paths:
        return INPUT_SIZE
    step = max(1, len(paths) // _SIZE_SAMPLE)
    sides = []
    for path in list(paths)[::step]:
        try:
            with PIL.Image.open(path) as img:
                sides.append(min(img.size))
        except (OSError, ValueError, PIL.Image.DecompressionBombError):
            continue
    return input_size_for(int(np.median(sides))) if sides else INPUT_SIZE


def identity(size: int = INPUT_SIZE) -> str:
    """What makes two feature vectors comparable: model file, input size, resize rule and version."""
    from studio.core.weights import lite0_file

    path = lite0_file()
    try:
        file_size = path.stat().st_size
    except OSError:
        file_size = -1
    return f"lite0:{path.name}:{file_size}|{size}px|{RESIZE_RULE}|{DRAFT_RULE}|v{FEATURE_VERSION}"


def _forward(pixels: np.ndarray) -> np.ndarray:
    """uint8 [n,S,S,3] -> L2-normalised float32 [n,1280]; mean/std 0.5 as the Lite weights expect."""
    x = (pixels.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    size = int(pixels.shape[1])
    run, _ = feature_engine.engine(identity(size), size)
    feats = run(x).astype(np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return (feats / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_images(images: Sequence[PIL.Image.Image], batch_size: int = 32, size: int = INPUT_SIZE) -> np.ndarray:
    """Same features for in-memory images (no cache): for predict time, at the size the run's were made."""
    out = np.empty((len(images), EMBED_DIM), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pixels = np.stack([np.asarray(resize_square(as_rgb(img), size), dtype=np.uint8) for img in chunk])
        out[start:start + len(chunk)] = _forward(pixels)
    return out


def content_hash(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureStore:
    """Features of a project's images, reused across calls and processes."""

    def __init__(self, project_folder: str | Path) -> None:
        self.folder = Path(project_folder).expanduser().resolve() / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "features.sqlite"
        with self._connect() as db:
            with contextlib.suppress(sqlite3.DatabaseError):
                db.execute("PRAGMA journal_mode = WAL")
            for create in _SCHEMA:
                db.execute(create)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=60)
        try:
            with db:
                yield db
        finally:
            db.close()

    def hashes(self, paths: Sequence[str | Path]) -> list[str | None]:
        """Content hash per file (None where it cannot be read), remembered per path, size and mtime."""
        keys = [str(Path(p).resolve()) for p in paths]
        with self._connect() as db:
            known = {row[0]: row[1:] for row in db.execute("SELECT path, size, mtime_ns, hash FROM file_hashes")}
        out: list[str | None] = []
        fresh: list[tuple[str, int, int, str]] = []
        for key in keys:
            try:
                st = os.stat(key)
            except OSError:
                out.append(None)
                continue
            seen = known.get(key)
            if seen and seen[0] == st.st_size and seen[1] == st.st_mtime_ns:
                out.append(seen[2])
                continue
            try:
                digest = content_hash(key)
            except OSError:
                out.append(None)
                continue
            out.append(digest)
            fresh.append((key, st.st_size, st.st_mtime_ns, digest))
        if fresh:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", fresh)
        return out

    def _stored(self, hashes: set[str], ident: str, table: str = "features") -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        column, dtype = ("vec", np.float32) if table == "features" else ("pixels", np.uint8)
        with self._connect() as db:
            for digest, blob in db.execute(f"SELECT hash, {column} FROM {table} WHERE identity = ?", (ident,)):
                if digest in hashes:
                    found[digest] = np.frombuffer(blob, dtype=dtype)
        return found

    def recall(self, key: str) -> bytes | None:
        """A result kept under `key`, or None."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def keep(self, key: str, value: bytes) -> None:
        """Keep a result under `key`, dropping all but the newest RESULTS_KEPT."""
        with self._connect() as db:
            made = db.execute("SELECT COALESCE(MAX(made), 0) + 1 FROM results").fetchone()[0]
            db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", (key, made, value))
            db.execute("DELETE FROM results WHERE made <= ?", (made - RESULTS_KEPT,))

    def thumbnails(self, paths: Sequence[str | Path], size: int | None = None, **embed_options: object
                   ) -> np.ndarray:
        """float32 (n, 48, 48) grey thumbnails made with the features (computed with them when missing); NaN
        for files that fail to decode."""
        size = size or size_for_files(paths)
        self.embed_files(paths, size=size, **embed_options)  # type: ignore[arg-type]
        hashes = self.hashes(paths)
        stored = self._stored({h for h in hashes if h}, identity(size), "thumbs")
        out = np.full((len(paths), THUMB_SIZE, THUMB_SIZE), np.nan, dtype=np.float32)
        for i, digest in enumerate(hashes):
            if digest in stored:
                out[i] = stored[digest].reshape(THUMB_SIZE, THUMB_SIZE)
        return out

    def cached(self, paths: Sequence[str | Path], size: int | None = None) -> np.ndarray:
        """The features already stored for these files, NaN rows for the rest: nothing is decoded or computed."""
        hashes = self.hashes(paths)
        stored = self._stored({h for h in hashes if h}, identity(size or size_for_files(paths)))
        out = np.full((len(paths), EMBED_DIM), np.nan, dtype=np.float32)
        for i, digest in enumerate(hashes):
            if digest in stored:
                out[i] = stored[digest]
        return out

    def embed_files(self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, batch_size: int = 32,
                    size: int | None = None) -> np.ndarray:
        """float32 (n, 1280), rows L2-normalised; rows of files that fail to decode are NaN.

        `size` is the backbone's input size; by default the one these files' own size calls for.
        Raises Cancelled when should_stop() turns true; batches already done stay stored (whole rows only).
        """
        stop = should_stop or (lambda: False)
        size = size or size_for_files(paths)
        ident = identity(size)
        hashes = self.hashes(paths)
        out = np.full((len(paths), EMBED_DIM), np.nan, dtype=np.float32)
        wanted = {h for h in hashes if h}
        thumbs = self._stored(wanted, ident, "thumbs")
        stored = {h: v for h, v in self._stored(wanted, ident).items() if h in thumbs}
        todo: dict[str, list[int]] = {}
        for i, digest in enumerate(hashes):
            if digest is None:
                continue
            if digest in stored:
                out[i] = stored[digest]
            else:
                todo.setdefault(digest, []).append(i)
        total, done = len(todo), 0
        if progress:
            progress(0, total)
        pending = list(todo.items())
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(pending), batch_size):
                if stop():
                    raise Cancelled()
                chunk = pending[start:start + batch_size]
                decoded = list(pool.map(lambda item: _pixels(paths[item[1][0]], size), chunk))
                self._compute(chunk, decoded, out, ident)
                done += len(chunk)
                if progress:
                    progress(done, total)
        return out

    def _compute(self, chunk: list[tuple[str, list[int]]], decoded: list[np.ndarray | None],
                 out: np.ndarray, ident: str) -> None:
        good = [k for k, pixels in enumerate(decoded) if pixels is not None]
        if not good:
            return
        feats = _forward(np.stack([decoded[k] for k in good]))
        rows, thumbs = [], []
        for k, vec in zip(good, feats, strict=True):
            digest, positions = chunk[k]
            out[positions] = vec
            rows.append((digest, ident, vec.tobytes()))
            thumbs.append((digest, ident, _thumbnail(decoded[k]).tobytes()))
        with self._connect() as db:  # one transaction: a row has both or neither
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO thumbs VALUES (?, ?, ?)", thumbs)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    grey = PIL.Image.fromarray(pixels).convert("L")
    return np.asarray(grey.resize((THUMB_SIZE, THUMB_SIZE), PIL.Image.Resampling.BOX), dtype=np.uint8)


def _pixels(path: str | Path, size: int) -> np.ndarray | None:
    """Decoded through the one decode path; None for a file that does not decode (its row stays NaN)."""
    try:
        return np.asarray(load_for_model(path, size), dtype=np.uint8)
    except (ImageError, OSError):
        return None
