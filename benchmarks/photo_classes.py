"""Class folders of real photographs: crops of scikit-image's sample photos, one class per photo.

    python3 benchmarks/photo_classes.py OUT_DIR [--per-class 40] [--size 96]

Each class is one photograph; its images are random square crops of it, resized to --size px.
Train crops come from the left 70 % of the photo, the held-out ones (OUT_DIR/../<name>-test) from
the right 30 %, so no test crop overlaps a training one. Class names include non-Latin scripts
on purpose, so figures and lists show whether such names render.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket",
           "組織 tissue": "immunohistochemistry"}


def _rgb(name: str) -> np.ndarray:
    from skimage import data

    pixels = np.asarray(getattr(data, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    return pixels[..., :3].astype(np.uint8)


def write_photo_classes(out: Path, per_class: int = 40, size: int = 96, seed: int = 0) -> tuple[Path, Path]:
    """(train folder, held-out test folder) of crops; written once, reused when already there."""
    train, test = Path(out), Path(f"{out}-test")
    rng = np.random.default_rng(seed)
    for label, source in CLASSES.items():
        pixels = _rgb(source)
        h, w = pixels.shape[:2]
        cut = int(w * 0.7)
        for folder, x0, x1, count in ((train, 0, cut, per_class), (test, cut, w, max(4, per_class // 4))):
            target = folder / label
            if target.is_dir() and len(list(target.iterdir())) >= count:
                continue
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                side = int(rng.integers(min(h, x1 - x0) // 3, min(h, x1 - x0) + 1))
                x = int(rng.integers(x0, x1 - side + 1))
                y = int(rng.integers(0, h - side + 1))
                crop = Image.fromarray(pixels[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
                crop.save(target / f"{source}-{i:03d}.jpg", quality=90)
    return train, test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args(argv)
    train, test = write_photo_classes(Path(args.out), args.per_class, args.size)
    print(train, test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
