"""Data: choose the image folder, see what the scan found, decide the split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.config import AUTO_TEST_SHARE, TEST_FLOOR, field_spec
from studio.core.dataset import MIN_IMAGES_PER_CLASS, ScanReport
from studio.core.sample import make_sample_dataset
from studio.core.splits import GroupingError, plan_split
from studio.ui.state import QtStudioState
from studio.ui.widgets.bound import bound_spin, label_for
from studio.ui.widgets.charts import QtBalanceChart
from studio.ui.widgets.class_samples import THUMB_SIZE, THUMBS_PER_CLASS, load_class_samples
from studio.ui.widgets.common import QtBanner, heading, make_table
from studio.ui.widgets.grouping_box import QtGroupingBox
from studio.ui.widgets.thumbnails import QtThumbnailGrid
from studio.ui.widgets.welcome import QtWelcome
from studio.ui.workers import QtTaskRunner, QtWorkerThread, ScanWorker

__all__ = ["THUMBS_PER_CLASS", "DataPane"]  # the samples per class, re-exported for those who count them


class DataPane(QWidget):
    """Folder, scan progress, classes with counts and balance, samples, unusable files, split."""

    title = "Data"

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        # Injectable so tests (and other front ends) can answer without a modal dialog.
        self.choose_folder_dialog: Callable[[], str] = self._ask_folder
        self._scan: QtWorkerThread | None = None
        self._thumbs = QtTaskRunner("studio-thumbnails", self)
        self._thumbs.result.connect(self._on_thumbnails)
        self._thumbs.failed.connect(self._on_thumbnails_failed)
        self._sample = QtTaskRunner("studio-sample", self)
        self._sample.result.connect(self._on_sample_ready)
        self._sample.failed.connect(self._on_error)
        self._syncing = False
        self._build()
        state.folder_changed.connect(self._on_folder_changed)
        state.report_changed.connect(self._on_report_changed)
        state.sample_requested.connect(self._on_sample_requested)
        state.recent_changed.connect(self._update_recent)
        state.config_changed.connect(self._on_config_changed)
        self._update_recent()
        self._on_config_changed("data")
        self._on_report_changed()

    # ------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.choose_button = QPushButton("Choose folder…")
        self.choose_button.setToolTip("A folder with one sub-folder of images per class")
        self.choose_button.clicked.connect(self._on_choose)
        self.sample_button = QPushButton("Open sample data")
        self.sample_button.setToolTip("Four kinds of drawn shapes, 240 small images: see the whole flow work")
        self.sample_button.clicked.connect(self.state.request_sample)
        self.recent_button = QToolButton()
        self.recent_button.setText("Recent")
        self.recent_button.setToolTip("Open one of the image folders used before")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_button.setMenu(QMenu(self.recent_button))
        self.folder_label = QLabel()
        self.folder_label.setObjectName("path")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.audit_button = QPushButton("Check labels…")
        self.audit_button.setToolTip("Find images whose label looks wrong, and duplicates; correct them here")
        self.audit_button.clicked.connect(self.state.request_audit)
        for w in (self.choose_button, self.sample_button, self.recent_button, self.audit_button):
            bar.addWidget(w)
        bar.addWidget(self.folder_label, 1)
        layout.addLayout(bar)

        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setFormat("Checking images… %v of %m")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop checking the images; choose the folder again to start over")
        self.cancel_button.clicked.connect(self._on_cancel_scan)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        self.progress_box.setLayout(progress_row)
        self.progress_box.hide()
        layout.addWidget(self.progress_box)

        self.banner = QtBanner(closable=False)
        layout.addWidget(self.banner)
        self.pages = QStackedWidget()
        self.welcome = QtWelcome()
        self.welcome.sample_button.clicked.connect(self.state.request_sample)
        self.welcome.choose_button.clicked.connect(self._on_choose)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self._build_content())
        layout.addWidget(self.pages, 1)

    def _build_content(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Horizontal)
        left, right = QWidget(), QWidget()
        lv, rv = QVBoxLayout(left), QVBoxLayout(right)
        lv.setContentsMargins(0, 0, 4, 0)
        rv.setContentsMargins(4, 0, 0, 0)

        lv.addWidget(heading("Classes"))
        self.class_table = make_table(("Class", "Images", "Unusable"))
        lv.addWidget(self.class_table, 3)
        self.balance_chart = QtBalanceChart()
        lv.addWidget(self.balance_chart, 4)

        rv.addWidget(heading("Sample images"))
        self.thumbnails = QtThumbnailGrid(THUMB_SIZE)
        self.thumbnails.set_placeholder("Sample images of each class appear here after the scan.")
        rv.addWidget(self.thumbnails, 3)
        self.bad_heading = heading("Unusable files")
        rv.addWidget(self.bad_heading)
        self.bad_table = make_table(("File", "Why it cannot be used"))
        self.bad_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.bad_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.bad_table.setColumnWidth(0, 220)
        rv.addWidget(self.bad_table, 2)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([420, 640])
        layout.addWidget(split, 1)
        layout.addWidget(self._build_split_box())
        return page

    def _build_split_box(self) -> QGroupBox:
        box = QGroupBox("How the images are divided")
        outer = QVBoxLayout(box)
        grid = QHBoxLayout()
        self.val_spin = bound_spin("data.val_fraction")
        self.val_spin.setToolTip("Images held back to measure progress after every epoch")
        self.test_spin = bound_spin("data.test_fraction")
        self.test_spin.setToolTip(f"Images kept aside, unseen, for an honest final score after training. "
                                  f"Automatic: {AUTO_TEST_SHARE:.0%} when every class has at least {TEST_FLOOR} "
                                  "images, else none")
        self.val_spin.valueChanged.connect(self._on_split_edited)
        self.test_spin.valueChanged.connect(self._on_split_edited)
        grid.addWidget(QLabel(label_for("data.val_fraction")))
        grid.addWidget(self.val_spin)
        grid.addSpacing(16)
        grid.addWidget(QLabel("Held-out test"))
        grid.addWidget(self.test_spin)
        grid.addSpacing(16)
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        grid.addWidget(self.split_label, 1)
        outer.addLayout(grid)
        self.grouping = QtGroupingBox(self.state)
        self.state.config_changed.connect(lambda section: section == "data" and self._update_split_label())
        outer.addWidget(self.grouping)
        return box

    # ------------------------------------------------------------------------------------ handlers

    def _ask_folder(self) -> str:
        start = self.state.folder or str(Path.home())
        return QFileDialog.getExistingDirectory(self, "Choose the folder of labelled images", start)

    @Slot()
    def _on_choose(self) -> None:
        folder = self.choose_folder_dialog()
        if folder:
            self.state.set_folder(folder)

    @Slot()
    def _on_sample_requested(self) -> None:
        self.banner.show_message("Drawing the sample data set…", "info")
        self._sample.submit(make_sample_dataset)

    @Slot(object)
    def _on_sample_ready(self, folder: object) -> None:
        self.state.set_folder(str(folder))

    @Slot(str)
    def _on_folder_changed(self, folder: str) -> None:
        if self._scan is not None:
            self._scan.cancel()  # it ends on its own; its late result is ignored below
        self.banner.clear()
        self.pages.setCurrentIndex(1)
        self.progress.setRange(0, 0)
        self.progress_box.show()
        worker = ScanWorker(folder)
        worker.progress.connect(self._on_scan_progress)
        worker.result.connect(self._on_scan_result)
        worker.failed.connect(self._on_scan_failed)
        self._scan = QtWorkerThread(worker, "studio-scan")
        self._scan.finished.connect(self._on_scan_finished)
        self._scan.start()

    def _current_scan(self) -> bool:
        return self._scan is not None and self.sender() in (self._scan, self._scan.worker)

    @Slot(int, int)
    def _on_scan_progress(self, done: int, total: int) -> None:
        if self._current_scan():
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    @Slot(object)
    def _on_scan_result(self, report: object) -> None:
        if self._current_scan() and isinstance(report, ScanReport) and report.root == self.state.folder:
            self.state.set_report(report)

    @Slot(str)
    def _on_scan_failed(self, message: str) -> None:
        if self._current_scan():
            self._on_error(message)

    @Slot()
    def _on_scan_finished(self) -> None:
        if self._current_scan():
            self._scan = None
            self.progress_box.hide()

    @Slot()
    def _on_cancel_scan(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
            self.banner.show_message("Scan cancelled. Choose the folder again to check it.", "warning")

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self.banner.show_message(message, "error")

    @Slot()
    def _on_report_changed(self) -> None:
        report = self.state.report
        self.folder_label.setText(self.state.folder or "No folder chosen yet")
        self.folder_label.setToolTip(self.state.folder)
        if not self.state.folder:
            self.pages.setCurrentIndex(0)
            return
        self.pages.setCurrentIndex(1)
        self._fill_classes(report)
        self._fill_bad(report)
        self._update_split_label()
        if report is None:
            self.thumbnails.set_rows([])
            return
        self._show_warnings(report)
        self._thumbs.submit(load_class_samples, report)

    @Slot(object)
    def _on_thumbnails(self, value: object) -> None:
        root, rows = value  # type: ignore[misc]
        if self.state.report is not None and root == self.state.report.root:
            self.thumbnails.set_rows(rows)

    @Slot(str)
    def _on_thumbnails_failed(self, message: str) -> None:
        self.thumbnails.set_rows([])
        self.thumbnails.set_placeholder(f"The sample images cannot be shown: {message}")

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section != "data":
            return
        self._syncing = True
        self.val_spin.setValue(round(100 * self.state.config.data.val_fraction))
        test = self.state.config.data.test_fraction
        self.test_spin.setValue(-1 if test < 0 else round(100 * test))
        self._syncing = False
        self._update_split_label()

    @Slot()
    def _on_split_edited(self) -> None:
        val, test = self.val_spin.value(), self.test_spin.value()
        # Together no more than either alone may be, so that training keeps images (see DataConfig).
        top = round(100 * field_spec("data.val_fraction").setting.high)
        self.val_spin.setMaximum(top - (round(100 * AUTO_TEST_SHARE) if test < 0 else test))
        self.test_spin.setMaximum(top - val)
        if not self._syncing:
            self.state.update("data", val_fraction=val / 100, test_fraction=-1.0 if test < 0 else test / 100)

    @Slot()
    def _update_recent(self) -> None:
        menu = self.recent_button.menu()
        menu.clear()
        for folder in self.state.recent_folders:
            action = menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.state.set_folder(f))
        self.recent_button.setEnabled(bool(self.state.recent_folders))

    # ------------------------------------------------------------------------------------ drawing

    def _fill_classes(self, report: ScanReport | None) -> None:
        counts = report.counts() if report else {}
        bad: dict[str, int] = {}
        for record in report.bad if report else []:
            bad[record.class_name] = bad.get(record.class_name, 0) + 1
        names = list(counts) + sorted(set(bad) - set(counts))
        self.class_table.setRowCount(len(names))
        for i, name in enumerate(names):
            for col, text in enumerate((name, str(counts.get(name, 0)), str(bad.get(name, 0)))):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.class_table.setItem(i, col, item)
        self.balance_chart.set_counts(counts, MIN_IMAGES_PER_CLASS)

    def _fill_bad(self, report: ScanReport | None) -> None:
        bad = report.bad if report else []
        self.bad_table.setRowCount(len(bad))
        for i, record in enumerate(bad):
            self.bad_table.setItem(i, 0, QTableWidgetItem(record.path))
            self.bad_table.setItem(i, 1, QTableWidgetItem(record.problem))
            self.bad_table.item(i, 0).setToolTip(str(report.abspath(record)))
        self.bad_heading.setText(f"Unusable files ({len(bad)}): skipped, never changed" if bad else
                                 "Unusable files: none, every file can be used")
        self.bad_table.setVisible(bool(bad))

    def _show_warnings(self, report: ScanReport) -> None:
        warnings = report.warnings()
        good = len(report.good)
        if warnings:
            text = "Check your data before training:\n" + "\n".join(f"•  {w[0].upper()}{w[1:]}." for w in warnings)
            self.banner.show_message(text, "error" if not report.usable else "warning")
        else:
            self.banner.show_message(f"Ready: {len(report.classes)} classes, {good} usable images. "
                                     "Next, choose a model.", "info")

    def _update_split_label(self) -> None:
        """Counts of the split a run would make (by declared groups; near-duplicates are found at the start)."""
        data = self.state.config.data
        report = self.state.report
        if report is None or not report.good:
            test = "automatic" if self.test_spin.value() < 0 else f"{self.test_spin.value()} %"
            self.split_label.setText(f"Validation {self.val_spin.value()} %, held-out test {test}.")
            return
        good = report.good
        try:
            plan = plan_split([r.path for r in good], [r.class_name for r in good], [r.label for r in good],
                              val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=data.seed,
                              rule=data.group_by)
        except (GroupingError, ValueError) as exc:
            self.split_label.setText(f"Cannot divide the images: {exc}")
            return
        n = {name: sum(1 for row in plan.rows if row[2] == name) for name in ("train", "val", "test")}
        text = (f"{n['train']} training, {n['val']} validation and {n['test']} held-out test images, "
                "each class in about the same proportions")
        text += f"; {plan.grouping.count} groups kept whole." if data.group_by else "."
        why = [note for note in plan.notes if note.startswith("No held-out test set")]
        self.split_label.setText(text + (f" {why[0]}" if why else ""))

    # ------------------------------------------------------------------------------------ lifetime

    def shutdown(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
            self._scan.wait()
        self._thumbs.shutdown()
        self._sample.shutdown()
        self.balance_chart.shutdown()
