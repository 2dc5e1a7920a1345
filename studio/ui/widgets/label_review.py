"""Correcting labels from any list of images: the same keys and menu on the Audit and Evaluate pages.

A reviewer going through a hundred images should not learn two sets of keys, so every
view that lists images of the data folder attaches one `QtLabelReview` to its list: R gives
the image the class the studio suggests, X leaves it out of training, U restores it, N moves
on, and a right-click offers every class. Edits go to the project's label overlay (never to
the folder), and the shared state is told, so the Data page counts follow at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QMenu

from studio.core import labels
from studio.core.dataset import DatasetError, ScanReport, scan
from studio.ui.state import QtStudioState

# An image list's items carry (path in the data folder, suggested class, caption) in this role.
REVIEW_ROLE = Qt.ItemDataRole.UserRole + 1
KEYS_HINT = "Keys: R use the suggested class · X leave out of training · U undo · N next · right-click: any class"


@dataclass(frozen=True)
class ReviewItem:
    """The image under review: its data folder, its path in that folder, and the class suggested for it."""

    root: str
    file: str
    suggested: str


def correction_text(fix: labels.Correction | None) -> str:
    """How a standing correction reads next to the image ("" when there is none)."""
    if fix is None:
        return ""
    return "left out" if fix.excluded else f"now {fix.new_class}"


class QtLabelReview(QObject):
    """Keyboard and context-menu corrections for the current image of one item view.

    `current()` names the image under review (or None); `advance()` moves to the next one.
    `edited(file, action)` follows every stored edit; `failed(message)` explains a refused one.
    """

    edited = Signal(str, str)
    failed = Signal(str)

    def __init__(self, state: QtStudioState, view: QAbstractItemView, current: Callable[[], ReviewItem | None],
                 advance: Callable[[], None]) -> None:
        super().__init__(view)
        self.state, self.view, self.current, self.advance = state, view, current, advance
        self._scans: dict[str, ScanReport] = {}
        for key, action in (("R", lambda: self.apply("relabel")), ("X", lambda: self.apply("exclude")),
                            ("U", lambda: self.apply("restore")), ("N", advance)):
            shortcut = QShortcut(QKeySequence(key), view)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(action)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._menu)

    def report_for(self, root: str) -> ScanReport | None:
        """The scan of `root` as the folder is: the window's own when it is that folder, else read once."""
        raw = self.state.raw_report
        if raw is not None and Path(raw.root).resolve() == Path(root).resolve():
            return raw
        if root not in self._scans:
            try:
                self._scans[root] = scan(root, check_pixels=False)
            except DatasetError as exc:
                self.failed.emit(str(exc))
                return None
        return self._scans[root]

    def corrections(self, root: str) -> dict[str, labels.Correction]:
        report = self.report_for(root)
        return {} if report is None else labels.corrections(self.state.project, report)

    def apply(self, action: str, new_class: str = "") -> bool:
        """Store `action` for the current image (relabel: to `new_class`, or the suggested class)."""
        item = self.current()
        if item is None:
            return False
        report = self.report_for(item.root)
        if report is None:
            return False
        if action == "restore" and item.file not in labels.corrections(self.state.project, report):
            return False  # nothing to undo: no edit, and the overlay version stays
        target = new_class or item.suggested
        try:
            labels.record_edit(self.state.project, report, item.file, action, target if action == "relabel" else "")
        except labels.LabelError as exc:
            self.failed.emit(str(exc))
            return False
        if report is self.state.raw_report:
            self.state.set_report(report)  # the pages re-read the scan through the overlay
        self.edited.emit(item.file, action)
        if action != "restore":
            self.advance()
        return True

    def build_menu(self) -> QMenu | None:
        """The right-click menu for the current image: every class, leave out, undo."""
        item = self.current()
        report = self.report_for(item.root) if item else None
        if item is None or report is None:
            return None
        menu = QMenu(self.view)
        relabel = menu.addMenu("Give it the class")
        for name in report.classes:
            relabel.addAction(name, lambda n=name: self.apply("relabel", n))
        menu.addAction("Leave out of training (X)", lambda: self.apply("exclude"))
        menu.addAction("Undo its correction (U)", lambda: self.apply("restore"))
        return menu

    def _menu(self, pos: QPoint) -> None:
        menu = self.build_menu()
        if menu is not None:
            menu.popup(self.view.viewport().mapToGlobal(pos))


class QtImageListReview(QtLabelReview):
    """The corrections of one image list (e.g. Evaluate's galleries): its items carry REVIEW_ROLE data
    (see `mark`), `root()` names their data folder, and each caption shows the image's standing correction."""

    def __init__(self, state: QtStudioState, images: QListWidget, root: Callable[[], str | None]) -> None:
        self.images, self.root = images, root
        super().__init__(state, images, self._current_item, self._next_item)
        self.edited.connect(lambda *_: self.refresh())

    @staticmethod
    def mark(item: QListWidgetItem, file: str, suggested: str) -> None:
        """Make `item` reviewable: `file` relative to the data folder, `suggested` the class R gives it."""
        item.setData(REVIEW_ROLE, (file, suggested, item.text()))

    def _current_item(self) -> ReviewItem | None:
        item, root = self.images.currentItem(), self.root()
        if item is None or not root or not item.data(REVIEW_ROLE):
            return None
        file, suggested, _ = item.data(REVIEW_ROLE)
        return ReviewItem(root, file, suggested)

    def _next_item(self) -> None:
        if self.images.currentRow() + 1 < self.images.count():
            self.images.setCurrentRow(self.images.currentRow() + 1)

    def refresh(self) -> None:
        root = self.root()
        if not root or not self.images.count():
            return
        fixes = self.corrections(root)
        for i in range(self.images.count()):
            item = self.images.item(i)
            if item.data(REVIEW_ROLE):
                file, _, caption = item.data(REVIEW_ROLE)
                note = correction_text(fixes.get(file))
                item.setText(f"{caption}\n{note}" if note else caption)
