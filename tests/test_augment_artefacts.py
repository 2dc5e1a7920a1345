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
