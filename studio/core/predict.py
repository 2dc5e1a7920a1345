"""Predictions from a checkpoint: images in, calibrated classes and a verdict out.

Preprocessing comes from the checkpoint and goes through the same functions
as evaluation during training (`images.load_for_model`, `augment.normalize_batch`),
in fp32 and eval mode, so the same image always gets the same answer.

Probabilities are divided by the run's fitted temperature (`trust`), so "80 %" is right
about 80 % of the time; and every answer carries a familiarity score, computed from the
same forward pass (the network's own features) or from the bundled reference network,
with a verdict against the limit fitted on the run's own validation images. A checkpoint
from before either existed predicts as it always did, with the verdict "unavailable".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from studio.core.atomic import write_bytes
from studio.core.augment import normalize_batch
from studio.core.checkpoint import check_checkpoint, load_checkpoint, model_from_checkpoint
from studio.core.errors import ImageError
from studio.core.images import IMAGE_EXTENSIONS, as_rgb, load_for_model, resize_square, to_tensor
from studio.core.reference import reference_picture
from studio.core.trust import stored_familiarity, stored_temperature

# Decoding threads for `predict_paths`: two keep a small machine busy without crowding the model.
DECODE_WORKERS = 2
UNFAMILIAR_MESSAGE = "Not like the training images — treat the answer with care"


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]] = field(default_factory=list)  # (class, calibrated probability), most likely first
    error: str = ""  # why the file could not be used; `top` is empty then
    # Distance to the training images in units of the fitted limit: above 1 is unlike them.
    score: float | None = None
    unfamiliar: bool | None = None  # None: the model carries no familiarity statistics (an older checkpoint)
    compared_with: str = ""  # the features the verdict was measured in: "reference", "network" or "" (none)

    @property
    def verdict(self) -> str:
        """"unfamiliar", "familiar", "unavailable" (older model) or "" (unusable file)."""
        if self.error:
            return ""
        return "unavailable" if self.unfamiliar is None else "unfamiliar" if self.unfamiliar else "familiar"

    @property
    def label(self) -> str:
        return self.top[0][0] if self.top else ""

    @property
    def confidence(self) -> float:
        return self.top[0][1] if self.top else 0.0


class Predictor:
    def __init__(self, checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu", *,
                 reference: Any = None) -> None:
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
        self.temperature = stored_temperature(data)
        self.familiarity = stored_familiarity(data)
        self.calibration: dict[str, float] = dict(data.get("calibration", {}))
        self.reference = reference  # embeds PIL images in the reference space; made on first need

    @property
    def space(self) -> str:
        """Which features the verdict is measured in: "network", "reference" or "" (no verdict)."""
        return self.familiarity.space if self.familiarity is not None else ""

    @property
    def reference_size(self) -> int | None:
        """The size the reference network looks at pictures at for this model (small images: their own, doubled)."""
        return self.familiarity.reference_size if self.familiarity is not None else None

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """uint8 [3,S,S]: for a PIL image already in hand (pasted, dropped)."""
        return to_tensor(resize_square(as_rgb(image), self.image_size))

    @torch.no_grad()
    def features_and_logits(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [N,3,S,S] → (penultimate features [N, D], logits [N, classes]) from one forward pass."""
        x = normalize_batch(pixels.to(self.device), self.mean, self.std)
        features = self.model.backbone(x).float()
        return features.cpu(), self.model.head(features).float().cpu()

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(pixels)[1]

    def probabilities(self, pixels: torch.Tensor, *, calibrated: bool = True) -> torch.Tensor:
        """uint8 [N,3,S,S] → float [N, classes] probabilities, at the run's temperature unless told not to."""
        return torch.softmax(self.logits(pixels) / (self.temperature if calibrated else 1.0), dim=1)

    def familiarity_features(self, network_features: torch.Tensor, images: Sequence[Callable[[], Image.Image]]
                             ) -> torch.Tensor:
        """The features the verdict is measured in: the network's own, or the reference network's."""
        if self.space != "reference":
            return network_features
        if self.reference is None:
            from studio.core.reference import reference_embedder

            self.reference = reference_embedder(size=self.reference_size)
        if getattr(self.reference, "size", 0) is None:
            self.reference.size = self.reference_size  # one handed in: it embeds as the training images were
        return torch.as_tensor(np.asarray(self.reference.embed_images([load() for load in images])),
                               dtype=torch.float32)

    def assess(self, pixels: torch.Tensor, images: Sequence[Callable[[], Image.Image]], paths: Sequence[str],
               top_k: int) -> list[Prediction]:
        """Calibrated top-k, score and verdict for a batch; `images` give the pictures for a reference space."""
        return self.assess_with_features(pixels, images, paths, top_k)[0]

    def assess_with_features(self, pixels: torch.Tensor, images: Sequence[Callable[[], Image.Image]],
                             paths: Sequence[str], top_k: int) -> tuple[list[Prediction], torch.Tensor | None]:
        """As `assess`, with the features the verdict was measured in (None without a verdict): for "nearest"."""
        features, logits = self.features_and_logits(pixels)
        probs = torch.softmax(logits / self.temperature, dim=1)
        scores: list[float | None] = [None] * len(paths)
        measured = None
        if self.familiarity is not None:
            measured = self.familiarity_features(features, images)
            scores = self.familiarity.score(measured).tolist()
        return [Prediction(path, self._top(p, top_k), score=s, unfamiliar=None if s is None else bool(s > 1.0),
                           compared_with=self.space if s is not None else "")
                for path, p, s in zip(paths, probs, scores)], measured

    def explain(self, path: str | Path, run_dir: str | Path, k: int = 6, top_k: int = 5
                ) -> tuple[Prediction, list[Any]]:
        """One file's prediction and the k training images nearest to it in the verdict's feature space.

        The neighbours are what the verdict compared the image to, so a user sees why it was (or was
        not) called unlike the training images. [] for a model without a verdict or a run without them.
        """
        from studio.core.trust import nearest

        pixels = to_tensor(load_for_model(path, self.image_size))[None]
        picture = partial(reference_picture, path, self.reference_size)
        [prediction], measured = self.assess_with_features(pixels, [picture], [str(path)], top_k)
        return prediction, ([] if measured is None else nearest(run_dir, measured[0], k))

    def _top(self, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
        values, idx = probs.topk(min(k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]

    def predict_image(self, image: Image.Image, top_k: int = 5) -> list[tuple[str, float]]:
        return self.predict_picture(image, top_k).top

    def predict_picture(self, image: Image.Image, top_k: int = 5, path: str = "") -> Prediction:
        """The full answer for a PIL image already in hand (pasted, dropped)."""
        return self.assess(self.pixels(image)[None], [lambda: image], [path], top_k)[0]

    def predict_paths(self, paths: Iterable[str | Path], top_k: int = 5, batch_size: int = 32,
                      workers: int = DECODE_WORKERS) -> Iterator[Prediction]:
        """Predictions in input order; an unusable file yields a Prediction with its reason.

        Files are decoded on a small thread pool (Pillow releases the GIL while decoding), a
        batch's worth at a time, so the model never waits on one file after another.
        """
        batch: list[tuple[str, torch.Tensor]] = []
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="studio-predict") as pool:
            for chunk in _chunks(paths, batch_size):
                for path, decoded in zip(chunk, pool.map(self._decode_file, chunk)):
                    if isinstance(decoded, str):
                        yield from self._flush(batch, top_k)
                        batch = []
                        yield Prediction(str(path), error=decoded)
                        continue
                    batch.append((str(path), decoded))
                    if len(batch) >= batch_size:
                        yield from self._flush(batch, top_k)
                        batch = []
        yield from self._flush(batch, top_k)

    def _decode_file(self, path: str | Path) -> torch.Tensor | str:
        """The pixels, or the reason the file cannot be used."""
        try:
            return to_tensor(load_for_model(path, self.image_size))
        except ImageError as exc:
            return exc.reason

    def _flush(self, batch: list[tuple[str, torch.Tensor]], top_k: int) -> Iterator[Prediction]:
        if not batch:
            return
        pictures = [partial(reference_picture, path, self.reference_size) for path, _ in batch]
        try:
            yield from self.assess(torch.stack([t for _, t in batch]), pictures, [p for p, _ in batch], top_k)
        except ImageError:  # a file changed between the two reads: judge the rest one by one
            for path, pixels in batch:
                try:
                    yield from self.assess(pixels[None], [partial(reference_picture, path, self.reference_size)],
                                           [path], top_k)
                except ImageError as exc:
                    yield Prediction(path, error=exc.reason)


def _chunks(items: Iterable[str | Path], size: int) -> Iterator[list[str | Path]]:
    chunk: list[str | Path] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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


def verdict_word(p: Prediction) -> str:
    """The CSV's `unfamiliar` column: yes / no, or unavailable for a model without the statistics."""
    return {"unfamiliar": "yes", "familiar": "no", "unavailable": "unavailable"}.get(p.verdict, "")


def write_csv(predictions: Sequence[Prediction], path: str | Path, top_k: int) -> None:
    """Whole or not at all, like every file the studio writes: a spreadsheet never sees half a table."""
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    header = ["file", "predicted", "confidence", "unfamiliar", "unfamiliar_score", "compared_with"]
    for i in range(1, top_k + 1):
        header += [f"class_{i}", f"probability_{i}"]
    writer.writerow(header + ["problem"])
    for p in predictions:
        row: list[Any] = [p.path, p.label, f"{p.confidence:.6f}" if p.top else "", verdict_word(p),
                          "" if p.score is None else f"{p.score:.4f}", p.compared_with]
        for i in range(top_k):
            row += [p.top[i][0], f"{p.top[i][1]:.6f}"] if i < len(p.top) else ["", ""]
        writer.writerow(row + [p.error])
    write_bytes(path, buffer.getvalue().encode("utf-8"))  # bytes: csv chose the line ends


def to_json(p: Prediction) -> dict[str, Any]:
    """`studio predict --json`: one object per file; `unfamiliar` is null for a model without the statistics."""
    return {"path": p.path, "top": p.top, "unfamiliar": p.unfamiliar,
            "unfamiliar_score": None if p.score is None else round(p.score, 6), "compared_with": p.compared_with,
            "error": p.error}
