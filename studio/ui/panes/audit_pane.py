"""The Audit page: images whose label looks wrong, duplicates, and a map of the whole set.

The audit runs on a worker thread (the features take time the first time);
corrections are made from the keyboard so a queue of a hundred images takes
minutes, with the same keys as the Evaluate gallery (studio.ui.widgets.label_review):
R gives an image the suggested class, X leaves it out of training, U restores it,
N moves on. Corrections go to the project, never to the folder, and the Data page
counts follow at once. A check can be stopped; it leaves nothing half-written.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidgetItem,
    QTabWidget,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from studio.core import labels
from studio.core.audit import AuditResult, odds_text, run_audit
from studio.core.cache import Cancelled
from studio.core.fonts import use_system_fonts
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import heading, make_table
from studio.ui.widgets.label_review import KEYS_HINT, QtLabelReview, ReviewItem, correction_text
from studio.ui.workers import CancellableWorker, QtWorkerThread, training_threads

SUSPECT_COLUMNS = ("Image", "Labelled", "Looks like", "Times likelier", "Correction")


class AuditWorker(CancellableWorker):
    """The audit off the UI thread; `result` carries the AuditReport."""

    def __init__(self, report: object, project_folder: Path) -> None:
        super().__init__()
        self.report, self.project_folder = report, project_folder

    def work(self) -> None:
        import torch

        # As for training: a core stays with the window. On two busy cores, two backbone threads made the
        # features twice as slow as one (200-240 ms per image against 86-126 ms: threads spin at barriers).
        torch.set_num_threads(training_threads())
        try:
            self.result.emit(run_audit(self.report, self.project_folder, progress=self._progress,
                                       should_stop=self._stop.is_set))
        except Cancelled:
            return


class QtDatasetMap(QLabel):
    """One dot per image coloured by class; suspects ringed, duplicates crossed. Hover names it, click opens it."""

    def __init__(self) -> None:
        super().__init__("The map appears after the check.")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMouseTracking(True)
        self.points = np.zeros((0, 2))
        self.files: list[str] = []
        self.root = ""

    def show_result(self, result: AuditResult, size: tuple[int, int] = (640, 480)) -> None:
        use_system_fonts()  # class names in any script, not boxes
        fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0.02, 0.10, 0.68, 0.88))
        xy = result.map_xy
        classes = sorted(set(result.given))
        palette = "tab10" if len(classes) <= 10 else "tab20"
        colours = {c: matplotlib.colormaps[palette](i % 20) for i, c in enumerate(classes)}
        for c in classes:
            rows = [i for i, g in enumerate(result.given) if g == c]
            ax.scatter(xy[rows, 0], xy[rows, 1], s=12, color=colours[c], label=f"filed under {c}")
        index = {f: i for i, f in enumerate(result.files)}
        suspects = [index[s.file] for s in result.suspected_labels if s.file in index]
        dups = [index[f] for g in result.duplicates for f in g.files if f in index]
        ax.scatter(xy[dups, 0], xy[dups, 1], s=22, marker="+", linewidths=0.8, color="#5f6368",
                   label="has a near copy")
        ax.scatter(xy[suspects, 0], xy[suspects, 1], s=70, facecolors="none", edgecolors="black", linewidths=1.2,
                   label="label looks wrong")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        fig.text(0.02, 0.02, "One dot per image, coloured by its folder. Images the network sees as alike lie close "
                 "together;\nthe axes have no units. A ringed dot among another colour is a label to check.",
                 fontsize=8, color="#3c4043")
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())
        height = pixels.shape[0]
        shown = ax.transData.transform(xy) if len(xy) else np.zeros((0, 2))
        self.points = np.column_stack([shown[:, 0], height - shown[:, 1]])
        self.files, self.root = list(result.files), result.root
        image = QImage(pixels.data, pixels.shape[1], height, QImage.Format.Format_RGBA8888).copy()
        self.setPixmap(QPixmap.fromImage(image))
        self.setFixedSize(pixels.shape[1], height)

    def file_at(self, pos: QPoint, radius: float = 6.0) -> str | None:
        if not len(self.points):
            return None
        d = np.hypot(self.points[:, 0] - pos.x(), self.points[:, 1] - pos.y())
        i = int(d.argmin())
        return self.files[i] if d[i] <= radius else None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        found = self.file_at(event.position().toPoint())
        if found:
            path = Path(self.root, *found.split("/"))
            QToolTip.showText(event.globalPosition().toPoint(), f'{found}<br><img src="{path}" width="96">', self)
        else:
            QToolTip.hideText()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        found = self.file_at(event.position().toPoint())
        if found:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(self.root, *found.split("/")))))


class AuditPane(QWidget):
    def __init__(self, state: QtStudioState) -> None:
        super().__init__()
        self.state = state
        self.result: AuditResult | None = None
        self._thread: QtWorkerThread | None = None
        self._stopping = False
        layout = QVBoxLayout(self)
        layout.addWidget(heading("Check labels"))
        layout.addWidget(QLabel("Finds images whose label looks wrong, copies of one picture, and images unlike "
                                "the rest. Corrections stay in the project; your folder is never changed.\n"
                                + KEYS_HINT))
        row = QHBoxLayout()
        self.check_button = QPushButton("Check labels")
        self.check_button.setToolTip("Look at every image of the folder and list the labels that look wrong, "
                                     "copies and outliers (the first check of a folder takes longest)")
        self.check_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the check; the images already looked at are kept for next time")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.status = QLabel("")
        row.addWidget(self.check_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.progress)
        row.addWidget(self.status, 1)
        layout.addLayout(row)
        self.tabs = QTabWidget()
        self.suspects = make_table(SUSPECT_COLUMNS)
        self.duplicates = make_table(("Images", "Kind"))
        self.duplicates.horizontalHeaderItem(1).setToolTip(
            "label conflict: copies filed under different classes (one label is wrong); leak: copies a past run "
            "used for both training and validation; same class: copies that count twice in training")
        self.map = QtDatasetMap()
        self.tabs.addTab(self.suspects, "Labels that look wrong")
        self.tabs.addTab(self.duplicates, "Duplicates")
        self.tabs.addTab(self.map, "Map")
        layout.addWidget(self.tabs, 1)
        self.review = QtLabelReview(state, self.suspects, self._current, self.next_row)
        self.review.edited.connect(self._refresh_corrections)
        self.review.failed.connect(self.status.setText)

    @Slot()
    def start(self) -> None:
        report = self.state.raw_report
        if report is None or self._thread is not None:
            self.status.setText("Choose an image folder on the Data page first." if report is None else "")
            return
        corrected, version = labels.apply_overlay(report, self.state.project)
        worker = AuditWorker(corrected, self.state.project.folder)
        worker.progress.connect(self._on_progress)
        worker.result.connect(self.show_result)
        worker.failed.connect(self.status.setText)
        self._thread = QtWorkerThread(worker, "audit")
        self._thread.finished.connect(self._on_finished)
        self.check_button.setEnabled(False)
        self.stop_button.show()
        self.progress.show()
        self.status.setText("Looking at every image (only the first time takes long)…")
        self._thread.start()

    @Slot()
    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._thread.cancel()
            self.status.setText("Stopping…")

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    @Slot()
    def _on_finished(self) -> None:
        stopped, self._stopping = self._stopping, False
        self._thread = None
        self.check_button.setEnabled(True)
        self.stop_button.hide()
        self.progress.hide()
        if stopped:
            self.status.setText("Stopped. The images already looked at are kept; the next check starts from there.")

    @Slot(object)
    def show_result(self, result: AuditResult) -> None:
        self.result = result
        self.status.setText(f"{len(result.files)} images checked: {len(result.suspected_labels)} labels look "
                            f"wrong, {len(result.duplicates)} groups of duplicates, {len(result.outliers)} outliers.")
        self.suspects.setRowCount(len(result.suspected_labels))
        for row, s in enumerate(result.suspected_labels):
            for col, text in enumerate((s.file, s.given, s.suggested, odds_text(s.score), "")):
                self.suspects.setItem(row, col, QTableWidgetItem(text))
            self.suspects.item(row, 3).setToolTip(
                f"A model that never saw this image finds {s.suggested} {odds_text(s.score)} likelier than "
                f"{s.given} ({100 * s.confidence_suggested:.3g}% against {100 * s.confidence_given:.3g}%)")
        self.duplicates.setRowCount(len(result.duplicates))
        for row, g in enumerate(result.duplicates):
            self.duplicates.setItem(row, 0, QTableWidgetItem(", ".join(g.files)))
            self.duplicates.setItem(row, 1, QTableWidgetItem(g.kind))
        self.map.show_result(result, (max(640, self.tabs.width() - 24), max(480, self.tabs.height() - 48)))
        self._refresh_corrections()
        if result.suspected_labels:
            self.suspects.selectRow(0)
            self.suspects.setFocus()

    def _current(self) -> ReviewItem | None:
        row = self.suspects.currentRow()
        if self.result is None or not 0 <= row < len(self.result.suspected_labels):
            return None
        s = self.result.suspected_labels[row]
        return ReviewItem(self.result.root, s.file, s.suggested)

    def relabel_current(self) -> None:
        self.review.apply("relabel")

    def exclude_current(self) -> None:
        self.review.apply("exclude")

    def restore_current(self) -> None:
        self.review.apply("restore")

    def next_row(self) -> None:
        row = self.suspects.currentRow()
        if row + 1 < self.suspects.rowCount():
            self.suspects.selectRow(row + 1)

    def _refresh_corrections(self) -> None:
        if self.result is None:
            return
        fixes = self.review.corrections(self.result.root)
        for row, s in enumerate(self.result.suspected_labels):
            self.suspects.setItem(row, 4, QTableWidgetItem(correction_text(fixes.get(s.file))))
