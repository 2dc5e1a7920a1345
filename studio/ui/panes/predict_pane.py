"""Predict: drop images (or a folder, or paste one) and read what the chosen model says about them.

One image shows large with its top classes as bars; several fill a sortable table as a worker
reports them. Every file goes through `Predictor.predict_paths`, exactly as `studio predict`
does (same decoding, same batches of 32, same arithmetic), so the window and the command line
give the same answer for the same file, every time. Pasted pictures are first saved as PNG in
the project's cache, so they too are files that Inspect and the CSV can name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QBuffer, QMimeData, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QProgressBar, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from studio.core.atomic import StorageError, write_bytes
from studio.core.images import IMAGE_EXTENSIONS
from studio.core.predict import Prediction, Predictor, expand_inputs, write_csv
from studio.ui.panes.predict_worker import TOP_K, PredictWorker
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import QtBanner, hint
from studio.ui.widgets.file_drop import IMAGE_FILES, dropped_paths
from studio.ui.widgets.predict_tools import QtPredictTools, drop_hint
from studio.ui.widgets.prediction_table import QtPredictionTable
from studio.ui.widgets.run_picker import ModelPaneMixin, QtModelLoader, QtRunPicker, describe_model
from studio.ui.widgets.single_prediction import QtSinglePrediction
from studio.ui.workers import QtWorkerThread

EMPTY, SINGLE, TABLE = range(3)


class PredictPane(ModelPaneMixin, QWidget):
    """Drop zone, single-image view and batch table over one model chosen with the run picker."""

    title = "Predict"
    results_changed = Signal()  # rows or the single view were updated
    finished = Signal()  # all files of the last request have their row

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.predictor: Predictor | None = None
        self.inputs: list[str] = []  # the files of the current request, in order
        self.choose_files_dialog: Callable[[], list[str]] = self._ask_files
        self.choose_folder_dialog: Callable[[], str] = self._ask_folder
        self.choose_csv_path: Callable[[], str] = self._ask_csv
        self._job: QtWorkerThread | None = None
        self._serial = 0
        self._queued = False  # a newer request waits for the running job to end
        self.setAcceptDrops(True)
        self.loader = QtModelLoader(self)
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)
        self._build()
        state.current_run_changed.connect(self._on_run_changed)
        QShortcut(QKeySequence.StandardKey.Paste, self, self.paste,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._update_controls()

    # ------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.picker = QtRunPicker(self.state)
        layout.addWidget(self.picker)
        self.model_label = hint("")
        layout.addWidget(self.model_label)
        self.banner = QtBanner()
        layout.addWidget(self.banner)
        layout.addWidget(self._build_tools())
        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m images")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop classifying; the rows done so far stay")
        self.stop_button.clicked.connect(self._on_stop)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.stop_button)
        layout.addLayout(progress_row)
        self.stack = QStackedWidget()
        self.drop_hint = drop_hint()
        self.stack.addWidget(self.drop_hint)
        self.single = QtSinglePrediction()
        self.stack.addWidget(self.single)
        self.table = QtPredictionTable()
        self.table.activated.connect(self._on_row_activated)
        self.table.selection_changed.connect(self._update_controls)
        self.table_model = self.table.model
        self.stack.addWidget(self.table)
        layout.addWidget(self.stack, 1)

    def _build_tools(self) -> QtPredictTools:
        tools = QtPredictTools()
        self.add_button, self.folder_button, self.paste_button = (tools.add_button, tools.folder_button,
                                                                  tools.paste_button)
        self.threshold, self.only_flagged, self.only_unfamiliar = (tools.threshold, tools.only_flagged,
                                                                   tools.only_unfamiliar)
        self.inspect_button, self.csv_button, self.clear_button = (tools.inspect_button, tools.csv_button,
                                                                   tools.clear_button)
        self.add_button.clicked.connect(self._on_add_files)
        self.folder_button.clicked.connect(self._on_add_folder)
        self.paste_button.clicked.connect(self.paste)
        self.threshold.valueChanged.connect(self._on_threshold)
        self.only_flagged.toggled.connect(self._on_only_flagged)
        self.only_unfamiliar.toggled.connect(self._on_only_unfamiliar)
        self.inspect_button.clicked.connect(self._on_inspect)
        self.csv_button.clicked.connect(self._on_export_csv)
        self.clear_button.clicked.connect(self.clear)
        return tools

    # ------------------------------------------------------------------------------------ requests

    def view_mode(self) -> int:
        return self.stack.currentIndex()

    def predict_files(self, inputs: Sequence[str | Path]) -> None:
        """Predict files and the images inside folders; the table replaces what was shown before."""
        files = [str(p) for p in expand_inputs(list(inputs))]
        if not files:
            names = ", ".join(Path(p).name for p in inputs)
            self.banner.show_message(f"No image files in {names} (looked for {', '.join(IMAGE_EXTENSIONS)}).",
                                     "warning")
            return
        self.banner.clear()
        self.inputs = files
        self._start()

    def paste(self) -> None:
        self.predict_mime(QGuiApplication.clipboard().mimeData(), "the clipboard")

    def predict_mime(self, mime: QMimeData | None, where: str = "the drop") -> bool:
        """Files (or folders) named by URLs, else a picture carried as image data; False when neither."""
        paths = dropped_paths(mime)
        if paths:
            self.predict_files(paths)
            return True
        if mime is not None and mime.hasImage():
            saved = self._save_picture(QImage(mime.imageData()))
            if saved:
                self.predict_files([saved])
            return True
        self.banner.show_message(f"There is no picture or image file on {where}.", "warning")
        return False

    def _save_picture(self, image: QImage) -> str:
        try:
            folder = self.state.project.cache_dir / "pasted"
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.banner.show_message(f"Cannot keep the pasted picture in {self.state.project_dir}: {exc}", "error")
            return ""
        path = folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{self._serial + 1}.png"
        buffer = QBuffer()
        buffer.open(QBuffer.OpenModeFlag.WriteOnly)
        if image.isNull() or not image.save(buffer, "PNG"):
            self.banner.show_message("The pasted data is not a picture that can be read.", "error")
            return ""
        try:
            write_bytes(path, bytes(buffer.data()))
        except StorageError as exc:
            self.banner.show_message(str(exc), "error")
            return ""
        return str(path)

    def _start(self) -> None:
        if self._job is not None:  # a newer request replaces the running one as soon as it has stopped
            self._queued = True
            self._job.cancel()
            return
        self._serial += 1
        self._queued = False
        self.table_model.clear()
        self.single.set_picture(None)
        self.only_flagged.setChecked(False)
        self.only_unfamiliar.setChecked(False)
        self.stack.setCurrentIndex(TABLE if len(self.inputs) > 1 else EMPTY)
        if self.predictor is None:
            self._request_model()
            return
        worker = PredictWorker(self._serial, self.predictor, self.inputs, single=len(self.inputs) == 1)
        worker.rows.connect(self._on_rows)
        worker.preview.connect(self._on_preview)
        worker.failed.connect(self._on_failed)
        self._job = QtWorkerThread(worker, "studio-predict")
        self._job.finished.connect(self._on_job_ended)
        self.progress.setRange(0, len(self.inputs))
        self.progress.setValue(0)
        self._update_controls()
        self._job.start()

    def clear(self) -> None:
        self.inputs = []
        if self._job is not None:
            self._job.cancel()
        self._serial += 1
        self.table_model.clear()
        self.banner.clear()
        self.stack.setCurrentIndex(EMPTY)
        self._update_controls()
        self.results_changed.emit()

    # ------------------------------------------------------------------------------------ model

    @Slot(str)
    def _on_run_changed(self, run: str) -> None:
        self.predictor = None
        self.model_label.setText("")
        if run and (self.isVisible() or self.inputs):
            self._request_model()

    @Slot(str, object)
    def _on_model_loaded(self, run: str, predictor: Predictor) -> None:
        if run != self.state.current_run:
            return
        self.predictor = predictor
        self.model_label.setText(describe_model(predictor))
        if self.inputs:
            self._start()  # the same files, now read by this model

    # ------------------------------------------------------------------------------------ worker → view

    @Slot(int, list)
    def _on_rows(self, serial: int, rows: list) -> None:
        if serial != self._serial:
            return
        self.table_model.append(rows)
        self.progress.setValue(self.table_model.rowCount())
        if len(self.inputs) == 1:
            p = rows[0][0]
            if p.error:
                self.stack.setCurrentIndex(TABLE)
            else:
                self._show_single(p)
        self._update_summary()
        self.results_changed.emit()

    def _show_single(self, p: Prediction) -> None:
        size = self.predictor.image_size if self.predictor is not None else 0
        self.single.show_prediction(p, self.threshold.value() / 100, size)
        self.stack.setCurrentIndex(SINGLE)

    @Slot(int, str, object)
    def _on_preview(self, serial: int, path: str, pixels: object) -> None:
        if serial == self._serial and pixels is not None:
            self.single.set_picture(pixels)  # type: ignore[arg-type]

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.banner.show_message(message, "error")

    @Slot()
    def _on_job_ended(self) -> None:
        self._job = None
        if self._queued:
            self._start()
            return
        self._update_controls()
        self.finished.emit()

    def _update_summary(self) -> None:
        self.table.update_summary(len(self.inputs))

    def _update_controls(self) -> None:
        running = self._job is not None
        self.progress.setVisible(running and len(self.inputs) > 1)
        self.stop_button.setVisible(running and len(self.inputs) > 1)
        has_rows = self.table_model.rowCount() > 0
        self.csv_button.setEnabled(has_rows and not running)
        self.clear_button.setEnabled(has_rows or running)
        self.inspect_button.setEnabled(bool(self._inspect_target()))

    # ------------------------------------------------------------------------------------ user actions

    @Slot(int)
    def _on_threshold(self, value: int) -> None:
        self.table_model.set_low_confidence(value / 100)
        self._update_summary()
        if self.view_mode() == SINGLE and self.table_model.predictions:
            self._show_single(self.table_model.predictions[0])

    @Slot(bool)
    def _on_only_flagged(self, on: bool) -> None:
        self.table.proxy.set_only_flagged(on)

    @Slot(bool)
    def _on_only_unfamiliar(self, on: bool) -> None:
        self.table.proxy.set_only_unfamiliar(on)

    @Slot()
    def _on_stop(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _inspect_target(self) -> str:
        if self.view_mode() == SINGLE and self.table_model.predictions:
            return self.table_model.predictions[0].path
        p = self.table.selected() if self.view_mode() == TABLE else None
        return p.path if p is not None and not p.error else ""

    @Slot()
    def _on_inspect(self) -> None:
        path = self._inspect_target()
        if path and self.state.current_run:
            self.state.request_inspect(self.state.current_run, path)

    @Slot(object)
    def _on_row_activated(self, p: Prediction) -> None:
        if not p.error and self.state.current_run:
            self.state.request_inspect(self.state.current_run, p.path)

    @Slot()
    def _on_add_files(self) -> None:
        files = self.choose_files_dialog()
        if files:
            self.predict_files(files)

    @Slot()
    def _on_add_folder(self) -> None:
        folder = self.choose_folder_dialog()
        if folder:
            self.predict_files([folder])

    @Slot()
    def _on_export_csv(self) -> None:
        path = self.choose_csv_path()
        if not path:
            return
        top_k = min(TOP_K, len(self.predictor.classes)) if self.predictor is not None else TOP_K
        try:
            write_csv(self.table_model.predictions, path, top_k)
        except OSError as exc:
            self.banner.show_message(f"Could not write {path}: {exc.strerror or exc}", "error")
            return
        self.banner.show_message(f"Saved {self.table_model.rowCount()} rows to {path}", "info")

    def _ask_files(self) -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(self, "Choose images to classify", str(Path.home()), IMAGE_FILES)
        return files

    def _ask_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Choose a folder of images to classify", str(Path.home()))

    def _ask_csv(self) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save the predictions as CSV", str(Path.home() /
                                              "predictions.csv"), "CSV files (*.csv)")
        return path

    # ------------------------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        mime = event.mimeData()
        if dropped_paths(mime) or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        if self.predict_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def shutdown(self) -> None:
        """Stop the batch and wait for every thread of this view: none may outlive the window."""
        self._queued = False
        if self._job is not None:
            self._job.cancel()
            self._job.wait()
        self.loader.shutdown()
