"""Evaluate: how good a finished run is, where it goes wrong, and what to try next; then export it.

`evaluate_run` predicts the run's own validation (or test) images with its best checkpoint in a
worker, and also writes report.md and confusion.png into the run folder, exactly as
`studio evaluate` does. The view draws the `Evaluation`: a clickable confusion matrix, per-class
precision / recall / F1, the confident mistakes and the plain-language diagnostics. Clicking an
image sends it to Inspect through the shared state. The image lists take the same label
corrections as the Audit page (keys R, X, U, N and a right-click menu), stored in the project.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QIcon, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.core.evaluate import NEW, EvaluatedImage, Evaluation
from studio.core.evaluation_report import picture_names
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import QtBanner, array_to_pixmap, heading, hint
from studio.ui.widgets.confusion_view import QtConfusionMatrix
from studio.ui.widgets.evaluation_parts import (
    NEW_NOTE,
    NO_TEST_NOTE,
    THUMB,
    TRUST_NOTE,
    diagnostics_html,
    evaluate_and_write,
    evaluate_folder_and_write,
    has_split,
    image_list,
    load_thumbnails,
    per_class_table,
)
from studio.ui.widgets.export_box import QtExportBox
from studio.ui.widgets.label_review import KEYS_HINT, QtImageListReview
from studio.ui.widgets.run_picker import QtRunPicker, run_checkpoint
from studio.ui.workers import QtTaskRunner

# The test share first: held-out images nothing in the run chose its epochs or settings by. Last, the user's own
# test: a folder of labelled images the run never saw, asked for when chosen.
SPLITS = (("test", "Held-out test images"), ("val", "Validation images"), ("train", "Training images"),
          (NEW, "New images from a folder…"))
MAX_CELL_IMAGES = 300
WRONG_TAB, CELL_TAB = range(2)
PATH_ROLE = Qt.ItemDataRole.UserRole


class EvaluatePane(QWidget):
    """Evaluates the current run when shown (once per run and split) and draws the result."""

    title = "Evaluate"
    evaluated = Signal()  # a new Evaluation is drawn (or its failure shown)

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.evaluation: Evaluation | None = None
        self._cache: dict[tuple[str, str, int], Evaluation] = {}  # (run, split or new folder, checkpoint mtime)
        self._new_folder = ""  # the folder of new images, once chosen
        self._last_split = SPLITS[0][0]
        self._serial = 0
        self._runner = QtTaskRunner("studio-evaluate", self)
        self._runner.result.connect(self._on_evaluated)
        self._thumbs = {name: QtTaskRunner(f"studio-thumbs-{name}", self) for name in ("wrong", "cell")}
        for name, runner in self._thumbs.items():
            runner.result.connect(lambda value, n=name: self._on_thumbnails(n, value))
        blank = QPixmap(THUMB, THUMB)
        blank.fill(Qt.GlobalColor.lightGray)
        self._blank = QIcon(blank)
        self._build()
        state.current_run_changed.connect(self._on_run_changed)

    # ------------------------------------------------------------------------------------ layout

    def _build_top(self) -> QHBoxLayout:
        """The run, which of its images to judge it by, and the buttons that act on it."""
        top = QHBoxLayout()
        self.picker = QtRunPicker(self.state)
        top.addWidget(self.picker, 1)
        self.split_combo = QComboBox()
        for key, text in SPLITS:
            self.split_combo.addItem(text, key)
        self.split_combo.setToolTip("Which images to judge the run by: held-out test images are the fair judge; "
                                    "validation images chose the best epoch; training images were learned; new "
                                    "images from a folder of your own, labelled by sub-folder, test it on pictures "
                                    "it never saw")
        self.split_combo.currentIndexChanged.connect(self._on_split)
        top.addWidget(self.split_combo)
        self.again_button = QPushButton("Evaluate again")
        self.again_button.setToolTip("Predict the images again, e.g. after they changed on disk")
        self.again_button.clicked.connect(lambda: self.evaluate(force=True))
        top.addWidget(self.again_button)
        self.audit_button = QPushButton("Check labels…")
        self.audit_button.setToolTip("Find images whose label looks wrong, and duplicates; correct them there")
        self.audit_button.clicked.connect(self.state.request_audit)
        top.addWidget(self.audit_button)
        return top

    def _build_left(self) -> QWidget:
        """The confusion matrix over the per-class figures."""
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        lv.addWidget(heading("Confusion matrix — click a cell to see its images"))
        self.matrix = QtConfusionMatrix()
        self.matrix.cell_clicked.connect(self._on_cell)
        lv.addWidget(self.matrix, 3)
        lv.addWidget(heading("Per class"))
        self.per_class = per_class_table()
        lv.addWidget(self.per_class, 2)
        return left

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_top())
        self.banner = QtBanner()
        layout.addWidget(self.banner)
        self.summary = QLabel("Choose a run to see how well it does.")
        self.summary.setObjectName("big")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.report_label = hint("")
        layout.addWidget(self.report_label)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_left())

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 0, 0, 0)
        rv.addWidget(heading("What to try next"))
        self.diagnostics = QTextBrowser()
        self.diagnostics.setOpenLinks(False)
        self.diagnostics.setMaximumHeight(170)
        rv.addWidget(self.diagnostics)
        self.tabs = QTabWidget()
        self.wrong_list = image_list()
        self.wrong_list.itemClicked.connect(self._on_image_clicked)
        wrong_page = QWidget()
        wv = QVBoxLayout(wrong_page)
        wv.addWidget(hint("The mistakes the model was surest about: wrong labels and real blind spots hide here. "
                          "Click one to look inside the model for it. To correct its label (in the project, "
                          "never in your folder): " + KEYS_HINT.removeprefix("Keys: ").replace("suggested", "model's")))
        wv.addWidget(self.wrong_list, 1)
        self.tabs.addTab(wrong_page, "Most confident mistakes")
        cell_page = QWidget()
        cv = QVBoxLayout(cell_page)
        self.cell_label = QLabel("Click a cell of the confusion matrix.")
        self.cell_label.setWordWrap(True)
        cv.addWidget(self.cell_label)
        self.cell_list = image_list()
        self.cell_list.itemClicked.connect(self._on_image_clicked)
        cv.addWidget(self.cell_list, 1)
        self.tabs.addTab(cell_page, "Images in a cell")
        self.reviews = [self._review(self.wrong_list), self._review(self.cell_list)]
        rv.addWidget(self.tabs, 1)
        split.addWidget(right)
        split.setSizes([560, 520])
        layout.addWidget(split, 1)
        self.export_box = QtExportBox(lambda: self.state.current_run)
        self.export_box.finished.connect(self.banner.show_message)
        layout.addWidget(self.export_box)

    def _review(self, images: QListWidget) -> QtImageListReview:
        """Label corrections for the selected image, suggesting the class the model predicted."""
        # Corrections are for the project's own images: none are offered on new images from elsewhere.
        review = QtImageListReview(self.state, images, lambda: self.evaluation and self.evaluation.split != NEW
                                   and self.evaluation.data_root)
        review.failed.connect(lambda message: self.banner.show_message(message, "error"))
        return review

    # ------------------------------------------------------------------------------------ evaluating

    @property
    def split(self) -> str:
        return self.split_combo.currentData()

    def evaluate(self, force: bool = False) -> None:
        """Evaluate the current run on the chosen split (from the cache unless `force`)."""
        run = self.state.current_run
        if not run:
            self.summary.setText("There is no trained model yet: train one on the Train page.")
            return
        if not Path(run).is_dir():
            self._show(None)
            self.banner.show_message(f"{Path(run).name} is a checkpoint file: it does not say which images it was "
                                     "validated on, so only a run of this project can be evaluated. It can still "
                                     "be exported below.", "info")
            self.evaluated.emit()
            return
        self._fall_back_from_test(run)
        if self.split != NEW:
            self._last_split = self.split  # where a cancelled choice of new images goes back to
        key = self._key(run, self._what())
        if key in self._cache and not force:
            self._show(self._cache[key])
            self.evaluated.emit()
            return
        self._serial += 1
        self.banner.clear()
        self.again_button.setEnabled(False)
        if self.split == NEW:
            self.summary.setText(f"Evaluating {Path(run).name} on the new images in {self._new_folder}…")
            self._runner.submit(evaluate_folder_and_write, self._serial, run, self._new_folder)
        else:
            self.summary.setText(f"Evaluating {Path(run).name} on its {self.split_combo.currentText().lower()}…")
            self._runner.submit(evaluate_and_write, self._serial, run, self.split)

    def _what(self, ev: Evaluation | None = None) -> str:
        """The split, or for new images the folder they came from: what a cached evaluation is of."""
        split = ev.split if ev is not None else self.split
        folder = ev.data_root if ev is not None else self._new_folder
        return f"{NEW}:{Path(folder).resolve()}" if split == NEW else split

    def choose_new_folder(self) -> str:
        """The folder of new labelled images to test on ("" when the user cancels)."""
        return QFileDialog.getExistingDirectory(self, "Choose a folder of new images, one sub-folder per class",
                                                self._new_folder or str(Path.home()))

    def _fall_back_from_test(self, run: str) -> None:
        """A run without test images opens on validation, and says why, rather than on an error."""
        self._no_test = False
        if self.split != "test" or has_split(run, "test"):
            return
        self._no_test = True
        self.split_combo.blockSignals(True)
        self.split_combo.setCurrentIndex(self.split_combo.findData("val"))
        self.split_combo.blockSignals(False)

    @staticmethod
    def _key(run: str, split: str) -> tuple[str, str, int]:
        """A run trained further has a newer checkpoint, and so a new key: its old figures are not reused."""
        checkpoint = run_checkpoint(run)
        return run, split, checkpoint.stat().st_mtime_ns if checkpoint is not None else 0

    @Slot(object)
    def _on_evaluated(self, value: object) -> None:
        serial, evaluation, error = value  # type: ignore[misc]
        if serial != self._serial:
            return
        self.again_button.setEnabled(True)
        if evaluation is None:
            self._show(None)
            self.summary.setText("No evaluation")
            self.banner.show_message(error, "error")
        else:
            self._cache[self._key(evaluation.run_dir, self._what(evaluation))] = evaluation
            self._show(evaluation)
        self.evaluated.emit()

    def _show(self, ev: Evaluation | None) -> None:
        self.evaluation = ev
        self.wrong_list.clear()
        self.cell_list.clear()
        self.cell_label.setText("Click a cell of the confusion matrix.")
        self.tabs.setTabText(CELL_TAB, "Images in a cell")
        self.tabs.setCurrentIndex(WRONG_TAB)
        if ev is None:
            self.matrix.set_matrix(np.zeros((0, 0)), [])
            self.per_class.setRowCount(0)
            self.diagnostics.clear()
            self.report_label.setText("")
            return
        m = ev.metrics
        what = f"New images in {Path(ev.data_root).name}" if ev.split == NEW else self.split_combo.currentText()
        self.summary.setText(f"{what}: {m.total} images · accuracy {100 * m.accuracy:.1f}% "
                             f"· balanced score {100 * m.macro_f1:.1f}% · {len(ev.classes)} classes")
        self.summary.setToolTip("Accuracy: the share of images it gets right. Balanced score (the average F1 over "
                                "classes): every class counts the same, however many images it has, so a class it "
                                "fails on pulls this down even when that class is small.")
        if ev.split == "test":
            self.banner.show_message(TRUST_NOTE, "info")
        elif ev.split == NEW:
            self.banner.show_message(NEW_NOTE, "info")
        elif ev.split == "val" and getattr(self, "_no_test", False):
            self.banner.show_message(NO_TEST_NOTE, "info")
        picture = picture_names(ev.split)[0]
        self.report_label.setText(f"Written for reading later: {Path(ev.run_dir) / 'report.md'} and {picture}")
        self.matrix.set_matrix(ev.confusion, ev.classes)
        self.per_class.setRowCount(len(m.per_class))
        for i, row in enumerate(m.per_class):
            cells = (row.name, f"{100 * row.precision:.1f}%", f"{100 * row.recall:.1f}%", f"{row.f1:.3f}",
                     str(row.support))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.per_class.setItem(i, col, item)
        self.diagnostics.setHtml(diagnostics_html(ev))
        for w in ev.most_wrong:
            self._add_image(self.wrong_list, ev, w.path, w.true, w.predicted, w.p_predicted)
        if not ev.most_wrong:
            self.wrong_list.addItem("No mistakes on these images.")
        self._load_thumbnails("wrong", self.wrong_list)
        self.reviews[0].refresh()

    def _add_image(self, target: QListWidget, ev: Evaluation, path: str, true: int, predicted: int,
                   p: float) -> None:
        name = Path(path).name
        text = (f"{name}\n{ev.classes[true]}" if true == predicted else
                f"{name}\n{ev.classes[true]} → {ev.classes[predicted]}") + f" {100 * p:.0f}%"
        item = QListWidgetItem(self._blank, text)  # the thumbnail replaces the blank when it is loaded
        full = str(ev.abspath(path))
        item.setData(PATH_ROLE, full)
        QtImageListReview.mark(item, path, ev.classes[predicted])
        item.setToolTip(f"{full}\ntrue class: {ev.classes[true]}\npredicted: {ev.classes[predicted]} "
                        f"({100 * p:.1f}%)\nClick to inspect it")
        target.addItem(item)

    def _load_thumbnails(self, which: str, target: QListWidget) -> None:
        paths = [target.item(i).data(PATH_ROLE) for i in range(target.count()) if target.item(i).data(PATH_ROLE)]
        if paths:
            self._thumbs[which].submit(load_thumbnails, self._serial, paths)

    def _on_thumbnails(self, which: str, value: object) -> None:
        serial, thumbs = value  # type: ignore[misc]
        target = self.wrong_list if which == "wrong" else self.cell_list
        for i in range(target.count()):
            item = target.item(i)
            pixels = thumbs.get(item.data(PATH_ROLE))
            if pixels is not None:
                item.setIcon(QIcon(array_to_pixmap(pixels)))

    # ------------------------------------------------------------------------------------ user actions

    @Slot(int, int)
    def _on_cell(self, true: int, predicted: int) -> None:
        ev = self.evaluation
        if ev is None:
            return
        images: list[EvaluatedImage] = ev.images_in_cell(true, predicted)
        self.cell_list.clear()
        what = "recognised correctly" if true == predicted else f"predicted as {ev.classes[predicted]}"
        more = f" (the {MAX_CELL_IMAGES} surest shown)" if len(images) > MAX_CELL_IMAGES else ", surest first"
        self.cell_label.setText(f"<b>{len(images)}</b> {ev.classes[true]} image(s) {what}{more}. "
                                "Click one to inspect it.")
        for im in images[:MAX_CELL_IMAGES]:
            self._add_image(self.cell_list, ev, im.path, im.true, im.predicted, im.probabilities[im.predicted])
        self.tabs.setCurrentIndex(CELL_TAB)
        self.tabs.setTabText(CELL_TAB, f"{ev.classes[true]} → {ev.classes[predicted]} ({len(images)})")
        self._load_thumbnails("cell", self.cell_list)
        self.reviews[1].refresh()

    @Slot(QListWidgetItem)
    def _on_image_clicked(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        if path and self.evaluation is not None:
            self.state.request_inspect(self.evaluation.run_dir, path)

    @Slot(str)
    def _on_run_changed(self, _run: str) -> None:
        if self.isVisible():
            self.evaluate()

    @Slot(int)
    def _on_split(self, _index: int) -> None:
        if self.split == NEW:
            folder = self.choose_new_folder()
            if not folder:  # cancelled: back to what was shown
                self.split_combo.blockSignals(True)
                self.split_combo.setCurrentIndex(self.split_combo.findData(self._last_split))
                self.split_combo.blockSignals(False)
                return
            self._new_folder = folder
        if self.isVisible():
            self.evaluate()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        ev = self.evaluation
        if ev is None or (ev.run_dir, self._what(ev)) != (self.state.current_run, self._what()):
            self.evaluate()

    def shutdown(self) -> None:
        """Wait for the evaluation, thumbnails and export: no thread outlives the window."""
        for runner in (self._runner, *self._thumbs.values()):
            runner.shutdown()
        self.export_box.shutdown()
