"""A run's pixels: decoded once, divided by split, with the normalization the model will use.

Kept apart from the training loop because it is the part that touches the user's files:
every image is read here once, and nothing else in a run reads the image folder again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from studio.core.augment import channel_stats
from studio.core.cache import ImageCache, build_cache
from studio.core.callbacks import Callback
from studio.core.config import RunConfig
from studio.core.errors import TrainingError  # (also re-exported: it was defined here before)
from studio.core.models import architecture_info


@dataclass
class RunPixels:
    cache: ImageCache
    split: dict[str, list[int]]  # positions in the cache per split, unreadable images left out
    labels: torch.Tensor  # class index per cache position
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (path, class, split) per cache position


def decode_images(cfg: RunConfig, root: str, paths: Sequence[str], *, cache_dir: Path, callbacks: Callback,
                  should_stop: Callable[[], bool]) -> ImageCache:
    """Decode every candidate image once, at the run's size; this decode is also the run's pixel check.

    The cache's failures (position → reason) are the files whose data is bad although their header
    passed: the caller reports each of them as a skipped file.
    """
    size = cfg.model.image_size
    callbacks.on_status(f"Checking and decoding {len(paths)} images at {size} px")
    return build_cache(root, paths, size, memory_mb=cfg.data.cache_memory_mb, spill_dir=cache_dir,
                       should_stop=should_stop, progress=lambda d, t: callbacks.on_progress(d, t, "decoding images"))


def prepare_pixels(cfg: RunConfig, cache: ImageCache, paths: Sequence[str], rows: Sequence[tuple[str, str, str]],
                   classes: list[str], *, callbacks: Callback, resume: dict[str, Any] | None = None) -> RunPixels:
    """Divide the decoded `paths` by the split in `rows` (path, class, split), then settle the normalization.

    Normalization is what pretrained weights expect, or is measured on the training
    split only (validation images must not shape the input scaling); a resumed run
    keeps the one its checkpoint recorded.
    """
    position = {path: i for i, path in enumerate(paths)}
    aligned = [(path, "", "") for path in paths]  # positions left out of the split keep no class and no split
    split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    labels = torch.zeros(len(paths), dtype=torch.long)
    for path, class_name, name in rows:
        pos = position.get(path)
        if pos is not None and pos not in cache.failures:
            split[name].append(pos)
            labels[pos] = classes.index(class_name)
            aligned[pos] = (path, class_name, name)
    for name in split:
        split[name].sort()
    if not split["train"]:
        raise TrainingError("No training images are left after the split; add images or lower the val/test share.")
    if resume:
        mean, std = tuple(resume["preprocessing"]["mean"]), tuple(resume["preprocessing"]["std"])
    elif cfg.model.pretrained != "none":
        info = architecture_info(cfg.model.arch)
        mean, std = info.mean, info.std
    else:
        callbacks.on_status("Measuring colour statistics of the training images")
        train = torch.tensor(split["train"])
        mean, std = channel_stats(cache.take(train[i:i + 512]) for i in range(0, len(train), 512))
    return RunPixels(cache, split, labels, mean, std, rows=aligned)
