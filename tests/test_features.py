"""The feature store: one row per image, reused across calls, NaN for what does not decode, cancellable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.core import features
from studio.core.cache import Cancelled
from studio.core.features import EMBED_DIM, FeatureStore, embed_images


def _pictures(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        path = folder / f"img{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = features._forward

    def forward(pixels: np.ndarray) -> np.ndarray:
        calls.append(len(pixels))
        return real(pixels)

    monkeypatch.setattr(features, "_forward", forward)
    return calls


def test_features_are_normalised_stored_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _pictures(tmp_path / "data", 5)
    broken = tmp_path / "data" / "broken.png"
    broken.write_bytes(b"not an image")
    calls = _counting(monkeypatch)
    seen: list[tuple[int, int]] = []
    first = FeatureStore(tmp_path / "project").embed_files([*paths, broken], progress=lambda d, t: seen.append((d, t)))
    assert first.shape == (6, EMBED_DIM) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first[:5], axis=1), 1.0, atol=1e-5)
    assert np.isnan(first[5]).all()
    assert seen[-1] == (6, 6) and sum(calls) == 5
    # A new store on the same project, with a renamed copy: nothing is computed again.
    copy = tmp_path / "data" / "renamed.png"
    copy.write_bytes(paths[2].read_bytes())
    again = FeatureStore(tmp_path / "project").embed_files([copy, *paths])
    assert sum(calls) == 5
    np.testing.assert_array_equal(again[0], first[2])
    np.testing.assert_array_equal(again[1:], first[:5])


def test_in_memory_images_match_files(tmp_path: Path) -> None:
    paths = _pictures(tmp_path / "data", 2)
    stored = FeatureStore(tmp_path / "project").embed_files(paths)
    live = embed_images([Image.open(p) for p in paths], size=features.size_for_files(paths))
    np.testing.assert_allclose(live, stored, atol=1e-5)
    # Different pictures give different features.
    assert float(stored[0] @ stored[1]) < 0.999


def test_small_pictures_are_embedded_near_their_own_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40-px pictures go through the backbone at 96 px, not blown up to 160: a sixth of the work at 32 px."""
    assert [features.input_size_for(n) for n in (28, 32, 40, 48, 49, 64, 500)] == [64, 64, 96, 96, 160, 160, 160]
    paths = _pictures(tmp_path / "data", 3)  # 40 × 48 px
    assert features.size_for_files(paths) == 96
    sizes: list[int] = []
    real = features._forward
    monkeypatch.setattr(features, "_forward", lambda pixels: sizes.append(pixels.shape[1]) or real(pixels))
    store = FeatureStore(tmp_path / "project")
    store.embed_files(paths)
    assert sizes == [96]
    # Stored under that size: the 160-px identity finds nothing, the files' own finds every row.
    assert np.isnan(store.cached(paths, size=160)).all() and not np.isnan(store.cached(paths)).any()
    assert store.thumbnails(paths).shape == (3, 48, 48) and sizes == [96]  # made with the features


def test_cancel_leaves_only_whole_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _pictures(tmp_path / "data", 6)
    calls = _counting(monkeypatch)
    store = FeatureStore(tmp_path / "project")
    with pytest.raises(Cancelled):
        store.embed_files(paths, batch_size=2, should_stop=lambda: len(calls) >= 1)
    assert calls == [2]
    full = store.embed_files(paths, batch_size=2)
    assert calls == [2, 2, 2]
    assert not np.isnan(full).any()


def test_the_fast_engine_gives_the_features_pytorch_gives() -> None:
    """ONNX Runtime runs the backbone when installed; its features are PyTorch's to float precision."""
    from studio.core import feature_engine
    from studio.core.features import INPUT_SIZE, identity

    pytest.importorskip("onnxruntime")
    run, name = feature_engine.engine(identity(), INPUT_SIZE)
    assert name == "onnxruntime"
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    assert np.abs(run(x) - feature_engine.torch_engine(x)).max() < 1e-3


def test_without_onnxruntime_the_features_come_from_pytorch(monkeypatch) -> None:
    import sys

    from studio.core import feature_engine
    from studio.core.features import INPUT_SIZE

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    feature_engine.engine.cache_clear()
    try:
        run, name = feature_engine.engine("no-ort", INPUT_SIZE)
        assert name == "pytorch" and run is feature_engine.torch_engine
    finally:
        feature_engine.engine.cache_clear()
