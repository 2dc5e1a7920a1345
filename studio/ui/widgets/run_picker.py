"""Which trained model the Predict, Inspect and Evaluate views use, and the one place they load it.

The choice lives in the shared state (`current_run`), so choosing a run in one view chooses
it in all three and an image sent from one view to another is read by the same model. Loading
goes through `load_predictor`, which keeps the last few models in memory: three views asking
for the same run cost one load, and a checkpoint rewritten since (a run still training) is
loaded afresh.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from studio.core.checkpoint import resolve_checkpoint_path
from studio.core.predict import Predictor
from studio.core.project import RunRow
from studio.ui.state import QtStudioState
from studio.ui.workers import QtTaskRunner, describe_exception

KEEP_LOADED = 2
NO_MODEL_MESSAGE = ("There is no trained model yet: train one on the Train page, or open a checkpoint file with "
                    "Open checkpoint….")
_LOADED: OrderedDict[tuple[str, int], Predictor] = OrderedDict()
_LOCK = threading.Lock()


def load_predictor(run: str) -> Predictor:
    """A `Predictor` for a run folder or checkpoint file; raises `CheckpointError` with a readable reason.

    Safe to call from worker threads: the lock also makes a second view asking for the same model
    wait for the first load instead of loading it twice.
    """
    path = resolve_checkpoint_path(run)
    key = (str(path), path.stat().st_mtime_ns)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
        predictor = Predictor(path)
        _LOADED[key] = predictor
        while len(_LOADED) > KEEP_LOADED:
            _LOADED.popitem(last=False)
        return predictor


def cached_predictor(run: str) -> Predictor | None:
    """The model already in memory for `run`, without loading anything (None when it is not)."""
    try:
        path = resolve_checkpoint_path(run)
        key = (str(path), path.stat().st_mtime_ns)
    except Exception:
        return None
    with _LOCK:
        return _LOADED.get(key)


def _load(run: str) -> tuple[str, Predictor | None, str]:
    try:
        return run, load_predictor(run), ""
    except Exception as exc:  # shown in the view that asked, as words
        return run, None, describe_exception(exc)


class QtModelLoader(QObject):
    """Loads the model of a run off the UI thread; a model already in memory arrives at once.

    Only the answer for the latest request is delivered, so a user flicking through runs
    ends up with the model of the run they stopped on.
    """

    loaded = Signal(str, object)  # run, Predictor
    failed = Signal(str, str)  # run, message for the user
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.wanted = ""
        self._runner = QtTaskRunner("studio-load-model", self)
        self._runner.result.connect(self._on_result)
        self._runner.busy_changed.connect(self.busy_changed)

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def request(self, run: str) -> None:
        self.wanted = run
        predictor = cached_predictor(run)
        if predictor is not None:
            self.loaded.emit(run, predictor)
        else:
            self._runner.submit(_load, run)

    def request_current(self, state, banner, status_label) -> None:
        """The shared run's model, or a word to the user that there is none yet."""
        run = state.current_run
        if not run:
            banner.show_message(NO_MODEL_MESSAGE, "warning")
            return
        status_label.setText("Loading the model…")
        self.request(run)

    def shutdown(self) -> None:
        self._runner.shutdown()

    @Slot(object)
    def _on_result(self, value: object) -> None:
        run, predictor, error = value  # type: ignore[misc]
        if run != self.wanted:
            return
        if predictor is None:
            self.failed.emit(run, error)
        else:
            self.loaded.emit(run, predictor)


def describe_model(predictor: Predictor) -> str:
    """One line a user can check the model by: architecture, input size, classes, how good it was."""
    from studio.core.models import architecture_info

    arch = predictor.arch.get("arch", "?")
    try:
        title = architecture_info(arch).title
    except ValueError:
        title = arch
    text = f"{title} · {predictor.image_size} px · {len(predictor.classes)} classes"
    acc = predictor.metrics.get("val_acc")
    if acc is not None:
        text += f" · validation accuracy {100 * acc:.1f}%"
    return text


def run_checkpoint(folder: str) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def _run_label(run: RunRow) -> str:
    when = time.strftime("%d %b %H:%M", time.localtime(run.started_at)) if run.started_at else ""
    best = "" if run.best_metric is None else f", val. acc. {100 * run.best_metric:.1f}%"
    status = "" if run.status == "finished" else f" ({run.status})"
    return f"{when}  {run.name or Path(run.folder).name} — {run.arch}{best}{status}"


class QtRunPicker(QWidget):
    """"Model: [run ▾] [Open checkpoint…]", mirroring `state.current_run` in both directions.

    Lists the project's runs that left a checkpoint, newest first, plus checkpoint files opened
    by hand. When a run finishes (a checkpoint appears that was not there before), it becomes the
    current one: after training, the views show the model just trained.
    """

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.choose_file_dialog: Callable[[], str] = self._ask_file
        self._known: set[str] | None = None  # run folders with a checkpoint at the last refresh
        self._files: list[str] = []  # checkpoint files opened by hand
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Model:"))
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(40)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setToolTip("The trained model to use: a run of this project, or a checkpoint file")
        self.combo.activated.connect(self._on_activated)
        row.addWidget(self.combo, 1)
        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.setToolTip("Use a .pt checkpoint saved by Classification Studio, e.g. from a colleague")
        self.open_button.clicked.connect(self._on_open_file)
        row.addWidget(self.open_button)
        state.runs_changed.connect(self.refresh)
        state.current_run_changed.connect(self._on_current_changed)
        self.refresh()

    @property
    def current(self) -> str:
        return self.state.current_run

    # ------------------------------------------------------------------------------------ list

    @Slot()
    def refresh(self) -> None:
        try:
            runs = [r for r in self.state.project.runs() if run_checkpoint(r.folder) is not None]
        except OSError:
            runs = []  # the pane's banner reports an unusable project folder when it loads a model
        runs.sort(key=lambda r: r.id, reverse=True)
        folders = [str(Path(r.folder)) for r in runs]
        self.combo.blockSignals(True)
        self.combo.clear()
        for run, folder in zip(runs, folders):
            self.combo.addItem(_run_label(run), folder)
            self.combo.setItemData(self.combo.count() - 1, folder, 3)  # 3 = ToolTipRole
        for path in self._files:
            self._add_file_item(path)
        if not runs and not self._files:
            self.combo.addItem("No trained model yet: train one on the Train page, or open a checkpoint", "")
        self.combo.blockSignals(False)
        fresh = [f for f in folders if self._known is not None and f not in self._known]
        self._known = set(folders)
        if fresh:
            self.state.set_current_run(fresh[0])
        elif not self.state.current_run and folders:
            self.state.set_current_run(folders[0])
        self._on_current_changed(self.state.current_run)

    def _add_file_item(self, path: str) -> None:
        self.combo.addItem(f"{Path(path).name} — checkpoint file in {Path(path).parent}", path)
        self.combo.setItemData(self.combo.count() - 1, path, 3)

    # ------------------------------------------------------------------------------------ choice

    @Slot(str)
    def _on_current_changed(self, path: str) -> None:
        if not path:
            return
        index = self.combo.findData(path)
        if index < 0:
            self._files.append(path)
            self.combo.blockSignals(True)
            if not self.combo.itemData(0):  # the "no trained model yet" line
                self.combo.removeItem(0)
            self._add_file_item(path)
            self.combo.blockSignals(False)
            index = self.combo.count() - 1
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)

    @Slot(int)
    def _on_activated(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path:
            self.state.set_current_run(path)

    def _ask_file(self) -> str:
        start = str(self.state.project.runs_dir) if self.state.project_dir.exists() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open a Classification Studio checkpoint", start,
                                              "Checkpoints (*.pt *.pth);;All files (*)")
        return path

    @Slot()
    def _on_open_file(self) -> None:
        path = self.choose_file_dialog()
        if path:
            self.state.set_current_run(path)


class ModelPaneMixin:
    """For a view that uses the shared run's model: load it when shown, say plainly when it fails.

    Mixed in before QWidget by Predict and Inspect, which both need `state`, `loader`,
    `banner`, `model_label` and `predictor`.
    """

    def _request_model(self) -> None:
        self.loader.request_current(self.state, self.banner, self.model_label)

    def _on_model_failed(self, run: str, message: str) -> None:
        self.model_label.setText("")
        self.banner.show_message(message, "error")

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self.predictor is None and self.state.current_run and not self.loader.busy:
            self._request_model()
