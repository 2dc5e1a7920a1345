"""Which images are the same picture: exact copies by content, near copies by features.

Shared by leak-free splitting (a group must land in one split) and the audit (a
group inside one class is clutter, across classes a label conflict, across a
past run's train and validation a leak). Near copies are pairs whose feature
vectors (L2-normalised, from studio.core.features) have a cosine similarity of
at least `threshold`: the same picture re-encoded, resized or shifted by a few
per cent stays above it, two different pictures of one class stay below.

Linking pairs transitively could chain a long string of merely similar images
(upscaled 8x8 digits all look alike) into one giant group, so a group whose
least similar pair is not itself close is split again at a stricter threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Without thumbnails: the cosine similarity of features from which two images count as one picture.
# Features alone are weak evidence (distinct upscaled digits reach 0.97, a JPEG re-encode can fall to 0.82),
# which is why callers should pass thumbnails.
DEFAULT_THRESHOLD = 0.97
# With thumbnails: each image's CANDIDATES nearest by features, from CANDIDATE_THRESHOLD, are compared by pixels.
CANDIDATE_THRESHOLD = 0.75
CANDIDATES = 8
# Re-encoded and resized copies match at 0.998 or more, 5 %-cropped ones at 0.97-0.99; 99.9 % of distinct
# neighbouring digits stay below 0.988 (measured on load_digits and skimage photo crops).
PIXEL_THRESHOLD = 0.97
# A group is kept only if its least alike pair scores at least this much below the threshold; else re-split.
_DIAMETER_SLACK = 0.01
_STEP = 0.005
_DENSE_LIMIT = 300
_MATCH_SIZE = 24
_SHIFT = 1
_ZOOM_CROPS = (48, 45)
_BLOCK = 1024
# Pairs that the coarse match puts just below the threshold are matched again, finely: the copy of a picture
# cropped on one side and resized back is off by a fraction of a pixel and a few per cent in scale, which
# whole-pixel shifts of a 24 px view miss on fine texture (fur, foliage), scoring 0.90-0.96 instead of ~0.99.
_FINE_BAND = 0.07
_FINE_SCALES = (1.0, 1.035, 1.07, 1.105)
_FINE_PARTNERS = 3
# What a remembered grouping was made with (studio.core.near_copies): any change here makes new groups.
METHOD = (f"pixels {PIXEL_THRESHOLD} candidates {CANDIDATES}@{CANDIDATE_THRESHOLD} fine {_FINE_BAND} {_FINE_SCALES} "
          f"zoom {_ZOOM_CROPS} shift {_SHIFT} match {_MATCH_SIZE} slack {_DIAMETER_SLACK}/{_STEP} v1")


def near_duplicate_groups(features: np.ndarray, *, threshold: float | None = None,
                          thumbnails: np.ndarray | None = None) -> np.ndarray:
    """An int group id per row; rows in one group are near copies, singletons get their own id.

    With `thumbnails` (FeatureStore.thumbnails), feature neighbours are only candidates and a pair counts
    when its grey thumbnails match allowing a small shift and zoom (`threshold` is then that match,
    default PIXEL_THRESHOLD); pooled features alone confuse different pictures of one thing with copies.
    Rows that are NaN (files that did not decode) are always singletons.
    """
    feats = np.asarray(features, dtype=np.float32)
    n = len(feats)
    valid = ~np.isnan(feats).any(axis=1) if n else np.zeros(0, dtype=bool)
    clean = np.where(valid[:, None], feats, 0.0).astype(np.float32)
    if thumbnails is None:
        limit = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        pairs = _pairs_above(clean, valid, limit)
        scores = np.einsum("ij,ij->i", clean[pairs[:, 0]], clean[pairs[:, 1]]) if len(pairs) else np.zeros(0)
    else:
        limit = PIXEL_THRESHOLD if threshold is None else float(threshold)
        valid &= ~np.isnan(thumbnails).reshape(n, -1).any(axis=1)
        pairs = np.unique(np.concatenate([
            _pairs_above(clean, valid, CANDIDATE_THRESHOLD, top=CANDIDATES),
            _pairs_above(_pixel_vectors(thumbnails), valid, CANDIDATE_THRESHOLD, top=CANDIDATES)]), axis=0)
        scores = pixel_match(thumbnails, pairs)
        known = dict(zip(map(tuple, pairs.tolist()), scores.tolist()))  # a group's pairs are mostly scored here
        pairs = pairs[scores >= limit]
        scores = scores[scores >= limit]

    def all_pairs(members: np.ndarray) -> np.ndarray:
        local = np.argwhere(np.triu(np.ones((len(members), len(members)), dtype=bool), k=1))
        if thumbnails is None:
            return np.einsum("ij,ij->i", clean[members[local[:, 0]]], clean[members[local[:, 1]]])
        wanted = members[local]
        found = np.array([known.get(pair, np.nan) for pair in map(tuple, wanted.tolist())], dtype=np.float32)
        missing = np.isnan(found)
        if missing.any():
            found[missing] = pixel_match(thumbnails, wanted[missing])
        return found

    groups = np.arange(n, dtype=np.int64)
    for members in _components(n, pairs):
        for part in _tighten(members, pairs, scores, limit, all_pairs):
            groups[part] = part.min()
    return renumber(groups)


def exact_copy_groups(hashes: Sequence[str | None]) -> np.ndarray:
    """An int group id per file: files with equal content hashes share one; None is always alone."""
    first: dict[str, int] = {}
    groups = np.arange(len(hashes), dtype=np.int64)
    for i, digest in enumerate(hashes):
        if digest is not None:
            groups[i] = first.setdefault(digest, i)
    return renumber(groups)


def merge_groups(*groupings: np.ndarray) -> np.ndarray:
    """Rows linked by any of the groupings end up in one group (e.g. exact copies whose features are NaN)."""
    n = len(groupings[0])
    pairs = [(int(i), int(j)) for g in groupings for i, j in _same_group_pairs(g)]
    groups = np.arange(n, dtype=np.int64)
    for members in _components(n, np.array(pairs, dtype=np.int64).reshape(-1, 2)):
        groups[members] = members.min()
    return renumber(groups)


def group_lists(groups: np.ndarray) -> list[list[int]]:
    """The groups of two or more rows, each a sorted list of row indices, largest first."""
    by_id: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        by_id.setdefault(g, []).append(i)
    found = [members for members in by_id.values() if len(members) > 1]
    return sorted(found, key=lambda m: (-len(m), m[0]))


def _pairs_above(feats: np.ndarray, valid: np.ndarray, limit: float, top: int | None = None) -> np.ndarray:
    """Unique (i, j), i < j, with similarity >= limit (among each row's `top` nearest, if given), in blocks
    so 10,000 images need no 400 MB matrix."""
    found: list[np.ndarray] = []
    n = len(feats)
    for start in range(0, n, _BLOCK):
        sims = feats[start:start + _BLOCK] @ feats.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        if top is not None and top < n - 1:
            cut = -np.partition(-sims, top - 1, axis=1)[:, top - 1:top]
            sims[sims < cut] = -np.inf
        rows, cols = np.nonzero(sims >= limit)
        rows = rows + start
        keep = valid[rows] & valid[cols]
        found.append(np.stack([np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found).astype(np.int64), axis=0).reshape(-1, 2)


def pixel_match(thumbnails: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair, the best normalised correlation of the two grey thumbnails over small shifts and zooms.

    A copy re-encoded or resized correlates at about 1; one cropped by a few per cent does once
    aligned, which the shifts (about 4 % each way) and a zoom of about 7 % allow for.
    """
    if not len(pairs):
        return np.zeros(0, dtype=np.float32)
    used, pairs = np.unique(pairs, return_inverse=True)
    pairs = pairs.reshape(-1, 2)
    thumbnails = np.asarray(thumbnails)[used]
    views = [_zoomed(thumbnails, crop) for crop in _ZOOM_CROPS]
    best = _shifted_correlation(views, pairs)
    close = _best_partners(pairs, best, len(used))
    close = close[(best[close] >= PIXEL_THRESHOLD - _FINE_BAND) & (best[close] < PIXEL_THRESHOLD)]
    if len(close):
        best[close] = np.maximum(best[close], _fine_match(thumbnails, views[0], pairs[close]))
    return best


def _best_partners(pairs: np.ndarray, scores: np.ndarray, n: int, top: int = _FINE_PARTNERS) -> np.ndarray:
    """Indices of the pairs among some image's `top` best-scoring ones: a copy's original is among its
    closest matches, and refining only those keeps the fine match to a few pairs per image."""
    order = np.argsort(-scores, kind="stable")
    ends = np.concatenate([pairs[order, 0], pairs[order, 1]])
    which = np.concatenate([order, order])
    by_image = np.argsort(ends, kind="stable")  # per image, its pairs in order of falling score
    ends, which = ends[by_image], which[by_image]
    starts = np.searchsorted(ends, ends, side="left")
    return np.unique(which[np.arange(len(ends)) - starts < top])


def _fine_match(thumbnails: np.ndarray, targets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Best correlation of one image's 24 px view with a window of the other, over sub-pixel offsets and
    zooms of up to 10 %, tried both ways round (either image may be the cropped one).

    The window is sampled bilinearly from a 2x2-averaged 48 px thumbnail, which approximates the
    area-averaged 24 px view it is compared with; offsets go in half-pixel steps of the 24 px view and
    only as far as the zoom leaves room (plus one step), so different pictures gain little freedom.
    """
    full = np.nan_to_num(np.asarray(thumbnails, dtype=np.float32))
    side = full.shape[1]
    blur = (full[:, :-1, :-1] + full[:, 1:, :-1] + full[:, :-1, 1:] + full[:, 1:, 1:]) / 4  # centres at k + 1
    used, local = np.unique(pairs, return_inverse=True)  # only the images of these pairs are resampled
    local = local.reshape(-1, 2)
    blur, targets = blur[used], _unit(targets[used])
    best = np.full(len(pairs), -1.0, dtype=np.float32)
    grid = (np.arange(_MATCH_SIZE) + 0.5 - _MATCH_SIZE / 2) / _MATCH_SIZE
    for scale in _FINE_SCALES:
        window = side / scale
        reach = (side - window) / 2 + 1.0
        for dy in np.arange(-reach, reach + 1e-6, 1.0):
            rows = _bilinear(blur, side / 2 + dy + grid * window, axis=1)
            for dx in np.arange(-reach, reach + 1e-6, 1.0):
                sampled = _unit(_bilinear(rows, side / 2 + dx + grid * window, axis=2))
                for src, dst in ((0, 1), (1, 0)) if scale > 1 else ((0, 1),):
                    score = np.einsum("ij,ij->i", sampled[local[:, src]], targets[local[:, dst]])
                    np.maximum(best, score, out=best)
    return best


def _bilinear(images: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Images resampled along one axis at `coords` (thumbnail pixels; the blurred image's pixel k sits at k + 1)."""
    pos = np.clip(coords - 1.0, 0, images.shape[axis] - 1.001)
    low = np.floor(pos).astype(int)
    weight = (pos - low).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = len(coords)
    weight = weight.reshape(shape)
    return np.take(images, low, axis=axis) * (1 - weight) + np.take(images, low + 1, axis=axis) * weight


def _unit(views: np.ndarray) -> np.ndarray:
    """Views flattened, centred and scaled to length 1 (flat ones stay 0): dot products are correlations."""
    flat = views.reshape(len(views), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.where(norm > 1e-3, flat / np.maximum(norm, 1e-3), 0.0).astype(np.float32)


def _pixel_vectors(thumbnails: np.ndarray) -> np.ndarray:
    """Thumbnails as centred unit vectors: their dot product is the unshifted correlation."""
    flat = _zoomed(thumbnails, thumbnails.shape[1]).reshape(len(thumbnails), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return (flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)).astype(np.float32)


def _zoomed(thumbnails: np.ndarray, crop: int) -> np.ndarray:
    """The centre `crop` px of each 48 px thumbnail, area-averaged to _MATCH_SIZE px."""
    full = np.nan_to_num(np.asarray(thumbnails, dtype=np.float32))
    side = full.shape[1]
    lo = (side - crop) // 2
    centre = full[:, lo:lo + crop, lo:lo + crop]
    idx = (np.arange(_MATCH_SIZE + 1) * crop / _MATCH_SIZE).round().astype(int)
    rows = np.add.reduceat(centre, idx[:-1], axis=1) / np.diff(idx)[None, :, None]
    return (np.add.reduceat(rows, idx[:-1], axis=2) / np.diff(idx)[None, None, :]).astype(np.float32)


def _shifted_correlation(views: list[np.ndarray], pairs: np.ndarray) -> np.ndarray:
    """Per pair, the best correlation over shifts of up to _SHIFT px and the zoom combinations (either
    image zoomed, or neither). Each image's overlap window is centred and normalised once per shift,
    so a pair costs one dot product per combination."""
    n = views[0].shape[1]
    combos = [(0, 0)] + [(0, k) for k in range(1, len(views))] + [(k, 0) for k in range(1, len(views))]
    best = np.full(len(pairs), -1.0, dtype=np.float32)
    for dy in range(-_SHIFT, _SHIFT + 1):
        for dx in range(-_SHIFT, _SHIFT + 1):
            first = [_unit(v[:, max(0, dy):n + min(0, dy), max(0, dx):n + min(0, dx)]) for v in views]
            second = [_unit(v[:, max(0, -dy):n + min(0, -dy), max(0, -dx):n + min(0, -dx)]) for v in views]
            for start in range(0, len(pairs), 4096):
                a, b = pairs[start:start + 4096, 0], pairs[start:start + 4096, 1]
                for ka, kb in combos:
                    score = np.einsum("ij,ij->i", first[ka][a], second[kb][b])
                    np.maximum(best[start:start + len(a)], score, out=best[start:start + len(a)])
    return best


def _components(n: int, pairs: np.ndarray) -> list[np.ndarray]:
    """Connected components of two or more rows (union-find with path halving)."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    for i, j in pairs.tolist():
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    order = np.argsort(roots, kind="stable")
    splits = np.flatnonzero(np.diff(roots[order])) + 1
    return [part for part in np.split(order, splits) if len(part) > 1]


def _tighten(members: np.ndarray, pairs: np.ndarray, scores: np.ndarray, limit: float,
             all_pairs: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Split a chained group at rising thresholds until even its least alike members are close.

    `all_pairs(members)` scores every pair of members (condensed, row-major upper triangle) the way
    `scores` scored the linked ones. A very large group is first split on its linked pairs alone.
    """
    if len(members) <= 2:
        return [members]
    if len(members) > _DENSE_LIMIT:
        keep = np.isin(pairs[:, 0], members) & (scores >= limit + _STEP)
        order = np.sort(members)
        local = np.searchsorted(order, pairs[keep])
        parts = [order[sub] for sub in _components(len(order), local)]
        return [p for part in parts for p in _tighten(part, pairs, scores, limit + _STEP, all_pairs)]
    matrix = np.full((len(members), len(members)), 1.0, dtype=np.float32)
    matrix[np.triu_indices(len(members), k=1)] = all_pairs(members)
    matrix = np.minimum(matrix, matrix.T)
    return [members[sub] for sub in _split_dense(matrix, np.arange(len(members)), limit)]


def _split_dense(matrix: np.ndarray, rows: np.ndarray, limit: float) -> list[np.ndarray]:
    if len(rows) <= 2 or limit >= 1.0 or matrix[np.ix_(rows, rows)].min() >= limit - _DIAMETER_SLACK:
        return [rows]
    stricter = limit + _STEP
    local = np.argwhere(np.triu(matrix[np.ix_(rows, rows)] >= stricter, k=1))
    parts: list[np.ndarray] = []
    for sub in _components(len(rows), local):
        parts.extend(_split_dense(matrix, rows[sub], stricter))
    return parts


def _same_group_pairs(groups: np.ndarray) -> list[tuple[int, int]]:
    first: dict[int, int] = {}
    pairs = []
    for i, g in enumerate(np.asarray(groups).tolist()):
        if g in first:
            pairs.append((first[g], i))
        else:
            first[g] = i
    return pairs


def renumber(groups: np.ndarray) -> np.ndarray:
    """Group ids 0..k-1 in order of first appearance, so equal inputs give equal outputs."""
    _, first_index, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first_index))
    return order[inverse].astype(np.int64)
