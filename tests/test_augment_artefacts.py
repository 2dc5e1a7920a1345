"""Augmentation that teaches no artefacts: tilted images have no black corners, zooms keep the middle."""

from __future__ import annotations

import torch

from studio.core.augment import _crop_box, build_train_transform
from studio.core.config import AugmentConfig

SIZE = 48


def test_a_tilt_fills_its_corners_with_the_picture_not_black() -> None:
    torch.manual_seed(0)
    img = (torch.rand(3, SIZE, SIZE) * 60 + 150).to(torch.uint8)  # bright texture, nothing below 150
    transform = build_train_transform(AugmentConfig(rotation=40.0), SIZE)
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        out = transform(img, g)
        assert out.shape == img.shape and out.dtype == torch.uint8
        corners = torch.stack([out[:, :4, :4], out[:, :4, -4:], out[:, -4:, :4], out[:, -4:, -4:]])
        assert int(corners.min()) >= 140, corners.min()  # black corners would be 0


def test_every_zoom_keeps_the_centre_of_the_picture() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        top, left, h, w = _crop_box(g, SIZE, 0.3)
        assert top <= SIZE / 2 <= top + h and left <= SIZE / 2 <= left + w
        assert top >= 0 and top + h <= SIZE and left >= 0 and left + w <= SIZE


def test_batched_flips_and_right_angles_move_pixels_exactly() -> None:
    """One resampling for the whole batch must still be an exact mirror or quarter turn, image by image."""
    from studio.core.augment import augment_batch

    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (16, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    mirrored = augment_batch(batch, build_train_transform(AugmentConfig(hflip=1.0), SIZE), g)
    assert torch.equal(mirrored, batch.flip(-1))
    turned = augment_batch(batch, build_train_transform(AugmentConfig(rotate90=True), SIZE), g)
    kinds = set()
    for before, after in zip(batch, turned):
        match = [k for k in range(4) if torch.equal(after, torch.rot90(before, k, dims=(-2, -1)))]
        assert len(match) == 1
        kinds.add(match[0])
    assert len(kinds) >= 3  # each image draws its own turn


def test_a_zoom_shows_the_part_of_the_picture_its_box_names() -> None:
    """The crop map is the crop: a left-to-right ramp zoomed keeps its order and stays inside its range."""
    ramp = torch.arange(SIZE, dtype=torch.float32).mul(255 / (SIZE - 1)).round().to(torch.uint8)
    img = ramp.view(1, 1, SIZE).expand(3, SIZE, SIZE).clone()
    out = build_train_transform(AugmentConfig(crop_scale=0.3), SIZE)(img, torch.Generator().manual_seed(2))
    row = out[0, SIZE // 2].float()
    assert (row[1:] >= row[:-1] - 1).all()  # still rising: no flip, no turn
    assert row[0] > 0 or row[-1] < 255  # zoomed in: the whole ramp no longer fits
    assert row[0] <= 128 <= row[-1]  # and the box holds the centre
