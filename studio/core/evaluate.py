"""Evaluating a finished run: its best model on one split, written where a person looks.

The images are the ones the run itself recorded in split.csv, predicted through
the `Predictor` (the same pixels and arithmetic as prediction), so the figures
here are the figures a user gets. The result is one `Evaluation` object that the
window draws, the CLI prints as text or JSON, and `evaluation_report.write_evaluation`
puts into the run's report.md and confusion.png.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.core.calibration import Reliability, reliability
from studio.core.errors import EvaluationError, ImageError
from studio.core.images import load_for_model, to_tensor
from studio.core.leakage import run_similarity
from studio.core.loop import Rows
from studio.core.metrics import (
    Diagnostic,
    Metrics,
    WrongExample,
    compute_metrics,
    confusion_matrix,
    diagnose,
    most_wrong,
)
from studio.core.runfiles import EVALUATION_HEADING, read_history, read_split

SPLITS = ("train", "val", "test")
UNKNOWN_CLASS = "is not one the model knows"
# The "split" of images from a folder the run never saw (studio.core.new_images).
NEW = "new"
RELIABILITY_PNG = "reliability.png"
SECTION = EVALUATION_HEADING


@dataclass
class EvaluatedImage:
    path: str  # as recorded in split.csv: relative to the data root
    true: int
    predicted: int
    probabilities: list[float]

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


@dataclass
class Confidence:
    """How honest the model's confidence is on the evaluated images, as trained and after calibration."""

    temperature: float
    before: Reliability
    after: Reliability
    unfamiliar: int  # evaluated images the familiarity check flags
    space: str
    share: float = 0.95  # the share of new images like the training images that the limit lets pass

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "ece_before": self.before.ece, "ece_after": self.after.ece,
                "unfamiliar": self.unfamiliar, "space": self.space}


@dataclass
class Evaluation:
    run_dir: str
    split: str
    classes: list[str]
    data_root: str
    checkpoint: str
    metrics: Metrics
    images: list[EvaluatedImage]
    most_wrong: list[WrongExample]
    diagnostics: list[Diagnostic]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[str] = field(default_factory=list)
    calibration: Confidence | None = None  # None for a model without a fitted temperature

    @property
    def confusion(self) -> np.ndarray:
        return self.metrics.confusion

    def abspath(self, path: str) -> Path:
        return Path(self.data_root, *path.split("/"))

    def images_in_cell(self, true: int | str, predicted: int | str) -> list[EvaluatedImage]:
        """The images behind one confusion cell, the surest first."""
        t = self.classes.index(true) if isinstance(true, str) else true
        p = self.classes.index(predicted) if isinstance(predicted, str) else predicted
        rows = [im for im in self.images if im.true == t and im.predicted == p]
        return sorted(rows, key=lambda im: -im.probabilities[p])

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir, "split": self.split, "classes": self.classes, "data_root": self.data_root,
            "checkpoint": self.checkpoint, "metrics": self.metrics.to_dict(),
            "images": [{"path": im.path, "true": self.classes[im.true], "predicted": self.classes[im.predicted],
                        "probabilities": [round(v, 6) for v in im.probabilities]} for im in self.images],
            "most_wrong": [{"path": w.path, "true": self.classes[w.true], "predicted": self.classes[w.predicted],
                            "p_predicted": w.p_predicted, "p_true": w.p_true} for w in self.most_wrong],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "notes": self.notes,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }


@dataclass
class Scored:
    """One split's images as the best model saw them: what an `Evaluation` is computed from.

    Made either by predicting the files again (`evaluate_run`) or, at the end of training, from the
    one pass with the best weights that also fits the temperature and the familiarity check.
    """

    paths: list[str]  # as recorded in split.csv, in its order
    labels: list[int]
    logits: torch.Tensor  # [N, classes], before the temperature
    unfamiliar: int = 0  # images the familiarity check flags, in whichever space it measures
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    rows: int = 0  # the split's rows in split.csv, read or not


@dataclass
class Trust:
    """What the checkpoint says about its own confidence, as `Predictor` reads it."""

    temperature: float = 1.0
    space: str = ""  # "" without a familiarity check
    calibrated: bool = False  # the checkpoint carries a temperature or a familiarity check
    share: float = 0.95  # the share of images like the training images that the familiarity limit lets pass


def evaluate_run(run_dir: str | Path, split: str = "val", *, batch_size: int = 64, most_wrong_k: int = 20,
                 device: str | torch.device = "cpu") -> Evaluation:
    """Predict the run's own `split` images with its best checkpoint and measure the result."""
    from studio.core.predict import Predictor

    run = Path(run_dir)
    config, root, rows = split_rows(run, split)
    predictor = Predictor(run, device=device)
    scored = predict_rows(predictor, root, rows, batch_size)
    if not scored.paths:
        raise EvaluationError(f"{run}: none of the {len(rows)} {split} images could be read "
                              f"(first problem: {scored.skipped[0][1]})")
    if predictor.space == "reference":
        files = [Path(root, *path.split("/")) for path in scored.paths]
        scored.unfamiliar = reference_flags(predictor.familiarity, run, files)
    return build_evaluation(run, split, config=config, classes=predictor.classes, scored=scored,
                            trust=trust_of(predictor),
                            checkpoint=predictor.checkpoint_path, most_wrong_k=most_wrong_k)


def trust_of(predictor: Any) -> Trust:
    """What a loaded `Predictor` says about its own confidence."""
    familiarity = predictor.familiarity
    return Trust(predictor.temperature, predictor.space, "temperature" in predictor.calibration
                 or predictor.temperature != 1.0 or familiarity is not None,
                 familiarity.share if familiarity is not None else 0.95)


def split_rows(run: Path, split: str) -> tuple[dict[str, Any], Path, list[tuple[str, str]]]:
    """The run's config, image folder and (path, class) of its `split` images; a clear error when unusable."""
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not (run / "split.csv").is_file():
        raise EvaluationError(f"{run}: not a run folder (no split.csv); give the folder of a finished run")
    config = read_config(run)
    root = Path(config.get("data", {}).get("root", ""))
    rows = [(path, cls) for path, cls, s in read_split(run) if s == split]
    if not rows:
        have = sorted({s for _, _, s in read_split(run)})
        raise EvaluationError(f"{run}: this run has no {split} images (it has {', '.join(have) or 'none'}); "
                              f"choose another split")
    if not root.is_dir():
        raise EvaluationError(f"{run}: the run's image folder {root} is not there any more; "
                              "it is needed to evaluate the run")
    return config, root, rows


def predict_rows(predictor: Any, root: Path, rows: list[tuple[str, str]], batch_size: int) -> Scored:
    """Read and predict the files as prediction does; unreadable files and unknown classes are skipped."""
    index = {c: i for i, c in enumerate(predictor.classes)}
    scored = Scored([], [], torch.zeros(0), rows=len(rows))
    logits = Rows(len(rows))
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            features, z = predictor.features_and_logits(torch.stack(batch))
            logits.add(z)
            if predictor.space == "network":  # free here; a reference space reads the files below
                scored.unfamiliar += int((predictor.familiarity.score(features) > 1).sum())
            batch.clear()

    for path, cls in rows:
        if cls not in index:
            scored.skipped.append((path, f"class {cls!r} {UNKNOWN_CLASS}"))
            continue
        try:
            batch.append(to_tensor(load_for_model(Path(root, *path.split("/")), predictor.image_size)))
        except ImageError as exc:
            scored.skipped.append((path, exc.reason))
            continue
        scored.paths.append(path)
        scored.labels.append(index[cls])
        if len(batch) >= batch_size:
            flush()
    flush()
    scored.logits = logits.result(scored.logits)
    return scored


def build_evaluation(run: Path, split: str, *, config: dict[str, Any], classes: list[str], scored: Scored,
                     trust: Trust, checkpoint: str, most_wrong_k: int = 20, root: Path | None = None) -> Evaluation:
    """Metrics, confidence and diagnoses from the logits of one split's images (or of NEW images, under
    `root` rather than the run's own image folder)."""
    p = torch.softmax(scored.logits / trust.temperature, 1).numpy().astype(np.float64)
    y_true = np.asarray(scored.labels, dtype=np.int64)
    confidence = None
    if trust.calibrated:
        confidence = Confidence(trust.temperature, reliability(torch.softmax(scored.logits, 1).numpy(), y_true),
                                reliability(p, y_true), scored.unfamiliar, trust.space, trust.share)
    y_pred = p.argmax(axis=1)
    metrics = compute_metrics(confusion_matrix(y_true, y_pred, len(classes)), classes)
    images = [EvaluatedImage(path, int(t), int(q), [float(v) for v in row])
              for path, t, q, row in zip(scored.paths, y_true, y_pred, p)]
    notes = []
    if scored.skipped and split != NEW:  # new images say why in their own words (studio.core.new_images)
        notes.append(f"{len(scored.skipped)} of the {scored.rows} {split} image(s) were skipped: "
                     "they could not be read now.")
    root = root or Path(config.get("data", {}).get("root", ""))
    diagnostics = _diagnose(run, split, config, classes, metrics, scored.paths, list(y_true == y_pred), root)
    return Evaluation(
        run_dir=str(run), split=split, classes=classes, data_root=str(root),
        checkpoint=checkpoint, metrics=metrics, images=images,
        most_wrong=most_wrong(scored.paths, y_true, p, most_wrong_k), diagnostics=diagnostics,
        skipped=scored.skipped, notes=notes, calibration=confidence,
    )


def _diagnose(run: Path, split: str, config: dict[str, Any], classes: list[str], metrics: Metrics,
              paths: list[str], correct: list[bool], root: Path) -> list[Diagnostic]:
    """What to look at: from the history, the class sizes, and how like the training images these are."""
    rows = read_split(run)
    train_counts = {c: 0 for c in classes}
    for _, cls, s in rows:
        if s == "train" and cls in train_counts:
            train_counts[cls] += 1
    similarity = None
    if split in ("val", "test"):  # how like the training images they are: known for the run's own images
        train_paths = [p for p, _, s in rows if s == "train"]
        similarity = run_similarity(run.parent.parent, root, train_paths, paths, correct)
    return diagnose(read_history(run), metrics, train_counts, len(classes), message=_run_message(run),
                    imbalance_setting=str(config.get("train", {}).get("imbalance", "none")),
                    held_out=split != "train", similarity=similarity,
                    solved=config.get("train", {}).get("optimizer") == "lbfgs")


def read_config(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationError(f"{run}: config.json is missing, so the run's image folder is unknown") from None
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"{run}: config.json cannot be read ({exc})") from None


def _run_message(run: Path) -> str:
    """The trainer's own last word on the run (e.g. why it stopped), from the top of report.md."""
    try:
        text = (run / "report.md").read_text(encoding="utf-8")
    except OSError:
        return ""
    head = text.split(f"\n{SECTION}\n", 1)[0]
    return "\n".join(line for line in head.splitlines() if "Training stopped" in line or "NaN" in line)


# ---------------------------------------------------------------- writing


def reference_flags(familiarity: Any, run: Path, files: list[Path]) -> int:
    """How many files the reference-space check flags: through the project's feature store when the run
    sits in a project (training and validation images are already there), else embedded here."""
    from studio.core.features import FOLDER
    from studio.core.reference import reference_embedder, reference_picture

    project = run.parent.parent
    size = familiarity.reference_size
    if (project / FOLDER).is_dir():
        features = reference_embedder(project, size).embed_files(files)
    else:
        features = torch.as_tensor(reference_embedder(size=size).embed_images([reference_picture(f, size)
                                                                                for f in files]))
    return int((familiarity.score(features) > 1).sum())
