"""Is the validation figure honest? How close the evaluated images are to the training images.

A model is right on a validation image that is a near-copy of a training image for the wrong
reason: it remembers it. When many validation images have such a twin, and the model does
much better on those than on images unlike anything it trained on, the figure a user reads is
too good. Both signals come from the project's image features (EfficientNet-Lite0, cosine
similarity), never from the model being judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.diagnostic import Diagnostic

# Cosine similarity of L2-normalised features above which two images count as near-copies.
NEAR_COPY = 0.92
# Share of evaluated images with a twin in training from which the figure is in doubt.
SHARED_WARN = 0.2


def split_similarity(train_features: np.ndarray, eval_features: np.ndarray, correct: Sequence[bool],
                     threshold: float = NEAR_COPY) -> dict[str, float | None]:
    """near_copy_share, and accuracy on evaluated images with and without a near-copy in training."""
    train = np.asarray(train_features, dtype=np.float32)
    evals = np.asarray(eval_features, dtype=np.float32)
    ok = np.asarray(correct, dtype=bool)
    keep = np.isfinite(evals).all(axis=1)
    train = train[np.isfinite(train).all(axis=1)]
    evals, ok = evals[keep], ok[keep]
    if not len(train) or not len(evals):
        return {"near_copy_share": None, "acc_near": None, "acc_far": None, "evaluated": float(len(evals))}
    nearest = np.concatenate([(evals[i:i + 512] @ train.T).max(axis=1) for i in range(0, len(evals), 512)])
    twin = nearest >= threshold
    return {
        "near_copy_share": float(twin.mean()),
        "acc_near": float(ok[twin].mean()) if twin.any() else None,
        "acc_far": float(ok[~twin].mean()) if (~twin).any() else None,
        "evaluated": float(len(evals)),
    }


def run_similarity(project_folder: str | Path, root: str | Path, train_paths: Sequence[str],
                   eval_paths: Sequence[str], correct: Sequence[bool]) -> dict[str, float | None] | None:
    """`split_similarity` from the features the run's split already stored (the near-duplicate pass);
    None when they are not there: judging a figure must not cost a feature pass of its own."""
    try:
        from studio.core.features import FOLDER, FeatureStore
    except ImportError:
        return None
    if not (Path(project_folder) / FOLDER / "features.sqlite").is_file():
        return None  # a run folder outside its project: nothing stored, and nothing to create there
    store = FeatureStore(project_folder)
    files = [str(Path(root, *p.split("/"))) for p in list(train_paths) + list(eval_paths)]
    features = store.cached(files)
    train, evals = features[:len(train_paths)], features[len(train_paths):]
    if np.isnan(train).any(axis=1).mean() > 0.5 or np.isnan(evals).any(axis=1).mean() > 0.5:
        return None
    return split_similarity(train, evals, correct)


def leak_diagnostics(similarity: Mapping[str, float | None], history: Sequence[Mapping[str, Any]]
                     ) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    share = similarity.get("near_copy_share")
    near, far = similarity.get("acc_near"), similarity.get("acc_far")
    last = history[-1] if history else {}
    train_acc, val_acc = last.get("train_acc"), last.get("val_acc")
    if share is not None and share >= SHARED_WARN and train_acc is not None and val_acc is not None \
            and val_acc >= train_acc - 0.05:
        out.append(Diagnostic(
            "warning", "The split may leak: validation images have near-copies in training",
            f"{100 * share:.0f}% of the validation images are near-copies of training images, and validation "
            f"accuracy ({100 * val_acc:.0f}%) is as high as training accuracy ({100 * train_acc:.0f}%): the "
            "figure may measure memory, not skill.",
            "On the Data page keep near-duplicates together, and group images by patient, specimen or batch "
            "(Keep together: sub-folder or file-name pattern), then train again.",
            {"near_copy_share": share},
        ))
    if near is not None and far is not None and near - far > 0.15 and (share or 0) >= 0.05:
        out.append(Diagnostic(
            "warning", "Accuracy is higher than the images' similarity justifies",
            f"On validation images with a near-copy in training the model is right {100 * near:.0f}% of the time, "
            f"on images unlike any training image only {100 * far:.0f}%: expect about {100 * far:.0f}% on "
            "genuinely new images.",
            "Keep related images together on the Data page (near-duplicates, sub-folder or file-name pattern) "
            "so validation holds only genuinely new images.",
            {"acc_near": near, "acc_far": far},
        ))
    return out
