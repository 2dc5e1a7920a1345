"""Near-copy groups of a project's images: computed once per set of images, then remembered.

Leak-free splitting and the audit both ask which images are one picture. The answer takes
seconds (pixel matching of every image's nearest neighbours: 2 s for 1,348 digits on two
cores) and depends only on the pictures, so it is kept in the project's feature store under
their content hashes, in order, and the matching method. A second run on the same images, or
an audit after a run, reads it back; adding, removing or editing an image, or changing how
copies are matched, makes a new entry. Renaming a file (same content, same place in the
list) does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from studio.core import neardup
from studio.core.features import FeatureStore, identity, size_for_files


def near_copy_groups(store: FeatureStore, files: Sequence[str | Path], *,
                     progress: Callable[[int, int], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """A group id per file (0..k-1, in order of first appearance): exact copies and near copies share one;
    files that cannot be read or decoded are alone. Raises Cancelled when should_stop() turns true."""
    files = [str(f) for f in files]
    size = size_for_files(files)  # fixed once: a subset's median size could call for other features
    features = store.embed_files(files, progress=progress, should_stop=should_stop, size=size)
    hashes = store.hashes(files)
    # Rows that decoded, in the caller's order: the same rows give the same groups as matching them afresh.
    rows = [i for i, (digest, ok) in enumerate(zip(hashes, ~np.isnan(features).any(axis=1), strict=True))
            if digest is not None and ok]
    key = _key([hashes[i] for i in rows], size)  # type: ignore[misc]
    remembered = store.recall(key)
    if remembered is not None and len(remembered) == 4 * len(rows):
        found = np.frombuffer(remembered, dtype=np.int32)
    else:
        thumbnails = store.thumbnails([files[i] for i in rows], size=size)
        found = neardup.near_duplicate_groups(features[rows], thumbnails=thumbnails).astype(np.int32)
        store.keep(key, found.tobytes())
    groups = np.arange(len(files), dtype=np.int64) + len(files)  # the rest alone...
    groups[rows] = found
    # ...unless an exact copy of another file, decoded or not.
    return neardup.merge_groups(groups, neardup.exact_copy_groups(hashes))


def _key(hashes: list[str], size: int) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{identity(size)}|{neardup.METHOD}\n".encode())
    for one in hashes:
        digest.update(one.encode())
    return f"near-copies:{digest.hexdigest()}"
