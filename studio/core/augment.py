"""Augmentation settings → one batched resampling plus colour steps, and normalization.

The augmentation works on whole uint8 batches from the decode cache, with every image's own
random draw: zoom, flips and turns become one affine map per image and a single resampling of
the batch; colour changes are per-image factors. Evaluation and prediction apply no randomness
at all: the cached square image, scaled and normalized, which is exactly what `normalize_batch`
does for both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from studio.core.architectures import IMAGENET_MEAN, IMAGENET_STD
from studio.core.config import AugmentConfig


def _crop_boxes(g: torch.Generator, n: int, size: int, min_scale: float) -> torch.Tensor:
    """[n, 4] boxes (top, left, h, w): RandomResizedCrop's rule (area share, log-uniform aspect 3/4..4/3, ten
    tries, then the whole image), except that every box holds the image's centre.

    A labelled picture usually has its subject near the middle; a zoom that can slide to a corner
    teaches the model that an empty corner is a "cat". Keeping the centre in every crop keeps most
    of the object in view while the framing still varies.
    """
    area = size * size
    target = area * (min_scale + (1.0 - min_scale) * torch.rand(n, 10, generator=g, dtype=torch.float64))
    ratio = torch.exp(math.log(3 / 4) + math.log(16 / 9) * torch.rand(n, 10, generator=g, dtype=torch.float64))
    w, h = torch.round(torch.sqrt(target * ratio)), torch.round(torch.sqrt(target / ratio))
    fits = (w > 0) & (w <= size) & (h > 0) & (h <= size)
    first = torch.argmax(fits.to(torch.int8), dim=1)  # the first try that fits
    found = fits[torch.arange(n), first]
    h = torch.where(found, h[torch.arange(n), first], float(size))
    w = torch.where(found, w[torch.arange(n), first], float(size))
    top, left = _starts(g, size, h), _starts(g, size, w)
    return torch.stack([top, left, h, w], dim=1)


def _starts(g: torch.Generator, size: int, length: torch.Tensor) -> torch.Tensor:
    """Random whole-pixel starts of spans of `length` inside [0, size) that cover the middle."""
    middle = size / 2
    low = torch.clamp(torch.ceil(middle - length), min=0)
    high = torch.maximum(low, torch.minimum(size - length, torch.full_like(length, math.floor(middle))))
    return low + torch.floor(torch.rand(len(length), generator=g, dtype=torch.float64) * (high - low + 1))


def _crop_box(g: torch.Generator, size: int, min_scale: float) -> tuple[int, int, int, int]:
    """One box of `_crop_boxes`, as whole pixels."""
    top, left, h, w = (int(v) for v in _crop_boxes(g, 1, size, min_scale)[0])
    return top, left, h, w


def _geometry(settings: AugmentConfig, g: torch.Generator, n: int, size: int) -> torch.Tensor | None:
    """[n, 2, 3] maps from output to input positions (normalised, -1..1) for zoom, flips and turns, or None.

    All of them are affine, so one map per image does them all in a single resampling of the whole
    batch: on 32-px images this made augmentation ten times cheaper than running them one image at
    a time, where it had cost more than the training step itself. Resampling reads outside the
    picture by mirroring, so tilted images get no black corners (a model would learn them).
    """
    maps = torch.zeros(n, 2, 3, dtype=torch.float64)
    maps[:, 0, 0] = maps[:, 1, 1] = 1.0
    changed = False

    def then(step: torch.Tensor) -> None:  # compose: the output passes through `step` before what is there
        nonlocal maps
        full = torch.cat([step, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 1, 3)], dim=1)
        maps = maps @ full

    if settings.crop_scale < 1.0:
        top, left, h, w = _crop_boxes(g, n, size, settings.crop_scale).unbind(1)
        step = torch.zeros(n, 2, 3, dtype=torch.float64)
        step[:, 0, 0], step[:, 1, 1] = w / size, h / size
        step[:, 0, 2], step[:, 1, 2] = (2 * left + w) / size - 1, (2 * top + h) / size - 1
        then(step)
        changed = True
    for p, axis in ((settings.hflip, 0), (settings.vflip, 1)):
        if p > 0:
            sign = torch.where(torch.rand(n, generator=g) < p, -1.0, 1.0).to(torch.float64)
            step = torch.zeros(n, 2, 3, dtype=torch.float64)
            step[:, 0, 0] = step[:, 1, 1] = 1.0
            step[:, axis, axis] = sign
            then(step)
            changed = True
    angle = torch.zeros(n, dtype=torch.float64)
    if settings.rotate90:
        angle += (math.pi / 2) * torch.randint(0, 4, (n,), generator=g).to(torch.float64)
    if settings.rotation:
        angle += torch.deg2rad((2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * settings.rotation)
    if settings.rotate90 or settings.rotation:
        cos, sin = torch.cos(angle), torch.sin(angle)
        step = torch.zeros(n, 2, 3, dtype=torch.float64)
        step[:, 0, 0], step[:, 0, 1], step[:, 1, 0], step[:, 1, 1] = cos, -sin, sin, cos
        then(step)
        changed = True
    return maps if changed else None


def _resample(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    x = images.to(torch.float32)
    grid = torch.nn.functional.affine_grid(maps.to(torch.float32), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, as torchvision's rgb_to_grayscale: [n,1,H,W]."""
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _jitter(x: torch.Tensor, g: torch.Generator, s: float) -> torch.Tensor:
    """ColorJitter on float [n,3,H,W] in 0..255: brightness, contrast, saturation and hue, each image with its
    own factors, in an order drawn per batch."""
    n = len(x)

    def factor(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(n, generator=g)).view(n, 1, 1, 1)

    hue = min(0.5, s / 4)
    for step in torch.randperm(4, generator=g).tolist():
        if step == 0:
            x = (x * factor(max(0.0, 1 - s), 1 + s)).clamp(0, 255)
        elif step == 1:
            mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (mean + factor(max(0.0, 1 - s), 1 + s) * (x - mean)).clamp(0, 255)
        elif step == 2:
            grey = _grey(x)
            x = (grey + factor(max(0.0, 1 - s), 1 + s) * (x - grey)).clamp(0, 255)
        elif hue > 0:
            x = _turn_hue(x, factor(-hue, hue))
    return x


# RGB <-> YIQ: hue is the angle of the chroma (I, Q) plane, so turning it is a rotation there.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = torch.linalg.inv(_YIQ)


def _turn_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    angle = 2 * math.pi * turns.view(-1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    spin = torch.zeros(len(x), 3, 3)
    spin[:, 0, 0] = 1.0
    spin[:, 1, 1], spin[:, 1, 2], spin[:, 2, 1], spin[:, 2, 2] = cos, -sin, sin, cos
    mix = _RGB @ spin @ _YIQ  # [n,3,3]
    return torch.einsum("nij,njhw->nihw", mix, x).clamp(0, 255)


def _erase(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """RandomErasing's rule (2-33 % of the area, aspect 0.3..3.3), filled with mid-grey, not black."""
    n, _, height, width = x.shape
    chosen = torch.rand(n, generator=g) < p
    for i in torch.nonzero(chosen).view(-1).tolist():
        for _ in range(10):
            target = height * width * (0.02 + 0.31 * float(torch.rand((), generator=g)))
            ratio = math.exp(math.log(0.3) + math.log(11) * float(torch.rand((), generator=g)))
            h, w = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (), generator=g))
                left = int(torch.randint(0, width - w + 1, (), generator=g))
                x[i, :, top:top + h, left:left + w] = 128
                break
    return x


class TrainTransform:
    """The run's augmentation, applied to a whole uint8 [N,3,S,S] batch at once with a draw per image.

    Every random choice comes from the generator passed in, never from PyTorch's process-wide
    one, so a run is not changed by anything else the program draws meanwhile. Order follows
    torchvision's reference presets: geometry first, then colour, erasing last (it must cut a
    hole into the final picture, not one that is then turned).
    """

    def __init__(self, settings: AugmentConfig, image_size: int) -> None:
        self.settings, self.size = settings, image_size

    def batch(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg, n = self.settings, len(images)
        maps = _geometry(cfg, g, n, images.shape[-1])
        x = _resample(images, maps) if maps is not None else images.to(torch.float32)
        if cfg.color_jitter:
            x = _jitter(x, g, cfg.color_jitter)
        if cfg.grayscale > 0:
            chosen = (torch.rand(n, generator=g) < cfg.grayscale).view(n, 1, 1, 1)
            x = torch.where(chosen, _grey(x).expand_as(x), x)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
        return _erase(x, g, cfg.erasing) if cfg.erasing > 0 else x

    def __call__(self, img: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """One [3,S,S] image (the window's preview)."""
        return self.batch(img.unsqueeze(0), g)[0]


def build_train_transform(settings: AugmentConfig, image_size: int) -> TrainTransform | None:
    """The run's augmentation, or None when nothing is switched on (then nothing is resampled)."""
    return TrainTransform(settings, image_size) if settings.needs_pixels else None


def augment_batch(images: torch.Tensor, transform: TrainTransform | None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `transform` with a draw per image: a per-batch draw would flip all or none.

    Without a generator a fresh unseeded one is used (a preview); a run always passes its own.
    """
    if transform is None:
        return images
    g = generator if generator is not None else torch.Generator()
    if generator is None:
        g.seed()  # from the operating system: touches no other generator
    return transform.batch(images, g)


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
