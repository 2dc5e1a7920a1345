"""The window's one shared model: a run config, the scan of its folder, the project, the run state.

Panes get this object in their constructor, write the user's edits into it and
redraw when it says something changed. They never call each other: a pane that
needs to react to another pane's edit listens to the signal here instead.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from studio.core.config import RecipeConfig, RunConfig
from studio.core.dataset import ScanReport
from studio.core.project import Project, ProjectError, default_project_dir

MAX_RECENT = 8
# Sections whose fields the recommended settings would otherwise choose.
PINNABLE = ("model", "augment", "train")
# How often the project's run list is re-read, so runs started by the CLI or another window appear.
RUNS_POLL_MS = 2000

RUN_STATE_TEXT = {
    "idle": "Ready",
    "preparing": "Preparing the run",
    "training": "Training",
    "paused": "Paused",
    "stopping": "Stopping, keeping the last checkpoint",
}


class QtStudioState(QObject):
    """Holds ONE `RunConfig`; every edit goes through `update` so every pane hears of it."""

    config_changed = Signal(str)  # the section that changed: "data", "augment", "model", "train"
    folder_changed = Signal(str)  # a data folder was chosen: it must be scanned
    report_changed = Signal()  # the scan of the data folder arrived (or was cleared)
    run_state_changed = Signal(str)  # one of RUN_STATE_TEXT
    runs_changed = Signal()  # a run started or ended: the project's run list is out of date
    recent_changed = Signal()
    stop_requested = Signal()  # someone (the closing window) wants the current run stopped
    sample_requested = Signal()  # someone wants the built-in sample data set opened
    audit_requested = Signal()  # someone wants the label check (the Audit page)

    def __init__(self, config: RunConfig | None = None, *, project_dir: str | Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The window starts from the recommended settings; a config handed in is used as it is.
        self.config = config or RunConfig(recipe=RecipeConfig(mode="recommended"))
        self.report: ScanReport | None = None
        self.raw_report: ScanReport | None = None
        self.recent_folders: list[str] = []
        self.run_state = "idle"
        self.run_detail = ""
        self._project_dir = Path(project_dir) if project_dir else None
        self._project: Project | None = None
        self._runs_seen: tuple = ()
        self._runs_timer = QTimer(self)
        self._runs_timer.setInterval(RUNS_POLL_MS)
        self._runs_timer.timeout.connect(self.poll_runs)

    # ------------------------------------------------------------------------------------ config

    def update(self, section: str, **values: object) -> None:
        """Set fields of one config section; emits `config_changed(section)` when anything changed."""
        target = getattr(self.config, section)
        changed = False
        for key, value in values.items():
            if not hasattr(target, key):
                raise AttributeError(f"{section} has no setting {key!r}")
            if getattr(target, key) != value:
                setattr(target, key, value)
                changed = True
                if section in PINNABLE:  # set by hand: the recommended settings leave it alone
                    self._pin(f"{section}.{key}")
        if changed:
            self.config_changed.emit(section)

    def _pin(self, name: str) -> None:
        pinned = self.config.recipe.pinned
        if name not in pinned:
            pinned.append(name)

    def replace(self, section: str, value: object) -> None:
        """Swap a whole section, e.g. the augmentation settings of a preset."""
        setattr(self.config, section, value)
        if section == "augment":
            self._pin("augment.preset")
        self.config_changed.emit(section)

    # ------------------------------------------------------------------------------------ data

    @property
    def folder(self) -> str:
        return self.config.data.root

    def set_folder(self, folder: str | Path) -> None:
        """Choose the data folder: the data pane scans it and `report_changed` follows."""
        path = str(Path(folder).expanduser().absolute())
        self.config.data.root = path
        self.report = self.raw_report = None
        self.add_recent(path)
        self.config_changed.emit("data")
        self.report_changed.emit()
        self.folder_changed.emit(path)

    def set_report(self, report: ScanReport | None) -> None:
        """The scan as the folder is (`raw_report`) and as corrected in the project (`report`, what pages show)."""
        self.raw_report = report
        self.report = report
        if report is not None:
            from studio.core.labels import apply_overlay

            with contextlib.suppress(OSError, sqlite3.Error, ProjectError):  # no usable project: folder as is
                self.report = apply_overlay(report, self.project)[0]
        self.report_changed.emit()

    def request_audit(self) -> None:
        self.audit_requested.emit()

    def add_recent(self, folder: str) -> None:
        self.recent_folders = [folder] + [f for f in self.recent_folders if f != folder]
        del self.recent_folders[MAX_RECENT:]
        self.recent_changed.emit()

    def request_sample(self) -> None:
        self.sample_requested.emit()

    # ------------------------------------------------------------------------------------ project and runs

    @property
    def project_dir(self) -> Path:
        return self._project_dir or default_project_dir()

    @property
    def project(self) -> Project:
        """Opened on first use (it creates its folder and database); may raise OSError."""
        if self._project is None:
            self._project = Project(self.project_dir)
        return self._project

    def watch_runs(self, enabled: bool = True) -> None:
        """Re-read the run list every few seconds; `runs_changed` fires only when something differs."""
        if enabled:
            self._runs_timer.start()
        else:
            self._runs_timer.stop()

    @Slot()
    def poll_runs(self) -> bool:
        """Emit `runs_changed` when a run appeared, changed state or finished an epoch elsewhere."""
        try:
            seen = tuple((r.id, r.status, r.epochs_done) for r in self.project.runs())
        except Exception:  # noqa: BLE001 - a busy or unreadable database is read again next time
            return False
        if seen == self._runs_seen:
            return False
        self._runs_seen = seen
        self.runs_changed.emit()
        return True

    @property
    def running(self) -> bool:
        return self.run_state != "idle"

    def set_run_state(self, state: str, detail: str = "") -> None:
        if state not in RUN_STATE_TEXT:
            raise ValueError(f"unknown run state {state!r}")
        if (state, detail) != (self.run_state, self.run_detail):
            self.run_state, self.run_detail = state, detail
            self.run_state_changed.emit(state)

    def run_state_text(self) -> str:
        text = RUN_STATE_TEXT[self.run_state]
        return f"{text} — {self.run_detail}" if self.run_detail else text

    def request_stop(self) -> None:
        if self.running:
            self.stop_requested.emit()

    # ------------------------------------------------------------------------------------ using a trained model

    # The run folder (or checkpoint file) the Predict, Inspect and Evaluate views use: choosing it in
    # one view chooses it in all of them, so an image sent from one view is read by the same model.
    current_run_changed = Signal(str)
    # (run folder or checkpoint, image path): someone wants this image looked at in Inspect.
    inspect_requested = Signal(str, str)
    current_run: str = ""

    def set_current_run(self, run: str | Path) -> None:
        path = str(Path(run)) if run else ""
        if path != self.current_run:
            self.current_run = path
            self.current_run_changed.emit(path)

    def request_inspect(self, run: str | Path, image: str | Path) -> None:
        """Make `run` current, then ask for `image` in Inspect (the window switches to that pane)."""
        self.set_current_run(run)
        self.inspect_requested.emit(str(Path(run)), str(image))
