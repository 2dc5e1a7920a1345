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
from studio.core.errors import TrainingError  # noqa: F401  (re-exported: it was defined here before)
from studio.core.models import architecture_info


@dataclass
class RunPixels:
    cache: ImageCache
    split: dict[str, list[int]]  # positions in the cache per split, unreadable images left out
    labels: torch.Tensor  # class index per cache position
    mean: tuple[float, ...]
    std: tuple[float, ...]
    notes: list[str] = field(default_factory=list)


def prepare_pixels(cfg: RunConfig, root: str, rows: Sequence[tuple[str, str, str]], classes: list[str], *,
                   cache_dir: Path, callbacks: Callback, should_stop: Callable[[], bool],
                   resume: dict[str, Any] | None = None) -> RunPixels:
    """Decode `rows` (path, class, split) once, then settle the normalization.

    Normalization is what pretrained weights expect, or is measured on the training
    split only (validation images must not shape the input scaling); a resumed run
    keeps the one its checkpoint recorded.
    """
    size = cfg.model.image_size
    callbacks.on_status(f"Decoding {len(rows)} images at {size} px")
    cache = build_cache(root, [row[0] for row in rows], size, memory_mb=cfg.data.cache_memory_mb,
                        spill_dir=cache_dir, should_stop=should_stop,
                        progress=lambda d, t: callbacks.on_progress(d, t, "decoding images"))
    notes = []
    if cache.failures:
        notes.append(f"{len(cache.failures)} image(s) became unreadable after the scan and were left out.")
    split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for pos, (_, _, name) in enumerate(rows):
        if pos not in cache.failures:
            split[name].append(pos)
    if not split["train"]:
        raise TrainingError("No training images are left after the split; add images or lower the val/test share.")
    labels = torch.tensor([classes.index(row[1]) for row in rows], dtype=torch.long)

    if resume:
        mean, std = tuple(resume["preprocessing"]["mean"]), tuple(resume["preprocessing"]["std"])
    elif cfg.model.pretrained != "none":
        info = architecture_info(cfg.model.arch)
        mean, std = info.mean, info.std
    else:
        callbacks.on_status("Measuring colour statistics of the training images")
        train = torch.tensor(split["train"])
        mean, std = channel_stats(cache.take(train[i:i + 512]) for i in range(0, len(train), 512))
    return RunPixels(cache, split, labels, mean, std, notes)
