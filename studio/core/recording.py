"""Everything a run writes: its folder, checkpoints, history, report, evaluation and database rows.

Kept apart from training so that what a run leaves behind is decided in one
place: only rank 0 writes, a stopped or failed run still gets a report and a
finished database row, and the trainer never touches a file itself.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.core import distributed as dist
from studio.core.atomic import write_text
from studio.core.callbacks import Callback, RunResult
from studio.core.checkpoint import make_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.dataset import ScanReport
from studio.core.project import Project, ProjectError
from studio.core.runfiles import write_history, write_report, write_split
from studio.core.stage import TrainState


@dataclass
class RunSummary:
    """What the report and every checkpoint repeat; known once the run has started."""

    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    counts: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def make_run_folder(project: Project, cfg: RunConfig, run_dir: Path | None) -> Path:
    """A new numbered folder (rank 0 makes it, the others learn its name), or the resumed run's own."""
    if run_dir is not None:
        return run_dir
    if dist.is_main():
        _, run_dir = project.new_run_folder(cfg.name or cfg.model.arch)
    return Path(dist.broadcast_str(str(run_dir or "")))


class Recorder:
    """One run's writes. Every method is a no-op off rank 0, so callers need not ask."""

    def __init__(self, project: Project, run_dir: Path, config: RunConfig, scan_ids: dict[str, int]) -> None:
        self.project, self.run_dir, self.config = project, run_dir, config
        self.scan_ids = scan_ids  # image path -> database id, from the project's record of the scan
        self.db_run: int | None = None
        self.summary: RunSummary | None = None

    def open(self, report: ScanReport) -> None:
        """config.json, and the run's row in the project database (a resumed run keeps its row)."""
        if not dist.is_main():
            return
        self.config.save(self.run_dir / "config.json")
        existing = self.project.run_id_for_folder(self.run_dir)
        if existing is None:
            self.db_run = self.project.add_run(self.config.name or self.run_dir.name, self.run_dir, report.root,
                                               self.config.to_dict())
        else:
            self.db_run = existing
            self.project.mark_running(existing)

    def write_split(self, rows: list[tuple[str, str, str]], groups: list[int] | None = None) -> None:
        if dist.is_main():
            write_split(self.run_dir, rows, groups)

    def record_split(self, rows: list[tuple[str, str, str]]) -> None:
        if dist.is_main() and self.db_run is not None:
            ids = self.scan_ids
            self.project.record_split(self.db_run, [(ids[row[0]], row[2]) for row in rows if row[0] in ids])

    def save_epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, stage: str, is_best: bool,
                   row: dict[str, Any], state: TrainState) -> None:
        """last.pt (with what a resume needs), best.pt when it improved, history.csv, the database row.

        In this order, each write whole or not at all: last.pt holds the full history, so whatever
        moment a kill strikes, the files after it are at most one epoch behind it, and `reconcile`
        (called on resume) rewrites them from it.
        """
        if not dist.is_main() or self.summary is None:
            return
        s = self.summary
        metrics = {k: v for k, v in row.items() if v is not None}
        common = dict(model=model, config=self.config, classes=s.classes, mean=s.mean, std=s.std, metrics=metrics)
        save_checkpoint(make_checkpoint(**common, training=state.to_training(stage, optimizer)),
                        self.run_dir / "last.pt")
        if is_best:
            save_checkpoint(make_checkpoint(**common), self.run_dir / "best.pt")
        write_history(self.run_dir, state.history)
        if self.db_run is not None:
            self.project.record_epoch(self.db_run, row)

    def reconcile(self, history: list[dict[str, Any]]) -> None:
        """Bring history.csv and the database's epoch rows in line with the checkpoint's own history."""
        if not dist.is_main():
            return
        write_history(self.run_dir, history)
        if self.db_run is not None:
            self.project.reconcile_epochs(self.db_run, history)

    def write_report(self, result: RunResult, history: list[dict[str, Any]], *, quiet: bool = False) -> None:
        """report.md; `quiet` for a failing run, whose own message matters more than a report it cannot write."""
        if dist.is_main() and self.summary is not None:
            s = self.summary
            try:
                write_report(self.run_dir, config=self.config.to_dict(), classes=s.classes, counts=s.counts,
                             history=history, result=result.to_dict(), notes=s.notes)
            except OSError:
                if not quiet:
                    raise

    def write_evaluation(self, callbacks: Callback, final: Any = None) -> None:
        """confusion.png and the Evaluation section of report.md, so every finished run explains itself.

        `final` (a `final_pass.PassResult`) holds the best model's logits of every image already: the
        evaluation is then computed from them instead of predicting the files again.
        """
        counts = self.summary.counts if self.summary is not None else {}
        # The held-out test images when there are some: the figure a reader of report.md should trust.
        split = "test" if counts.get("test") else "val"
        if not (dist.is_main() and counts.get(split)):
            return
        from studio.core.errors import EvaluationError
        from studio.core.evaluate import evaluate_run
        from studio.core.evaluation_report import write_evaluation

        callbacks.on_status(f"Evaluating the best model on the {'held-out test' if split == 'test' else 'validation'}"
                            " images")
        try:
            evaluation = final.evaluation(self.run_dir, split, self.config.to_dict()) if final else None
            write_evaluation(evaluation or evaluate_run(self.run_dir, split), self.run_dir)
        except (EvaluationError, OSError) as exc:
            callbacks.on_status(f"Could not write the evaluation: {exc}")

    def finish(self, status: str, result: RunResult, message: str = "") -> None:
        if self.db_run is not None:
            self.project.finish_run(self.db_run, status, best_metric=result.best_val_acc,
                                    best_epoch=result.best_epoch or None, message=message, test_acc=result.test_acc)

    def fail(self, message: str) -> None:
        """Record the failure if the database can still be written; the message reaches the user either way."""
        if self.db_run is not None:
            with contextlib.suppress(ProjectError, sqlite3.Error, OSError):
                self.project.finish_run(self.db_run, "failed", message=message)



def log_traceback(run_dir: Path | None) -> bool:
    """error.log in the run folder: the user sees one line, a developer can still read the details.

    Returns whether it was written, so a message never points to a log that is not there.
    """
    if run_dir is None or not run_dir.is_dir() or not dist.is_main():
        return False
    try:
        write_text(run_dir / "error.log", traceback.format_exc())
    except OSError:
        return False
    return True


def build_result(state: TrainState, run_dir: Path | None, status: str, started: float, test_acc: float | None,
                 message: str = "") -> RunResult:
    """The run's outcome: the best epoch's validation figures, and the checkpoint the user gets."""
    best = state.history[state.best_epoch - 1] if 0 < state.best_epoch <= len(state.history) else {}
    ckpt = run_dir / ("best.pt" if (run_dir / "best.pt").exists() else "last.pt") if run_dir else Path("")
    return RunResult(run_dir=str(run_dir or ""), status=status, epochs_done=state.epoch,
                     best_epoch=state.best_epoch, best_val_acc=best.get("val_acc"),
                     best_val_loss=best.get("val_loss"), test_acc=test_acc, seconds=time.time() - started,
                     checkpoint=str(ckpt), history=list(state.history), message=message)
