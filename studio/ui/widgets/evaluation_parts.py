"""The Evaluate page's pieces: its work on worker threads, its words, and the lists and table it is built from.

Evaluating predicts every image of a split and writes report.md; thumbnails decode files. Both
run off the UI thread and answer with the request's serial number, so a late answer for a run
the user has left is dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QListView, QListWidget, QTableWidget

from studio.core.errors import EvaluationError, ImageError
from studio.core.evaluate import NEW, Evaluation, evaluate_run
from studio.core.evaluation_report import picture_names, write_evaluation
from studio.core.images import load_for_model
from studio.core.new_images import evaluate_folder
from studio.ui.workers import describe_exception

THUMB = 72
TRUST_NOTE = ("The figure to trust: these held-out images were never trained on and never used to choose "
              "the epoch or the settings.")
NEW_NOTE = ("Measured on new images the run never saw. When they come from where future images will (other "
            "patients, plots, batches), this is the figure to trust, over the run's own.")
NO_TEST_NOTE = ("This run kept no held-out test images (too few images per class, or none asked for), so "
                "validation accuracy is shown; it chose the best epoch, so it flatters a little.")
ICONS = {"error": "⛔", "warning": "⚠", "info": "ℹ"}


def has_split(run: str, split: str) -> bool:
    from studio.core.runfiles import read_split

    try:
        return any(row[2] == split for row in read_split(Path(run)))
    except OSError:
        return False


def evaluate_and_write(serial: int, run: str, split: str,
                       measure: Callable[[], Evaluation] | None = None) -> tuple[int, Evaluation | None, str]:
    try:
        evaluation = measure() if measure else evaluate_run(run, split)
    except EvaluationError as exc:
        return serial, None, str(exc)
    except Exception as exc:
        return serial, None, describe_exception(exc)
    try:
        write_evaluation(evaluation)
    except OSError as exc:
        evaluation.notes.append(f"report.md could not be written: {exc}")
    return serial, evaluation, ""


def evaluate_folder_and_write(serial: int, run: str, folder: str) -> tuple[int, Evaluation | None, str]:
    """The run on a folder of new images, written into its report.md beside its own figures."""
    return evaluate_and_write(serial, run, NEW, lambda: evaluate_folder(run, folder))


def load_thumbnails(serial: int, paths: list[str]) -> tuple[int, dict[str, np.ndarray]]:
    out = {}
    for path in paths:
        with contextlib.suppress(ImageError):  # the item keeps its text: the file went away since
            out[path] = np.asarray(load_for_model(path, THUMB))
    return serial, out


def image_list() -> QListWidget:
    images = QListWidget()
    images.setViewMode(QListView.ViewMode.IconMode)
    images.setIconSize(QSize(THUMB, THUMB))
    images.setGridSize(QSize(THUMB + 78, THUMB + 48))
    images.setResizeMode(QListView.ResizeMode.Adjust)
    images.setMovement(QListView.Movement.Static)
    images.setWordWrap(True)
    images.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return images


def per_class_table() -> QTableWidget:
    """Precision, recall, F1 and the image count of each class, each column explained in its tooltip."""
    table = QTableWidget(0, 5)
    table.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "F1", "Images"])
    for col, tip in enumerate((
        "The class, as named by its folder",
        "Precision: of the images it called this class, the share that really are (few false alarms = high)",
        "Recall: of the images that really are this class, the share it found (few misses = high)",
        "F1: one figure combining precision and recall; high only when both are",
        "How many images of this class were evaluated",
    )):
        table.horizontalHeaderItem(col).setToolTip(tip)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(22)
    table.setMaximumHeight(24 + 22 * 8)  # the matrix gets the room; longer lists scroll
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for col, tip in ((1, "Of the images the model called this class, the share that were"),
                     (2, "Of the images of this class, the share the model recognised"),
                     (3, "One number for both: the harmonic mean of precision and recall")):
        table.horizontalHeaderItem(col).setToolTip(tip)
    return table


def diagnostics_html(ev: Evaluation) -> str:
    """Findings with what to try, the notes and the confidence, as the page's rich text: one place for the
    words a user reads under "What to try next"."""
    parts = []
    for d in ev.diagnostics:
        advice = f"<br><b>Try:</b> {d.advice}" if d.advice else ""
        parts.append(f"<p><b>{ICONS.get(d.severity, '')} {d.title}.</b> {d.detail}{advice}</p>")
    parts += [f"<p><i>{note}</i></p>" for note in ev.notes]
    c = ev.calibration
    if c is not None:
        parts.append(f"<p><b>Confidence.</b> On these images the probabilities the model gives were off by "
                     f"{100 * c.before.ece:.1f} points on average as trained, and {100 * c.after.ece:.1f} after "
                     f"calibration, which every prediction uses. The picture is "
                     f"{picture_names(ev.split)[1]} in the run folder.</p>")
    return "".join(parts)
