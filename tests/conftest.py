"""Shared fixtures: tiny generated image folders that a model learns in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}


def make_colour_folder(root: Path, per_class: int = 12, size: int = 24, seed: int = 0,
                       classes: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """Class = dominant colour, with noise and a random bright square so images differ."""
    rng = np.random.default_rng(seed)
    for name, rgb in (classes or COLOURS).items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 25, size=(size, size, 3)), 0, 255).astype(np.uint8)
            x, y = rng.integers(0, size // 2, size=2)
            arr[y:y + size // 4, x:x + size // 4] = 255
            Image.fromarray(arr).save(root / name / f"{name}_{i:02d}.png")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with size and mtime: to prove nothing was written."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for f in dirnames + filenames:
            p = Path(dirpath) / f
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns if p.is_file() else 0)
    return out


@pytest.fixture
def colour_folder(tmp_path: Path) -> Path:
    return make_colour_folder(tmp_path / "data")


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tmp_path / "project"


@pytest.fixture(scope="session")
def _backbone_graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the exported feature network, shared by every test and subprocess of the session:
    exporting it costs seconds, and it depends only on the bundled weights."""
    return tmp_path_factory.mktemp("backbone")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _backbone_graphs: Path) -> None:
    """Runs, caches and settings of a test never land in the real user's folders."""
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "studio-home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("STUDIO_BACKBONE_DIR", str(_backbone_graphs))
