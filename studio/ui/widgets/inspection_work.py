"""The Inspect page's slow work, run on worker threads, and the run-folder facts it needs.

Recording every layer of a big backbone, Grad-CAM and the search for each channel's top patches
take seconds; each function here runs off the UI thread and returns a plain tuple that starts
with the request's serial number, so the page can drop an answer it no longer wants. Failures
come back as words for the banner, never as exceptions crossing threads.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.inspect import Inspection
from studio.core.layer_words import WordRow, layers_in_words
from studio.core.predict import Predictor
from studio.core.runfiles import read_split
from studio.ui.widgets.neighbours import neighbour_thumbnails
from studio.ui.workers import describe_exception


def build_inspection(serial: int, predictor: Predictor, path: str, run: str = ""
                     ) -> tuple[int, Inspection | None, str, list[WordRow], tuple | None]:
    try:
        inspection = Inspection.of_image(predictor, path)
    except Exception as exc:
        return serial, None, describe_exception(exc), [], None
    try:
        words = layers_in_words(predictor.model, predictor.image_size)
    except (RuntimeError, ValueError):
        words = []  # a model the words cannot describe: the PyTorch list still works
    try:
        prediction, near = predictor.explain(path, run, k=8)
        root = data_root(run)
        explained = (prediction, neighbour_thumbnails(root, near), root)
    except Exception:  # the maps are still worth showing without the comparison
        explained = None
    return serial, inspection, "", words, explained


def grad_cam(serial: int, inspection: Inspection, cls: int) -> tuple[int, int, object, str]:
    try:
        return serial, cls, inspection.grad_cam(cls), ""
    except ValueError as exc:  # the engine's words: no spatial layer at this size, and the like
        return serial, cls, None, f"No class-activation map: {exc}."
    except Exception as exc:
        return serial, cls, None, describe_exception(exc)


def top_patches(serial: int, run: str, predictor: Predictor, layer: str) -> tuple[int, str, object, object, str]:
    """(serial, layer, ChannelPatches or None, sample pixels or None, message) for the Inspect pane's worker."""
    from studio.core.augment import normalize_batch
    from studio.core.checkpoint import resolve_checkpoint_path
    from studio.core.top_patches import run_top_patches

    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    root = data_root(str(folder)) if (folder / "split.csv").is_file() else ""
    if not root:
        return serial, layer, None, None, ("This needs the training images of the run: the model was opened as a "
                                           "file on its own, without its run folder.")
    try:
        result, pixels = run_top_patches(
            folder, resolve_checkpoint_path(run), predictor.model, layer, predictor.image_size,
            lambda x: normalize_batch(x.to(predictor.device), predictor.mean, predictor.std), root)
    except ValueError as exc:
        return serial, layer, None, None, f"{exc}."
    except Exception as exc:
        return serial, layer, None, None, describe_exception(exc)
    return serial, layer, result, pixels.numpy(), ""


def data_root(run: str) -> str:
    try:
        return str(json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))["data"]["root"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # a bare checkpoint file, or a run folder that lost its config


def validation_images(run: str) -> list[str]:
    """The run's own validation images (absolute paths), or [] for a bare checkpoint file."""
    root = data_root(run)
    try:
        rows = read_split(Path(run)) if root else []
    except (OSError, ValueError):
        return []
    return [str(Path(root, *p.split("/"))) for p, _, split in rows if split == "val"]


def labelled_class(run: str, image: str) -> str:
    """The class folder an image sits in when it comes from the run's data folder, else ""."""
    root = data_root(run)
    try:
        parts = Path(image).resolve().relative_to(Path(root).resolve()).parts if root else ()
    except (ValueError, OSError):
        return ""
    return parts[0] if len(parts) > 1 else ""
