"""A built-in sample data set, drawn on the fly, so a newcomer sees the whole flow work.

Shapes (circle, square, triangle, star) in random colours, sizes and places
on textured backgrounds: easy enough to learn in a minute on a CPU, hard
enough that augmentation and model choice visibly matter. Drawing it takes
about a second and needs nothing shipped or downloaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from studio.core.atomic import write_text, write_with

SAMPLE_CLASSES = ("circle", "square", "triangle", "star")


def sample_dir() -> Path:
    """Where the sample set is drawn: the user's cache, never a data folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "classification-studio" / "sample-shapes"


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(angle + math.pi / 4 + k * math.pi / 2, r) for k in range(4)]
    elif kind == "triangle":
        pts = [(angle + k * 2 * math.pi / 3, r) for k in range(3)]
    else:  # star: alternate outer and inner radius
        pts = [(angle + k * math.pi / 5, r if k % 2 == 0 else r * 0.45) for k in range(10)]
    return [(cx + rad * math.cos(a), cy + rad * math.sin(a)) for a, rad in pts]


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    base = rng.integers(30, 225, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(background).filter(ImageFilter.GaussianBlur(0.8))
    draw = ImageDraw.Draw(img)
    # Light shapes on dark ground and dark on light, so the outline is always visible.
    light = base.mean() < 128
    colour = tuple(int(v) for v in (rng.integers(170, 256, size=3) if light else rng.integers(0, 90, size=3)))
    r = size * rng.uniform(0.24, 0.38)
    cx, cy = rng.uniform(r, size - r, size=2)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=colour)
    return img


def make_sample_dataset(folder: str | Path | None = None, *, per_class: int = 200, size: int = 64,
                        seed: int = 0) -> Path:
    """Write (or reuse) the shapes set: `folder/<shape>/<shape>_NNN.png`."""
    folder = Path(folder) if folder else sample_dir()
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == f"{per_class},{size},{seed}":
        return folder
    rng = np.random.default_rng(seed)
    for kind in SAMPLE_CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = draw_shape(kind, size, rng)
            write_with(folder / kind / f"{kind}_{i:03d}.png", lambda handle, im=image: im.save(handle, format="PNG"))
    write_text(marker, f"{per_class},{size},{seed}")  # last: its presence means every image is whole
    return folder
