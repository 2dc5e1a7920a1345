"""Near-duplicate grouping: copies re-encoded, resized or shifted group together; distinct pictures do not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from studio.core.features import FeatureStore
from studio.core.neardup import exact_copy_groups, group_lists, merge_groups, near_duplicate_groups


def _scene(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A smooth random picture: blobs of colour, so shifted copies still correlate and distinct ones do not."""
    small = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def _variants(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=50)
    shift = round(w * 0.05)
    return [Image.open(io.BytesIO(buffer.getvalue())), img.resize((w * 3 // 4, h * 3 // 4)),
            img.crop((shift, shift, w, h)).resize((w, h))]


def _scenes(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` distinct pictures saved in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    paths = [folder / f"scene{i}.png" for i in range(count)]
    for path in paths:
        _scene(rng).save(path)
    return paths


def test_planted_copies_group_and_distinct_pictures_stay_apart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    paths = _scenes(data, 14, seed=3)
    planted = []
    for i in (0, 5):
        for k, copy in enumerate(_variants(Image.open(paths[i]))):
            paths.append(data / f"copy{i}_{k}.png")
            copy.convert("RGB").save(paths[-1])
            planted.append((i, len(paths) - 1))
    store = FeatureStore(tmp_path / "project")
    groups = near_duplicate_groups(store.embed_files(paths), thumbnails=store.thumbnails(paths))
    assert all(groups[a] == groups[b] for a, b in planted)
    assert sorted(len(g) for g in group_lists(groups)) == [4, 4]


def test_chains_of_similar_rows_are_split() -> None:
    # A walk where each step is close to the next but the ends are far apart: no one giant group.
    rng = np.random.default_rng(0)
    steps = [rng.normal(size=64)]
    for _ in range(80):
        steps.append(steps[-1] + rng.normal(scale=0.1, size=64))
    feats = np.array(steps, dtype=np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    assert min(float(a @ b) for a, b in zip(feats, feats[1:])) >= 0.99  # linked end to end...
    assert float(feats[0] @ feats[-1]) < 0.8  # ...yet the ends are different pictures
    groups = near_duplicate_groups(feats, threshold=0.99)
    sizes = [len(g) for g in group_lists(groups)]
    assert max(sizes, default=1) <= 6


def test_nan_rows_are_alone_and_exact_copies_merge() -> None:
    feats = np.eye(4, dtype=np.float32)
    feats[3] = np.nan
    feats = np.vstack([feats, feats[0]])
    groups = near_duplicate_groups(feats)
    assert groups[0] == groups[4] and len(set(groups.tolist())) == 4
    exact = exact_copy_groups(["a", "b", None, "b", None])
    assert group_lists(exact) == [[1, 3]]
    assert group_lists(merge_groups(groups, exact)) == [[0, 4], [1, 3]]


def _fur(rng: np.random.Generator, size: int = 96) -> Image.Image:
    """Fine texture (like fur or tissue): where a fraction of a pixel of misalignment costs most correlation."""
    noise = rng.normal(0, 1, (size // 8, size // 8))
    grey = np.clip(128 + 40 * noise, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")


def test_a_copy_cropped_on_one_side_and_resized_back_matches_its_original() -> None:
    from studio.core.features import _thumbnail
    from studio.core.neardup import PIXEL_THRESHOLD, pixel_match

    rng = np.random.default_rng(3)
    originals = [_fur(rng) for _ in range(4)]
    copies = [im.crop((5, 0, 96, 91)).resize((96, 96), Image.Resampling.BILINEAR) for im in originals]
    thumbs = np.stack([_thumbnail(np.asarray(im)) for im in originals + copies]).astype(np.float32)
    same = pixel_match(thumbs, np.array([[i, i + 4] for i in range(4)]))
    other = pixel_match(thumbs, np.array([[i, (i + 1) % 4 + 4] for i in range(4)]))
    assert (same >= PIXEL_THRESHOLD).all(), same
    assert (other < 0.5).all(), other


def test_groups_are_remembered_per_set_of_pictures(tmp_path: Path, monkeypatch) -> None:
    """A second run on the same pictures reads the groups back, even after files are renamed; a new picture
    makes them again. Exact copies share a group; a file that does not decode is alone."""
    import studio.core.near_copies as near_copies

    data = tmp_path / "data"
    paths = _scenes(data, 10, seed=4)
    for k, copy in enumerate(_variants(Image.open(paths[2]))):
        paths.append(data / f"copy{k}.png")
        copy.convert("RGB").save(paths[-1])
    (data / "exact.png").write_bytes(paths[7].read_bytes())
    (data / "broken.png").write_bytes(b"not an image")
    (data / "broken-copy.png").write_bytes(b"not an image")
    (data / "other-broken.png").write_bytes(b"not an image either")
    paths += [data / "exact.png", data / "broken.png", data / "broken-copy.png", data / "other-broken.png"]
    store = FeatureStore(tmp_path / "project")
    made: list[int] = []
    real = near_copies.neardup.near_duplicate_groups
    monkeypatch.setattr(near_copies.neardup, "near_duplicate_groups",
                        lambda feats, **kw: made.append(len(feats)) or real(feats, **kw))

    first = near_copies.near_copy_groups(store, paths)
    assert made == [14]  # one row per decoded file: the broken one is not matched
    assert sorted(len(g) for g in group_lists(first)) == [2, 2, 4]
    assert first[7] == first[13] and first[2] == first[10] and first[14] == first[15]  # copies, decoded or not
    assert list(first).count(first[16]) == 1

    renamed = [p.with_name(f"moved-{p.name}") for p in paths]
    for old, new in zip(paths, renamed):
        old.rename(new)
    assert np.array_equal(near_copies.near_copy_groups(FeatureStore(tmp_path / "project"), renamed), first)
    assert made == [14]

    renamed.append(data / "new.png")
    _scene(np.random.default_rng(5)).save(renamed[-1])
    again = near_copies.near_copy_groups(store, renamed)
    assert made == [14, 15]
    assert np.array_equal(again[:-1], first)
