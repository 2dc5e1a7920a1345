"""The model card in a model package: what a model learned from, how well it did, and where not to trust it.

Written for the person who receives the package, not for the one who trained it: plain
figures from the run's own records (its split, its held-out images, its settings), and the
limits that hold for every classifier made this way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _date(path: Path | None) -> str:
    if path is None or not path.exists():
        return "unknown"
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _counts_table(run: Path | None, classes: list[str]) -> list[str]:
    from studio.core.runfiles import read_split, split_counts

    if run is None:
        return ["The run's list of images was not available, so the counts are unknown."]
    counts = split_counts(read_split(run), classes)
    splits = [s for s in ("train", "val", "test") if s in counts]
    names = {"train": "training", "val": "validation", "test": "held-out test"}
    lines = ["| class | " + " | ".join(names[s] for s in splits) + " |", "|---" * (len(splits) + 1) + "|"]
    lines += [f"| {c} | " + " | ".join(str(counts[s][c]) for s in splits) + " |" for c in classes]
    lines.append("| **all** | " + " | ".join(str(sum(counts[s].values())) for s in splits) + " |")
    return lines


def _metrics_section(run: Path | None) -> list[str]:
    """Per-class figures on the held-out test images, or on validation with the caveat that brings."""
    from studio.core.evaluate import EvaluationError, evaluate_run
    from studio.core.runfiles import read_split

    if run is None:
        return ["No evaluation: the package was made from a checkpoint file outside its run folder."]
    has_test = any(split == "test" for _, _, split in read_split(run))
    split = "test" if has_test else "val"
    try:
        ev = evaluate_run(run, split)
    except EvaluationError as exc:
        return [f"No evaluation: {exc}"]
    m = ev.metrics
    if has_test:
        lead = (f"Measured on the **{m.total} held-out test images**: set aside before training, never used to "
                "choose epochs or settings.")
    else:
        lead = (f"Measured on the **{m.total} validation images**. This run kept no held-out test images; the "
                "validation images chose the best epoch, so these figures are somewhat optimistic.")
    lines = [lead, "", f"Accuracy {_pct(m.accuracy)}, macro-averaged F1 {_pct(m.macro_f1)}.", "",
             "| class | precision | recall | F1 | images |", "|---|---|---|---|---|"]
    lines += [f"| {c.name} | {_pct(c.precision)} | {_pct(c.recall)} | {_pct(c.f1)} | {c.support} |"
              for c in m.per_class]
    if ev.skipped:
        lines += ["", f"{len(ev.skipped)} image(s) could not be read and are not counted."]
    return lines


def model_card(data: dict[str, Any], info: dict[str, Any], run: Path | None) -> str:
    classes = list(data["classes"])
    config = data.get("config", {})
    arch = data["arch"]
    checkpoint = Path(data["path"]) if data.get("path") else None
    pre = info["preprocessing"]
    lines = [
        f"# Model card: {config.get('name') or (run.name if run else 'image classifier')}",
        "",
        f"An image classifier made with Classification Studio {info['studio_version']}. It sorts an image into "
        f"one of {len(classes)} classes: {', '.join(classes)}.",
        "",
        "## What it was trained on",
        "",
        f"- Image folder: `{config.get('data', {}).get('root', 'unknown')}` (one sub-folder per class)",
        f"- Images listed: {_date(run / 'split.csv' if run else None)}; model saved: {_date(checkpoint)}",
        f"- Network: {arch.get('arch', 'unknown')}, pretrained: {arch.get('pretrained', 'none')}, "
        f"input {pre['image_size']}×{pre['image_size']} pixels",
        "",
        *_counts_table(run, classes),
        "",
        "## How well it does on images it never saw",
        "",
        *_metrics_section(run),
        "",
        "## Intended use and limits",
        "",
        f"- Intended for images like the training images: the same kind of subject, camera or scanner, "
        f"lighting and framing. It always answers one of the {len(classes)} classes above, even for an "
        "image of something else entirely.",
        "- The figures above come from images out of the same folder as the training images. Images from "
        "another site, device or time may score lower: check a sample of your own images before relying on it.",
        "- A probability is the model's own confidence, not a guarantee; treat low-probability answers as "
        "\"not sure\" and look at those images yourself.",
        "- It is a decision aid made by its trainer, not a certified instrument.",
        "",
        "## Using it",
        "",
        "```",
        "pip install onnxruntime pillow numpy",
        "python predict.py IMAGE_or_FOLDER ... [--top-k 3] [--json]",
        "```",
        "",
        "`model.onnx` takes RGB images as uint8 [N, 3, H, W] (values 0..255, any size) and returns class "
        "probabilities in the order of `classes` in `model.json`; it resizes and normalizes itself. "
        "`predict.py` also applies EXIF orientation and shows transparency on white, as the studio does, "
        "so its answers match `studio predict`.",
        "",
    ]
    return "\n".join(lines)
