"""Checkpoints: everything needed to use a model, in plain types and tensors only.

A checkpoint may come from anyone, and unpickling arbitrary objects runs their
code; so a checkpoint holds nothing `torch.load(weights_only=True)` refuses,
and loading never falls back to full unpickling; the header is then checked
field by field (`checkpoint_check`) before a network is built from it. Writes
go through `atomic`, so a crash or a full disk never leaves half a `best.pt`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from studio.core.atomic import write_with
from studio.core.checkpoint_check import HeaderError, arch_config, check_header, fit_summary
from studio.core.config import RunConfig
from studio.core.errors import CheckpointError
from studio.core.images import RESIZE_RULE

FORMAT = "classification-studio-checkpoint"
VERSION = 1


def make_checkpoint(
    *,
    model: torch.nn.Module,
    config: RunConfig,
    classes: list[str],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    metrics: dict[str, float],
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": config.to_dict()["model"],
        "classes": list(classes),
        "preprocessing": {
            "image_size": config.model.image_size,
            "resize": RESIZE_RULE,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        },
        "config": config.to_dict(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "state_dict": state,
        "training": training or {},
    }


def save_checkpoint(data: dict[str, Any], path: str | Path) -> None:
    """Whole or not at all: a full disk leaves the previous file as it was and says so in one line."""
    write_with(path, lambda handle: torch.save(data, handle))


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its best checkpoint (or its last, when the run never validated)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: this folder holds no best.pt or last.pt checkpoint")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = resolve_checkpoint_path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a checkpoint file (torch.save writes a zip archive; this is not one)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused — the file contains Python objects other than tensors and plain values, "
            "and loading it could run code from whoever made it. Only Classification Studio checkpoints "
            f"are accepted. (detail: {str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Classification Studio checkpoint (no '{FORMAT}' marker)")
    check_checkpoint(data, path)
    data["path"] = str(path)
    return data


def check_checkpoint(data: dict[str, Any], path: object = "checkpoint") -> None:
    """Refuse an unusable header in one line; for checkpoints handed over as dicts, not read from a file."""
    from studio.core.trust import check_trust_fields  # late: trust imports the calibration plotting

    try:
        check_header(data, VERSION)
    except HeaderError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    problem = check_trust_fields(data)
    if problem:
        raise CheckpointError(f"{path}: {problem}")


def model_from_checkpoint(data: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the network and load its weights; never touches the network or weights caches.

    The header is checked before anything is built (a dict may come straight from a caller),
    and weights that do not fit are described in one line rather than PyTorch's full listing.
    """
    from studio.core.models import build_model

    where = data.get("path", "checkpoint")
    check_checkpoint(data, where)
    arch = arch_config(data)
    model = build_model(arch, len(data["classes"]), load_weights=False)
    mismatch = fit_summary(model.state_dict(), data["state_dict"])
    if mismatch:
        raise CheckpointError(f"{where}: the weights do not fit the {arch.arch} network: {mismatch}")
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:  # e.g. a tensor of another dtype that cannot be copied in
        raise CheckpointError(f"{where}: the weights do not fit the {arch.arch} network: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    model.eval()
    return model
