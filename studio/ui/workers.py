"""Work the window hands to other threads: scanning, training and small one-off tasks.

Each worker is a `QObject` moved to a `QThread` of its own (`QtWorkerThread`
owns both). Workers call `studio.core` and nothing else; what they learn
crosses back to the UI thread as signals carrying plain data (dicts, lists,
numpy arrays, report objects nobody mutates). Batch and progress signals are
throttled here, at the source, so a fast loop cannot flood the UI thread.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from studio.core.callbacks import BatchEnd, Callback, EpochEnd, RunResult, RunStarted, StopToken
from studio.core.config import RunConfig
from studio.core.dataset import ScanReport, scan
from studio.core.errors import ScanCancelled

# At most this often a batch or progress signal reaches the UI thread.
SIGNAL_INTERVAL_S = 0.1

_LIVE: set[QtWorkerThread] = set()


def training_threads() -> int:
    """Torch CPU threads for a run started from the window: one core is left to the window.

    With every core busy in torch, the UI thread competes with OpenMP threads that spin at
    their barriers; on two cores that made both the window and the run many times slower
    (see benchmarks/ui_responsiveness.py). $STUDIO_TORCH_THREADS overrides.
    """
    if os.environ.get("STUDIO_TORCH_THREADS", "").isdigit():
        return max(1, int(os.environ["STUDIO_TORCH_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores - 1)


def describe_exception(exc: BaseException) -> str:
    """A user's error as written by the engine; anything else as a bug, in one readable paragraph."""
    from studio.core.errors import user_errors

    if isinstance(exc, user_errors()):
        return str(exc)
    if isinstance(exc, OSError):
        return f"A file could not be read or written: {exc}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"Something went wrong that the studio did not expect ({type(exc).__name__}: {first}). "
            "The details were printed to the terminal; please report them.")


def live_workers() -> int:
    """How many worker threads have not finished yet."""
    return len(_LIVE)


def stop_all(timeout_ms: int = 60_000) -> bool:
    """Ask every worker to end and wait for it: no thread may outlive the window."""
    for handle in list(_LIVE):
        handle.cancel()
    return all(handle.wait(timeout_ms) for handle in list(_LIVE))


atexit.register(stop_all)  # last resort: a QThread destroyed while running aborts the process


class QtGarbageCollector(QObject):
    """Python's cyclic garbage collection, run on the UI thread only (the approach of pyqtgraph).

    Left automatic, a collection starts in whichever thread happens to allocate, and a Qt
    object freed there (a widget in a reference cycle) crashes the process: it happened
    in the UI tests, in a scan thread. Collections keep Python's own thresholds.
    """

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()

    @Slot()
    def check(self) -> None:
        young, middle, old = gc.get_count()
        if young > self.threshold[0]:
            gc.collect(0)
            if middle > self.threshold[1]:
                gc.collect(1)
                if old > self.threshold[2]:
                    gc.collect(2)


class _Worker(QObject):
    """Runs `work()` once on its thread; `failed` carries a readable message, `done` always comes last."""

    failed = Signal(str)
    done = Signal()

    @Slot()
    def run(self) -> None:
        try:
            self.work()
        except Exception as exc:  # the last line of defence: the user sees a message, never a dead thread
            from studio.core.errors import user_errors

            if not isinstance(exc, user_errors()):
                traceback.print_exc(file=sys.stderr)  # a bug: its details belong in the terminal too
            self.failed.emit(describe_exception(exc))
        finally:
            self.done.emit()

    def work(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Ask the work to end soon; a task that cannot be interrupted simply finishes."""


class QtWorkerThread(QObject):
    """One worker on one thread. Kept alive (module registry) until its thread has ended, so a
    `QThread` is never destroyed while it runs, whatever happens to the widget that started it."""

    finished = Signal()

    def __init__(self, worker: _Worker, name: str) -> None:
        super().__init__()
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit must not wait for the UI thread, which may be blocked in wait().
        worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread.finished.connect(self._on_thread_finished)
        self._ended = False

    def start(self) -> QtWorkerThread:
        _LIVE.add(self)
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self in _LIVE

    def cancel(self) -> None:
        self.worker.cancel()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        finished = self.thread.wait(timeout_ms)
        if finished:
            _LIVE.discard(self)
        return finished

    @Slot()
    def _on_thread_finished(self) -> None:
        _LIVE.discard(self)
        if not self._ended:
            self._ended = True
            self.finished.emit()


# ---------------------------------------------------------------------------------------------- tasks


class TaskWorker(_Worker):
    """Calls `fn(*args)` once; its return value arrives as `result`."""

    result = Signal(object)

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__()
        self.fn, self.args = fn, args

    def work(self) -> None:
        self.result.emit(self.fn(*self.args))


class QtTaskRunner(QObject):
    """Runs one task at a time off the UI thread; while one runs, only the latest new request waits.

    For work the user re-triggers as they type (a layer table, a preview): stale results are
    dropped, so what is shown always matches the last request.
    """

    result = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._handle: QtWorkerThread | None = None
        self._pending: tuple[Callable[..., Any], tuple[Any, ...]] | None = None

    @property
    def busy(self) -> bool:
        return self._handle is not None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._handle is not None:
            self._pending = (fn, args)
            return
        worker = TaskWorker(fn, *args)
        worker.result.connect(self._on_result)
        worker.failed.connect(self._on_failed)
        self._handle = QtWorkerThread(worker, self.name)
        self._handle.finished.connect(self._on_finished)
        self._handle.start()
        self.busy_changed.emit(True)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        self._pending = None
        if self._handle is not None:
            self._handle.wait(timeout_ms)

    @Slot(object)
    def _on_result(self, value: object) -> None:
        if self._pending is None:
            self.result.emit(value)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self._pending is None:
            self.failed.emit(message)

    @Slot()
    def _on_finished(self) -> None:
        self._handle = None
        if self._pending is not None:
            fn, args = self._pending
            self._pending = None
            self.submit(fn, *args)
        else:
            self.busy_changed.emit(False)


# ---------------------------------------------------------------------------------------------- scan


class ScanWorker(_Worker):
    """`studio.core.dataset.scan` with progress and cancel."""

    progress = Signal(int, int)
    result = Signal(object)  # ScanReport

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        self._stop = threading.Event()
        self._last = 0.0

    def cancel(self) -> None:
        self._stop.set()

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done in (0, total) or now - self._last >= SIGNAL_INTERVAL_S:
            self._last = now
            self.progress.emit(done, total)

    def work(self) -> None:
        try:
            report: ScanReport = scan(self.root, progress=self._progress, should_stop=self._stop.is_set)
        except ScanCancelled:
            return
        self.result.emit(report)


# ---------------------------------------------------------------------------------------------- training


class _SignalCallback(Callback):
    """The trainer's hooks as signals of `TrainWorker`; called on the training thread."""

    def __init__(self, worker: TrainWorker) -> None:
        self.worker = worker
        self.failed_sent = False
        self._last_batch = 0.0
        self._last_progress = 0.0

    def on_status(self, message: str) -> None:
        self.worker.status.emit(message)

    def on_progress(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if done in (0, total) or now - self._last_progress >= SIGNAL_INTERVAL_S:
            self._last_progress = now
            self.worker.progress.emit(done, total, what)

    def on_run_start(self, info: RunStarted) -> None:
        self.worker.run_started.emit(dataclasses.asdict(info))

    def on_batch_end(self, info: BatchEnd) -> None:
        now = time.monotonic()
        if info.batch == info.batches or now - self._last_batch >= SIGNAL_INTERVAL_S:
            self._last_batch = now
            self.worker.batch.emit(dataclasses.asdict(info))

    def on_epoch_end(self, info: EpochEnd) -> None:
        self.worker.epoch.emit(dataclasses.asdict(info))

    def on_finished(self, result: RunResult) -> None:
        self.worker.finished.emit(result.to_dict())

    def on_failed(self, message: str) -> None:
        self.failed_sent = True
        self.worker.failed.emit(message)


class TrainWorker(_Worker):
    """Owns one `Trainer` run (new, or resumed from a run folder) and its stop token."""

    status = Signal(str)
    progress = Signal(int, int, str)
    run_started = Signal(dict)
    batch = Signal(dict)
    epoch = Signal(dict)
    finished = Signal(dict)  # RunResult.to_dict(): also after a stop

    def __init__(self, config: RunConfig | None, *, project: Any = None, report: ScanReport | None = None,
                 resume_dir: str | Path | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.threads = threads or training_threads()
        if config is None and resume_dir is None:
            raise ValueError("a run needs a config or a run folder to resume")
        self.config, self.project, self.report, self.resume_dir = config, project, report, resume_dir
        self.token = StopToken()

    def cancel(self) -> None:
        self.token.stop()

    def stop(self) -> None:
        self.token.stop()

    def pause(self) -> None:
        self.token.pause()

    def resume(self) -> None:
        self.token.resume()

    def work(self) -> None:
        import torch

        from studio.core.errors import TrainingError
        from studio.core.train import Trainer

        torch.set_num_threads(self.threads)  # on this thread, where the run's parallel regions start
        callback = _SignalCallback(self)
        if self.resume_dir is not None:
            trainer = Trainer.resume(self.resume_dir, callbacks=[callback], stop=self.token)
        else:
            trainer = Trainer(self.config, project=self.project, callbacks=[callback], stop=self.token,
                              scan_report=self.report)
        try:
            trainer.run()
        except TrainingError as exc:
            if not callback.failed_sent:  # the trainer normally reports it through on_failed first
                self.failed.emit(str(exc))
