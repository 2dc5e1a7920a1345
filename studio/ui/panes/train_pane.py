"""Train: the recipe, Start / Pause / Stop, live curves, progress with ETA, a log, and earlier runs."""

from __future__ import annotations

import copy
import sqlite3
import time
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.callbacks import EpochEnd, RunResult, RunStarted
from studio.core.config import field_spec
from studio.core.errors import ConfigError
from studio.core.run_words import STOPPING, epoch_line, failed_line, finished_lines, started_lines
from studio.core.words import count
from studio.ui.state import QtStudioState
from studio.ui.widgets.charts import QtTrainingPlot
from studio.ui.widgets.common import QtBanner, heading
from studio.ui.widgets.recipe_form import QtRecipeForm
from studio.ui.widgets.run_list import QtRunList, run_label
from studio.ui.widgets.run_options import QtRunOptions
from studio.ui.workers import QtWorkerThread, TrainWorker

PAGE_OF_FIELD = {"data": "Data", "augment": "Augment", "model": "Model", "train": "Train"}


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class TrainPane(QWidget):
    """Starts one `TrainWorker` at a time and draws what it reports; lists and compares earlier runs."""

    title = "Train"

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: TrainWorker | None = None
        self._run: QtWorkerThread | None = None
        self.live: list[dict] = []  # epochs of the current (or last) run
        self._live_label = "this run"
        self._epochs = 0
        self._epoch_clock: tuple[int, float, int] | None = None  # epoch, time of its first batch report, batch
        self._idle_text = "Press Start to train a model with the settings of every page."
        self._build()
        state.run_state_changed.connect(self._update_buttons)
        state.config_changed.connect(lambda section: section == "recipe" and self._update_buttons())
        state.report_changed.connect(self._update_buttons)
        state.runs_changed.connect(self._refresh_runs)
        state.stop_requested.connect(self._on_stop)
        self._refresh_runs()
        self._update_buttons()

    # ------------------------------------------------------------------------------------ layout

    def _idle(self) -> str:
        """What Start will do: with recommended settings the studio decides first, and says so."""
        recipe = self.state.config.recipe
        if recipe.mode == "recommended" and self._idle_text.startswith("Press Start to train a model"):
            words = dict(field_spec("recipe.budget").setting.choice_labels).get(recipe.budget, recipe.budget)
            return f"Press Start: the studio chooses the settings for these images ({words.lower()})."
        return self._idle_text

    def _build(self) -> None:
        layout = QHBoxLayout(self)
        left = QWidget()
        left.setFixedWidth(380)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 6, 0)
        self.recipe = QtRecipeForm(self.state)
        lv.addWidget(self.recipe)
        self.options = QtRunOptions(self.state)
        lv.addWidget(self.options)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.start_button.clicked.connect(self._on_start)
        self.pause_button.clicked.connect(self._on_pause)
        self.stop_button.clicked.connect(self._on_stop)
        self.start_button.setToolTip("Train a new model with the settings of every page (Data, Augment, Model "
                                     "and the recipe above)")
        self.pause_button.setToolTip("Hold the run after the current batch, for example to use the computer; "
                                     "Resume goes on where it stopped")
        self.stop_button.setToolTip("End the run after the current batch; the best model so far is kept and the "
                                    "run can be continued later")
        for b in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        lv.addLayout(buttons)
        self.start_reason = QLabel()
        self.start_reason.setObjectName("hint")
        self.start_reason.setWordWrap(True)
        lv.addWidget(self.start_reason)
        lv.addWidget(heading("Runs in this project"))
        self.run_list = QtRunList()
        self.run_list.selection_changed.connect(self._on_runs_selected)
        lv.addWidget(self.run_list, 1)
        self.continue_button = QPushButton("Continue the selected run")
        self.continue_button.setToolTip("Train a stopped or interrupted run further, from its last checkpoint")
        self.continue_button.clicked.connect(self._on_continue)
        lv.addWidget(self.continue_button)
        layout.addWidget(left)
        layout.addLayout(self._build_right(), 1)

    def _build_right(self) -> QVBoxLayout:
        """What the run is doing: messages, progress with time left, the curves and the log."""
        right = QVBoxLayout()
        self.banner = QtBanner()
        right.addWidget(self.banner)
        self.progress = QProgressBar()
        self.progress.setFormat("Not running")
        self.progress.setValue(0)
        right.addWidget(self.progress)
        self.eta_label = QLabel("Press Start to train a model with the settings of every page.")
        self.eta_label.setObjectName("hint")
        self.eta_label.setWordWrap(True)  # a long sentence wraps instead of widening the window
        right.addWidget(self.eta_label)
        split = QSplitter(Qt.Orientation.Vertical)
        self.plot = QtTrainingPlot()
        split.addWidget(self.plot)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("What the run does, step by step, appears here.")
        split.addWidget(self.log)
        split.setSizes([420, 160])
        right.addWidget(split, 1)
        return right

    # ------------------------------------------------------------------------------------ controls

    @Slot()
    def _on_start(self) -> None:
        if self._run is not None or self.state.running:
            self.banner.show_message("A run is already going; stop it before starting another.", "warning")
            return
        report = self.state.report
        if report is None:
            self.banner.show_message("Choose a data folder on the Data page first (or wait for its check to "
                                     "finish).", "error")
            return
        config = copy.deepcopy(self.state.config)
        config.name = self.recipe.name_edit.text().strip()
        try:
            config.validate()
            project = self.state.project
        except ConfigError as exc:
            page = PAGE_OF_FIELD.get(exc.field.split(".")[0], "")
            where = f" (see the {page} page)" if page else ""
            self.banner.show_message(f"Cannot start: {exc}{where}.", "error")
            return
        except OSError as exc:
            self.banner.show_message(f"Cannot open the project folder {self.state.project_dir}: {exc}", "error")
            return
        self.live, self._live_label = [], config.name or "this run"
        self._launch(TrainWorker(config, project=project, report=report))

    @Slot()
    def _on_continue(self) -> None:
        runs = self.run_list.selected_runs()
        if len(runs) != 1 or self._run is not None:
            return
        run = runs[0]
        self.live = [dict(r) for r in self.state.project.epochs(run.id)]
        self._live_label = run_label(run)
        self._launch(TrainWorker(None, resume_dir=run.folder))

    def _launch(self, worker: TrainWorker) -> None:
        worker.status.connect(self._on_status)
        worker.progress.connect(self._on_progress)
        worker.run_started.connect(self._on_run_started)
        worker.batch.connect(self._on_batch)
        worker.epoch.connect(self._on_epoch)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self.worker = worker
        self._run = QtWorkerThread(worker, "studio-train")
        self._run.finished.connect(self._on_run_ended)
        self.banner.clear()
        self.log.clear()
        self.run_list.clearSelection()
        self.plot.set_runs([(self._live_label, self.live)], "The curves appear here after the first epoch.")
        self._epoch_clock = None
        self.state.set_run_state("preparing")
        self._run.start()

    @Slot()
    def _on_pause(self) -> None:
        if self.worker is None:
            return
        if self.state.run_state == "paused":
            self.worker.resume()
            self.state.set_run_state("training", self._epoch_text())
            self._epoch_clock = None  # the pause must not count into the ETA
            self._append("Resumed.")
            self.progress.setFormat("Resumed — waiting for the next batch")
            self.eta_label.setText("Resumed: the time left appears again after a few batches.")
        elif self.state.run_state in ("preparing", "training"):
            self.worker.pause()
            self.state.set_run_state("paused", self.state.run_detail)
            self._append("Paused: training waits after the current batch. Resume to go on.")
            self._show_paused()

    def _show_paused(self) -> None:
        self.progress.setFormat("Paused")
        self.eta_label.setText("Paused. Press Resume to go on; nothing is lost while it waits.")

    @Slot()
    def _on_stop(self) -> None:
        if self.worker is not None and self.state.run_state != "stopping":
            self.worker.stop()
            self.state.set_run_state("stopping")
            self._append(STOPPING)

    @Slot()
    def _update_buttons(self) -> None:
        state, active = self.state.run_state, self._run is not None
        reason = self.start_blocker()
        self.start_button.setEnabled(not active and not reason)
        self.start_button.setToolTip(reason or "Train a new model with the settings of every page")
        self.start_reason.setText("" if active else reason)
        self.start_reason.setVisible(bool(reason) and not active)
        if not active:
            self.eta_label.setText(reason or self._idle())
        self.pause_button.setEnabled(active and state in ("preparing", "training", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(active and state != "stopping")
        runs = self.run_list.selected_runs()
        self.continue_button.setEnabled(
            not active and len(runs) == 1 and runs[0].status in ("stopped", "failed", "interrupted")
            # A run stopped in its first epoch has no checkpoint yet; it starts again from its recipe.
            and any((Path(runs[0].folder) / name).is_file() for name in ("last.pt", "config.json")))

    def start_blocker(self) -> str:
        """Why Start cannot be pressed now, in words; "" when it can."""
        report = self.state.report
        if self._run is not None or self.state.running:
            return "A run is going: stop it before starting another."
        if report is None:
            return "Start needs a data folder: choose one on the Data page."
        if not report.usable:
            with_images = sum(1 for n in report.counts().values() if n)
            return (f"Start needs at least two classes with images; the data folder has "
                    f"{count(with_images, 'class', 'classes')} with usable images.")
        return ""

    # ------------------------------------------------------------------------------------ worker → window

    def _append(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _epoch_text(self) -> str:
        done = self.live[-1]["epoch"] if self.live else 0
        return f"epoch {min(done + 1, self._epochs)} of {self._epochs}" if self._epochs else ""

    @Slot(str)
    def _on_status(self, message: str) -> None:
        self._append(message)
        self.progress.setFormat(message)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"{what[:1].upper()}{what[1:]}: %v of %m")

    @Slot(dict)
    def _on_run_started(self, info: dict) -> None:
        self._epochs = info["epochs"]
        for line in started_lines(RunStarted(**info)):
            self._append(line)
        if self.state.run_state == "preparing":
            self.state.set_run_state("training", self._epoch_text())
        self.state.runs_changed.emit()

    @Slot(dict)
    def _on_batch(self, info: dict) -> None:
        if self.state.run_state == "paused":
            self._show_paused()  # the batch that was running when Pause was pressed
            return
        now = time.monotonic()
        if self._epoch_clock is None or self._epoch_clock[0] != info["epoch"]:
            self._epoch_clock = (info["epoch"], now, info["batch"])
        epoch, started, first = self._epoch_clock
        self.progress.setRange(0, info["batches"])
        self.progress.setValue(info["batch"])
        self.progress.setFormat(f"Epoch {epoch} of {self._epochs} — batch %v of %m — loss {info['loss']:.4f}")
        left_batches = info["batches"] - info["batch"]
        if info["batch"] > first:
            per_batch = (now - started) / (info["batch"] - first)
            epoch_left = per_batch * left_batches
            later = self._epochs - epoch
            per_epoch = (sum(r["seconds"] for r in self.live[-3:]) / len(self.live[-3:])) if self.live else \
                per_batch * info["batches"]
            self.eta_label.setText(f"This epoch: about {duration(epoch_left)} left · whole run: about "
                                   f"{duration(epoch_left + later * per_epoch)} left · "
                                   f"{info['images_per_second']:,.0f} images/s")

    @Slot(dict)
    def _on_epoch(self, info: dict) -> None:
        row = {k: info[k] for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")}
        self.live.append(row)
        self._append(epoch_line(EpochEnd(**info)))
        selected = self.run_list.selected_runs()
        self._refresh_runs()  # the runs table shows this epoch and the best figure so far
        if not selected:
            self.plot.set_runs([(self._live_label, self.live)], planned=self._epochs)
        if self.state.run_state == "training":
            self.state.set_run_state("training", self._epoch_text())

    @Slot(dict)
    def _on_finished(self, result: dict) -> None:
        lines = finished_lines(RunResult.from_dict(result))
        self._append(" ".join(lines))
        self.banner.show_message("\n".join(lines),
                                 "info" if result["status"] != "stopped" or result["epochs_done"] else "warning")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._append(failed_line(message))
        self.banner.show_message(message, "error")

    @Slot()
    def _on_run_ended(self) -> None:
        self._run = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Not running")
        self.state.set_run_state("idle")
        self.state.runs_changed.emit()
        self._update_buttons()
        self._idle_text = "Press Start to train again, or select runs on the left to compare their curves."
        self._update_buttons()

    # ------------------------------------------------------------------------------------ earlier runs

    @Slot()
    def _refresh_runs(self) -> None:
        from studio.core.project import ProjectError

        try:
            self.run_list.set_runs(self.state.project.runs())
        except ProjectError as exc:
            self.banner.show_message(str(exc), "error")
        except (OSError, sqlite3.Error) as exc:
            self.banner.show_message(f"Cannot read the project {self.state.project_dir}: {exc}", "error")
        self._update_buttons()  # a selected run may have become continuable (its program ended elsewhere)

    @Slot(list)
    def _on_runs_selected(self, runs: list) -> None:
        self._update_buttons()
        if not runs:
            self.plot.set_runs([(self._live_label, self.live)])
            return
        try:
            self.plot.set_runs([(run_label(run), self.state.project.epochs(run.id)) for run in runs])
        except (OSError, sqlite3.Error) as exc:
            self.banner.show_message(f"Cannot read the project {self.state.project_dir}: {exc}", "error")

    def shutdown(self) -> None:
        """Stop the run and wait for it (the window normally waits asynchronously first)."""
        if self._run is not None:
            self._run.cancel()
            self._run.wait()
        self.plot.shutdown()

