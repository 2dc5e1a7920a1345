"""What a channel responds to: the top patches of a channel built to find a planted pattern contain it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from studio.core import top_patches
from studio.core.runfiles import write_split
from studio.core.top_patches import find_top_patches, receptive_side, run_top_patches

SIZE = 32
PLUS = [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)]  # a 3×3 plus sign


def _images(n: int = 40, planted: int = 10, seed: int = 0) -> tuple[torch.Tensor, set[int], dict[int, tuple]]:
    """Grey noise; the first `planted` images carry a red plus somewhere."""
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(128, 20, size=(n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    where = {}
    for i in range(planted):
        y, x = (int(v) for v in rng.integers(2, SIZE - 5, size=2))
        for dy, dx in PLUS:
            arr[i, y + dy, x + dx] = (255, 0, 0)
        where[i] = (y, x)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), set(range(planted)), where


def _detector() -> nn.Sequential:
    """Channel 0 of the first conv matches a red plus; a second conv after pooling passes channel 0 on."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3, padding=1))
    with torch.no_grad():
        w = torch.full((3, 3, 3), -0.5)
        for dy, dx in PLUS:
            w[:, dy, dx] = torch.tensor([1.0, -1.0, -1.0])  # red up, green and blue down
        net[0].weight[0] = w
        net[0].bias[0] = -1.0
        net[3].weight.zero_()
        net[3].weight[0, 0] = 0.05  # mostly the centre, a little of the neighbours, as trained filters are
        net[3].weight[0, 0, 1, 1] = 1.0
        net[3].bias.zero_()
    return net


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def _red_pixels(patch: np.ndarray) -> int:
    return int(((patch[..., 0] > 200) & (patch[..., 1] < 60) & (patch[..., 2] < 60)).sum())


@pytest.mark.parametrize("layer", ["0", "3"])
def test_top_patches_of_a_plus_detector_contain_the_plus(layer: str) -> None:
    pixels, planted, _ = _images()
    net = _detector()
    result = find_top_patches(net, layer, pixels, _normalize, k=9, batch_size=16)
    assert result.index.shape == (net[int(layer)].out_channels, 9)
    assert set(result.index[0].tolist()) <= planted  # only images that carry the plus
    for patch in result.patches(pixels, 0):
        assert patch.shape == (result.side, result.side, 3)
        assert _red_pixels(patch) >= 4, patch[..., 0]  # the plus (5 pixels) is in the patch, nearly whole
    # Channel 1 of the deeper layer was zeroed: no planted image is special to it.
    assert result.side >= 3 and (layer == "0" or result.side > 3)


def test_receptive_side_grows_with_depth() -> None:
    net = _detector()
    assert receptive_side(net, "0", SIZE) == 3  # one 3×3 convolution
    # 3×3, pooled by 2, then 3×3: at most 3 + 1 + 2·2 = 8 (max pooling passes on one pixel of each window)
    assert 6 <= receptive_side(net, "3", SIZE) <= 8


def test_a_run_computes_once_and_then_reads_its_cache(tmp_path: Path, monkeypatch) -> None:
    pixels, _, _ = _images(n=12, planted=4)
    root = tmp_path / "data"
    rows = []
    for i, img in enumerate(pixels.permute(0, 2, 3, 1).numpy()):
        (root / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "a" / f"{i}.png")
        rows.append((f"a/{i}.png", "a", "train"))
    run = tmp_path / "run"
    run.mkdir()
    write_split(run, rows)
    ckpt = run / "best.pt"
    ckpt.write_bytes(b"stands for the checkpoint's identity")
    net = _detector()
    first, sample = run_top_patches(run, ckpt, net, "0", SIZE, _normalize, str(root), k=3)
    assert sample.shape == (12, 3, SIZE, SIZE) and list((run / "inspect").glob("top-patches-*.npz"))

    def fail(*_a, **_k):
        raise AssertionError("computed again despite the cache")

    monkeypatch.setattr(top_patches, "find_top_patches", fail)
    again, _ = run_top_patches(run, ckpt, net, "0", SIZE, _normalize, str(root), k=3)
    assert np.array_equal(again.index, first.index) and again.side == first.side
