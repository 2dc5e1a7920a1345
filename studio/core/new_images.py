"""A finished run measured on a labelled folder of images it never saw: the user's own test.

A test share drawn from the training folder is only as independent as the folder allows. When
new images will come from other patients, plots, batches or parts of a slide than the folder
shows, and the folder does not say so, no split of it can tell (crops of 12 photos: a random test
share scores 100 %, crops from parts of each photo no training crop touches 92.9 %). A user who
has such images measures the run on them here, as Create ML's testing data does: one sub-folder
per class, predicted exactly as `studio predict` would, never written into.

Files that are byte-for-byte copies of images the run trained or validated on are left out and
named, so the figure cannot be flattered by the training images themselves.
"""

from __future__ import annotations

from pathlib import Path

import torch

from studio.core.dataset import scan
from studio.core.diagnostic import Diagnostic
from studio.core.errors import DatasetError, EvaluationError
from studio.core.evaluate import (
    NEW,
    UNKNOWN_CLASS,
    Evaluation,
    build_evaluation,
    predict_rows,
    read_config,
    reference_flags,
    trust_of,
)
from studio.core.runfiles import read_split
from studio.core.words import percent

# Points below the run's own figure from which new images count as harder: above what chance moves a figure
# measured on a hundred or so images.
GAP = 0.05


def evaluate_folder(run_dir: str | Path, folder: str | Path, *, batch_size: int = 64, most_wrong_k: int = 20,
                    device: str | torch.device = "cpu") -> Evaluation:
    """The run's best checkpoint on `folder` (one sub-folder per class, named as the run's classes)."""
    from studio.core.predict import Predictor

    run = Path(run_dir)
    if not (run / "split.csv").is_file():
        raise EvaluationError(f"{run}: not a run folder (no split.csv); give the folder of a finished run")
    config = read_config(run)
    top = Path(folder).expanduser().resolve()
    trained_on = Path(config.get("data", {}).get("root", "")).expanduser().resolve()
    if top == trained_on or trained_on in top.parents or top in trained_on.parents:
        raise EvaluationError(f"{top}: this is (or holds) the folder the run was trained on, {trained_on}; "
                              "choose a folder of images the run never saw")
    try:
        report = scan(top, check_pixels=False)
    except DatasetError as exc:
        raise EvaluationError(str(exc)) from None
    predictor = Predictor(run, device=device)
    known = [c for c in report.classes if c in predictor.classes]
    if not known:
        theirs, ours = ", ".join(report.classes) or "none", ", ".join(predictor.classes)
        raise EvaluationError(f"{top}: none of its class folders ({theirs}) is a class this model knows ({ours}); "
                              "name each sub-folder after its class")
    rows = [(r.path, r.class_name) for r in report.good]
    copies = _copies_of_run_images(run, trained_on, top, [p for p, _ in rows])
    scored = predict_rows(predictor, top, [row for row in rows if row[0] not in copies], batch_size)
    scored.rows = len(rows) + len(report.bad)
    unknown = sum(1 for _, why in scored.skipped if why.endswith(UNKNOWN_CLASS))
    scored.skipped[:0] = [(path, f"the same file as {twin}, which the run trained or validated on")
                          for path, twin in copies.items()]
    scored.skipped += [(r.path, r.problem) for r in report.bad]
    left_out = {"a copy of an image the run trained or validated on": len(copies),
                "in a class the model does not know": unknown,
                "could not be read": len(scored.skipped) - len(copies) - unknown}
    if not scored.paths:
        first = scored.skipped[0][1] if scored.skipped else "no images"
        raise EvaluationError(f"{top}: none of its images could be measured (first problem: {first})")
    if predictor.space == "reference":
        scored.unfamiliar = reference_flags(predictor.familiarity, run, [top / p for p in scored.paths])
    if scored.skipped:
        parts = "; ".join(f"{n} {why}" for why, n in left_out.items() if n)
        notes = [f"Left out of the {scored.rows} new images: {parts}. report.md names each."]
    else:
        notes = []
    evaluation = build_evaluation(run, NEW, config=config, classes=predictor.classes, scored=scored,
                                  trust=trust_of(predictor), checkpoint=predictor.checkpoint_path,
                                  most_wrong_k=most_wrong_k, root=top)
    evaluation.notes[:0] = notes
    own = own_figure(run)
    unlike = scored.unfamiliar / len(scored.paths) if evaluation.calibration and evaluation.calibration.space else None
    found = harder_than_reported(own, evaluation.metrics.accuracy, unlike) if own else None
    if found is not None:
        evaluation.diagnostics = [found, *(d for d in evaluation.diagnostics if d.title != "No problems found")]
    return evaluation


def own_figure(run: Path) -> tuple[str, float] | None:
    """The figure the run reported for itself: its test accuracy, else its best validation accuracy."""
    from studio.core.runfiles import read_history

    if (run.parent.parent / "project.sqlite").is_file():
        from studio.core.project import Project

        for row in Project(run.parent.parent).runs():
            if Path(row.folder).resolve() == run.resolve() and row.test_acc is not None:
                return "its own test images", float(row.test_acc)
    accuracies = [float(r["val_acc"]) for r in read_history(run) if r.get("val_acc") is not None]
    return ("its own validation images", max(accuracies)) if accuracies else None


def harder_than_reported(own: tuple[str, float], new_acc: float, unlike_share: float | None) -> Diagnostic | None:
    """A warning when new images score clearly below what the run reported: the split of the training folder
    did not keep apart whatever differs in the new images (patients, plots, batches, parts of a slide)."""
    what, reported = own
    if reported - new_acc < GAP:
        return None
    unlike = (f" {100 * unlike_share:.0f}% of them look unlike the training images." if unlike_share else "")
    return Diagnostic(
        "warning", "New images are harder than the run's own figure says",
        f"The model is right on {percent(new_acc)} of these new images, against {percent(reported)} on {what}: "
        f"those were too like its training images to show this.{unlike}",
        "Keep related images together when splitting (Data → Keep together: by sub-folder or file-name pattern, "
        "for patients, plots or batches), add images like these new ones to training, and trust this figure "
        "over the run's own.",
        {"reported": reported, "new": new_acc},
    )


def _copies_of_run_images(run: Path, trained_on: Path, top: Path, paths: list[str]) -> dict[str, str]:
    """New image (relative path) -> the training or validation image it is a byte-for-byte copy of."""
    from studio.core.features import FOLDER, FeatureStore

    seen = [p for p, _, split in read_split(run) if split in ("train", "val")]
    if (run.parent.parent / FOLDER / "features.sqlite").is_file():  # the run's project remembers hashes
        hashes = FeatureStore(run.parent.parent).hashes
    else:  # a run folder moved out of its project: hash here, and create nothing beside it
        hashes = _hash_files
    theirs = hashes([trained_on / p for p in seen])
    mine = hashes([top / p for p in paths])
    known = {digest: path for digest, path in zip(theirs, seen, strict=True) if digest}
    return {path: known[digest] for path, digest in zip(paths, mine, strict=True) if digest in known}


def _hash_files(files: list[Path]) -> list[str | None]:
    from studio.core.features import content_hash

    out: list[str | None] = []
    for file in files:
        try:
            out.append(content_hash(file))
        except OSError:
            out.append(None)
    return out
