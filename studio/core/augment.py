"""Augmentation settings → torchvision.transforms.v2 pipelines, and normalization.

The pipelines work on the uint8 image tensors held by the decode cache, one
image at a time, so every image gets its own random draw. Evaluation and
prediction apply no randomness at all: the cached square image, scaled and
normalized, which is exactly what `normalize_batch` does for both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torchvision.transforms.v2 import functional as F

from studio.core.architectures import IMAGENET_MEAN, IMAGENET_STD
from studio.core.config import AugmentConfig

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _chance(g: torch.Generator, p: float) -> bool:
    return p > 0 and float(torch.rand((), generator=g)) < p


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _crop_box(g: torch.Generator, size: int, min_scale: float) -> tuple[int, int, int, int]:
    """RandomResizedCrop's rule (area share, log-uniform aspect 3/4..4/3, ten tries, then the whole image),
    except that the box always holds the image's centre.

    A labelled picture usually has its subject near the middle; a zoom that can slide to a corner
    teaches the model that an empty corner is a "cat". Keeping the centre in every crop keeps most
    of the object in view while the framing still varies.
    """
    area = size * size
    middle = size / 2
    for _ in range(10):
        target = area * _uniform(g, min_scale, 1.0)
        ratio = math.exp(_uniform(g, math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= size and 0 < h <= size:
            top = _start(g, size, h, middle)
            left = _start(g, size, w, middle)
            return top, left, h, w
    return 0, 0, size, size


def _start(g: torch.Generator, size: int, length: int, middle: float) -> int:
    """A random start for a span of `length` inside [0, size) that covers `middle`."""
    low, high = max(0, math.ceil(middle - length)), min(size - length, math.floor(middle))
    return int(torch.randint(low, max(low, high) + 1, (), generator=g))


def _rotate_reflected(img: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate with the corners filled by the image's own mirrored edge, not black.

    Black corners are an artefact the model can learn ("tilted pictures have black triangles"); a
    mirrored border continues the picture's own texture and colour. The image is padded by mirroring
    just enough to cover the rotated square, rotated, and cut back to its size.
    """
    _, height, width = img.shape
    theta = math.radians(angle)
    reach = (abs(math.cos(theta)) + abs(math.sin(theta))) / 2
    pad = min(math.ceil(max(height, width) * (reach - 0.5)) + 2, min(height, width) - 1)
    x = torch.nn.functional.pad(img[None].float(), (pad, pad, pad, pad), mode="reflect")[0]
    x = F.rotate(x, angle, interpolation=F.InterpolationMode.BILINEAR)
    x = F.center_crop(x, [height, width])
    return x.round_().clamp_(0, 255).to(img.dtype)


def _erase(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """RandomErasing's rule (2-33 % of the area, aspect 0.3..3.3), filled with mid-grey, not black."""
    _, height, width = img.shape
    for _ in range(10):
        target = height * width * _uniform(g, 0.02, 0.33)
        ratio = math.exp(_uniform(g, math.log(0.3), math.log(3.3)))
        h, w = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < h < height and 0 < w < width:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            out = img.clone()
            out[:, top:top + h, left:left + w] = 128
            return out
    return img


def _jitter(img: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
    """ColorJitter: brightness, contrast, saturation and hue, each by a random factor, in a random order."""
    hue = min(0.5, s / 4)
    for step in torch.randperm(4, generator=g).tolist():
        if step == 0:
            img = F.adjust_brightness(img, _uniform(g, max(0.0, 1 - s), 1 + s))
        elif step == 1:
            img = F.adjust_contrast(img, _uniform(g, max(0.0, 1 - s), 1 + s))
        elif step == 2:
            img = F.adjust_saturation(img, _uniform(g, max(0.0, 1 - s), 1 + s))
        elif hue > 0:
            img = F.adjust_hue(img, _uniform(g, -hue, hue))
    return img


def build_train_transform(settings: AugmentConfig, image_size: int) -> Transform | None:
    """One transform for one uint8 [3,S,S] image and a generator, or None when nothing is switched on.

    Every random choice is drawn from the generator passed in, never from PyTorch's process-wide
    one, so a run is not changed by anything else the program draws meanwhile. Order follows
    torchvision's reference presets: geometry first, then colour, erasing last (it must cut a
    hole into the final picture, not one that is then rotated).
    """
    if not settings.needs_pixels:
        return None
    bilinear = F.InterpolationMode.BILINEAR

    def transform(img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if settings.crop_scale < 1.0:
            top, left, h, w = _crop_box(g, image_size, settings.crop_scale)
            img = F.resized_crop(img, top, left, h, w, [image_size, image_size], interpolation=bilinear,
                                 antialias=True)
        if _chance(g, settings.hflip):
            img = F.horizontal_flip(img)
        if _chance(g, settings.vflip):
            img = F.vertical_flip(img)
        if settings.rotate90:
            k = int(torch.randint(0, 4, (), generator=g))  # right angles: no interpolation, no black corners
            img = torch.rot90(img, k, dims=(-2, -1)) if k else img
        if settings.rotation:
            img = _rotate_reflected(img, _uniform(g, -settings.rotation, settings.rotation))
        if settings.color_jitter:
            img = _jitter(img, g, settings.color_jitter)
        if _chance(g, settings.grayscale):
            img = F.rgb_to_grayscale(img, num_output_channels=3)
        if _chance(g, settings.erasing):
            img = _erase(img, g)
        return img

    return transform


def augment_batch(images: torch.Tensor, transform: Transform | None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `transform` to each image separately: a per-batch draw would flip all or none.

    Without a generator a fresh unseeded one is used (a preview); a run always passes its own.
    """
    if transform is None:
        return images
    g = generator if generator is not None else torch.Generator()
    if generator is None:
        g.seed()  # from the operating system: touches no other generator
    return torch.stack([transform(img, g) for img in images])


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
