"""Predictions from a checkpoint: images in, classes with probabilities out.

Preprocessing comes from the checkpoint and goes through the same functions
as evaluation during training (`images.load_for_model`, `augment.normalize_batch`),
in fp32 and eval mode, so the same image always gets the same answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from studio.core.atomic import write_bytes
from studio.core.augment import normalize_batch
from studio.core.checkpoint import check_checkpoint, load_checkpoint, model_from_checkpoint
from studio.core.errors import ImageError
from studio.core.images import IMAGE_EXTENSIONS, as_rgb, load_for_model, resize_square, to_tensor


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (class, probability), most likely first
    error: str = ""  # why the file could not be used; `top` is empty then

    @property
    def label(self) -> str:
        return self.top[0][0] if self.top else ""

    @property
    def confidence(self) -> float:
        return self.top[0][1] if self.top else 0.0


class Predictor:
    def __init__(self, checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu") -> None:
        if isinstance(checkpoint, dict):
            check_checkpoint(checkpoint, checkpoint.get("path", "checkpoint"))
        data = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        self.checkpoint_path = data.get("path", "")
        self.classes: list[str] = list(data["classes"])
        pre = data["preprocessing"]
        self.image_size = int(pre["image_size"])
        self.mean, self.std = tuple(pre["mean"]), tuple(pre["std"])
        self.metrics: dict[str, float] = dict(data.get("metrics", {}))
        self.arch: dict[str, Any] = dict(data["arch"])
        self.device = torch.device(device)
        self.model = model_from_checkpoint(data).to(self.device).eval()

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """uint8 [3,S,S]: for a PIL image already in hand (pasted, dropped)."""
        return to_tensor(resize_square(as_rgb(image), self.image_size))

    @torch.no_grad()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N,3,S,S] → float [N, classes] probabilities."""
        x = normalize_batch(pixels.to(self.device), self.mean, self.std)
        return torch.softmax(self.model(x).float(), dim=1).cpu()

    def _top(self, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
        values, idx = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]

    def predict_image(self, image: Image.Image, top_k: int = 5) -> list[tuple[str, float]]:
        return self._top(self.probabilities(self.pixels(image)[None])[0], top_k)

    def predict_paths(self, paths: Iterable[str | Path], top_k: int = 5, batch_size: int = 32) -> Iterator[Prediction]:
        """Predictions in input order; an unusable file yields a Prediction with its reason."""
        batch: list[tuple[str, torch.Tensor]] = []
        for path in paths:
            try:
                batch.append((str(path), to_tensor(load_for_model(path, self.image_size))))
            except ImageError as exc:
                yield from self._flush(batch, top_k)
                batch = []
                yield Prediction(str(path), error=exc.reason)
                continue
            if len(batch) >= batch_size:
                yield from self._flush(batch, top_k)
                batch = []
        yield from self._flush(batch, top_k)

    def _flush(self, batch: list[tuple[str, torch.Tensor]], top_k: int) -> Iterator[Prediction]:
        if not batch:
            return
        probs = self.probabilities(torch.stack([t for _, t in batch]))
        for (path, _), p in zip(batch, probs):
            yield Prediction(path, self._top(p, top_k))


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders walked (sorted, hidden entries skipped) for files with image extensions."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                out.extend(Path(dirpath) / f for f in sorted(filenames)
                           if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        else:
            out.append(p)
    return out


def write_csv(predictions: Sequence[Prediction], path: str | Path, top_k: int) -> None:
    """Whole or not at all, like every file the studio writes: a spreadsheet never sees half a table."""
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    header = ["file", "predicted", "confidence"]
    for i in range(1, top_k + 1):
        header += [f"class_{i}", f"probability_{i}"]
    writer.writerow(header + ["problem"])
    for p in predictions:
        row: list[Any] = [p.path, p.label, f"{p.confidence:.6f}" if p.top else ""]
        for i in range(top_k):
            row += [p.top[i][0], f"{p.top[i][1]:.6f}"] if i < len(p.top) else ["", ""]
        writer.writerow(row + [p.error])
    write_bytes(path, buffer.getvalue().encode("utf-8"))  # bytes: csv chose the line ends
