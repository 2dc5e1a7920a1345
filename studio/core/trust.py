"""After training: the temperature and the familiarity limit a run's answers are judged by.

Fitted once per run on the run's own images (Gaussians on the training split, temperature
and limit on the validation split), stored in the best checkpoint as plain tensors and
numbers, and read back by the `Predictor`, the evaluation and every export. A checkpoint
from before this existed simply has none of it: its answers are uncalibrated and its
verdict is "unavailable", never an error.

Which features the familiarity is measured in is decided here, once: by default the bundled
EfficientNet-Lite0's ImageNet features (the "reference" space), for every model. A network
learned from scratch on a few hundred images has seen too little to know what is foreign, and
a pretrained one tuned to a few classes keeps only what tells those apart; the reference
network has seen a million varied images. A run's own features ("network") are used only when
asked for, or when the bundled network is not installed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.core.atomic import write_bytes
from studio.core.calibration import Reliability, calibrated, fit_temperature, nll, reliability
from studio.core.familiarity import DEFAULT_SHARE, Familiarity, FamiliarityError, check_dict, fit_familiarity

NEIGHBOURS_FILE = "neighbours.npz"  # the training images' features in the familiarity space, for Inspect
SPACE_WORDS = {"network": "the model's own features",
               "reference": "the features of the general-purpose image network that comes with the studio "
                            "(EfficientNet-Lite0, trained on ImageNet photographs)"}

@dataclass
class TrustFit:
    temperature: float
    familiarity: Familiarity
    nll_before: float
    nll_after: float
    before: Reliability
    after: Reliability
    val_images: int
    notes: list[str] = field(default_factory=list)

    def checkpoint_fields(self) -> dict[str, Any]:
        """What goes into the checkpoint beside the weights: numbers and tensors only."""
        return {
            "temperature": float(self.temperature),
            "familiarity": self.familiarity.to_dict(),
            "calibration": {"ece_before": float(self.before.ece), "ece_after": float(self.after.ece),
                            "nll_before": float(self.nll_before), "nll_after": float(self.nll_after),
                            "images": int(self.val_images)},
        }

def choose_space(setting: str, reference_available: bool) -> str:
    """"auto": the reference space whenever the bundled network is installed, whatever the model.

    A network's own features are shaped by its few training classes: from scratch they know nothing
    else, and even a pretrained one with only its last layer trained measures digits against photo
    crops poorly (benchmarks/unfamiliar.py: 70 % of digits flagged in its own space, 100 % in the
    reference). The reference space met the targets for every model measured, and it gives every
    model of a project the same yardstick. "network" stays available by name.
    """
    if setting == "network" or not reference_available:
        return "network"
    return "reference"

def fit_trust(*, val_logits: torch.Tensor, val_labels: torch.Tensor, train_features: torch.Tensor,
              train_labels: torch.Tensor, val_features: torch.Tensor | None, share: float = DEFAULT_SHARE,
              space: str = "network") -> TrustFit:
    """Temperature on the validation logits; Gaussians and their cross-fitted limit on training + validation."""
    notes: list[str] = []
    temperature = fit_temperature(val_logits, val_labels)
    if len(val_labels) < 20:
        notes.append(f"Only {len(val_labels)} validation image(s): the temperature and the familiarity limit "
                     "rest on few images.")
    familiarity, note = fit_familiarity(train_features, train_labels, val_features,
                                        val_labels=val_labels if len(val_labels) else None, share=share, space=space)
    if note:
        notes.append(note)
    has_val = len(val_labels) > 0
    raw = torch.softmax(val_logits.float(), 1)
    return TrustFit(
        temperature=temperature, familiarity=familiarity,
        nll_before=nll(val_logits, val_labels) if has_val else 0.0,
        nll_after=nll(val_logits, val_labels, temperature) if has_val else 0.0,
        before=reliability(raw.numpy(), val_labels.numpy()),
        after=reliability(calibrated(val_logits, temperature).numpy(), val_labels.numpy()),
        val_images=len(val_labels), notes=notes,
    )

# ---------------------------------------------------------------- reading back

def check_trust_fields(data: Mapping[str, Any]) -> str:
    """"" when the optional fields are absent or usable; else one line naming the field."""
    if "temperature" in data:
        t = data["temperature"]
        if not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t < float("inf"):
            return "field 'temperature': must be a number above zero"
    if "familiarity" in data:
        try:
            check_dict(data["familiarity"])
        except FamiliarityError as exc:
            return f"field {exc}"
    return ""

def stored_temperature(data: Mapping[str, Any]) -> float:
    return float(data.get("temperature", 1.0))

def stored_familiarity(data: Mapping[str, Any]) -> Familiarity | None:
    raw = data.get("familiarity")
    return Familiarity.from_dict(raw) if raw is not None else None

# ---------------------------------------------------------------- the training images, for "nearest"

def save_neighbours(run_dir: str | Path, features: torch.Tensor, paths: Sequence[str], labels: Sequence[str]) -> Path:
    """Unit-length features (float16 keeps 1,000 images × 1,280 features at 2.5 MB) with their files."""
    from studio.core.familiarity import unit_rows

    buffer = io.BytesIO()
    np.savez(buffer, features=unit_rows(features).numpy().astype(np.float16),
             paths=np.asarray(list(paths), dtype=str), labels=np.asarray(list(labels), dtype=str))
    target = Path(run_dir) / NEIGHBOURS_FILE
    write_bytes(target, buffer.getvalue())
    return target

@dataclass
class Neighbour:
    path: str  # relative to the run's data root, as in split.csv
    label: str
    similarity: float  # cosine similarity, 1 = the same direction

def nearest(run_dir: str | Path, features: torch.Tensor, k: int = 6) -> list[Neighbour]:
    """The k training images closest to one image's features; [] when the run kept none."""
    try:
        with np.load(Path(run_dir) / NEIGHBOURS_FILE, allow_pickle=False) as bank:
            feats, paths, labels = bank["features"].astype(np.float32), bank["paths"], bank["labels"]
    except (OSError, KeyError, ValueError):
        return []
    if feats.ndim != 2 or feats.shape[1] != features.shape[-1] or not len(feats):
        return []
    from studio.core.familiarity import unit_rows

    query = unit_rows(features.reshape(1, -1)).numpy()[0]
    sims = feats @ query
    order = np.argsort(-sims)[:k]
    return [Neighbour(str(paths[i]), str(labels[i]), float(sims[i])) for i in order]
