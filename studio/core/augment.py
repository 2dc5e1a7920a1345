"""Augmentation settings → torchvision.transforms.v2 pipelines, and normalization.

The pipelines work on the uint8 image tensors held by the decode cache, one
image at a time, so every image gets its own random draw. Evaluation and
prediction apply no randomness at all: the cached square image, scaled and
normalized, which is exactly what `normalize_batch` does for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torchvision.transforms import v2

from studio.core.architectures import IMAGENET_MEAN, IMAGENET_STD
from studio.core.config import AugmentConfig


class RandomRightAngle(torch.nn.Module):
    """Rotate by 0, 90, 180 or 270 degrees: no interpolation, no black corners."""

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, ()).item())
        return torch.rot90(img, k, dims=(-2, -1)) if k else img


def build_train_transform(settings: AugmentConfig, image_size: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """One transform for one uint8 [3,S,S] image, or None when nothing is switched on.

    Order follows torchvision's reference presets: geometry first, then colour,
    erasing last (it must cut a hole into the final picture, not one that is
    then rotated).
    """
    steps: list[torch.nn.Module] = []
    if settings.crop_scale < 1.0:
        steps.append(v2.RandomResizedCrop(image_size, scale=(settings.crop_scale, 1.0), antialias=True))
    if settings.hflip:
        steps.append(v2.RandomHorizontalFlip(settings.hflip))
    if settings.vflip:
        steps.append(v2.RandomVerticalFlip(settings.vflip))
    if settings.rotate90:
        steps.append(RandomRightAngle())
    if settings.rotation:
        steps.append(v2.RandomRotation(settings.rotation, interpolation=v2.InterpolationMode.BILINEAR))
    if settings.color_jitter:
        s = settings.color_jitter
        steps.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4)))
    if settings.grayscale:
        steps.append(v2.RandomGrayscale(settings.grayscale))
    if settings.erasing:
        # RandomErasing wants floats; erase with the image's own mean-grey so it is not a black square.
        steps.extend([v2.ToDtype(torch.float32, scale=True), v2.RandomErasing(settings.erasing, value=0.5),
                      v2.ToDtype(torch.uint8, scale=True)])
    return v2.Compose(steps) if steps else None


def augment_batch(images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Apply `transform` to each image separately: a per-batch draw would flip all or none."""
    if transform is None:
        return images
    return torch.stack([transform(img) for img in images])


def normalize_batch(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], *, channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 [N,3,H,W] → normalized float; the same arithmetic for training, evaluation and prediction."""
    x = images.to(dtype=torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    x = x.sub_(m).div_(s).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std over uint8 image batches, in float64 so large sets do not drift.

    Called on the training split only: measuring on validation images would
    leak them into the model's input scaling.
    """
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for batch in batches:
        x = batch.to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.pow(2).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if count == 0:
        return IMAGENET_MEAN, IMAGENET_STD
    mean = total / count
    var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)  # a constant-colour channel must not divide by zero
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())
