"""The reference space: features of the bundled ImageNet network, for models whose own features know too little.

A custom network trained from scratch on a few hundred images has learned only what tells its
classes apart; to it, a handwritten digit and a photograph may look alike. The bundled
EfficientNet-Lite0 has seen a million varied images, so its features separate "like the training
images" from "unlike them" whatever the model being judged. The features come from the project's
feature store (`features.FeatureStore`), the one place that computes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def reference_available() -> bool:
    """True when the feature store and the bundled network can be used on this installation."""
    try:
        import efficientnet_lite_pytorch  # noqa: F401

        from studio.core import features  # noqa: F401
        from studio.core.weights import imagenet_state_dict  # noqa: F401
    except ImportError:
        return False
    return True


def reference_embedder(project_folder: str | Path | None = None) -> Any:
    """An object with `embed_images(pil_images) -> [N, 1280]` and `embed_files(paths) -> [N, 1280]`."""
    from studio.core.features import FeatureStore
    from studio.core.project import default_project_dir

    return FeatureStore(Path(project_folder) if project_folder else default_project_dir())


def embed_files(embedder: Any, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """Reference features of files, NaN rows for files that could not be read."""
    out = embedder.embed_files([Path(p) for p in paths], progress=progress, should_stop=should_stop)
    return torch.as_tensor(np.asarray(out, dtype=np.float32))
