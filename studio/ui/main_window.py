"""The main window: it assembles the panes around one shared state and owns only window matters.

Navigation, menus, the status bar (device and run state), drag and drop of a folder,
remembered settings and a clean close during a run. Adding a pane (Evaluate, Predict,
Inspect) is one line in `PANES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.devices import describe_device, pick_device
from studio.ui.help_menu import HelpMenu
from studio.ui.panes.audit_pane import AuditPane
from studio.ui.panes.augment_pane import AugmentPane
from studio.ui.panes.data_pane import DataPane
from studio.ui.panes.evaluate_pane import EvaluatePane
from studio.ui.panes.inspect_pane import InspectPane
from studio.ui.panes.model_pane import ModelPane
from studio.ui.panes.predict_pane import PredictPane
from studio.ui.panes.train_pane import TrainPane
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import QtBanner

PaneFactory = Callable[[QtStudioState], QWidget]

# The flow, in order. A later pane is one more line: ("Evaluate", EvaluatePane).
PANES: list[tuple[str, PaneFactory]] = [
    ("Data", DataPane),
    ("Model", ModelPane),
    ("Augment", AugmentPane),
    ("Train", TrainPane),
    ("Evaluate", EvaluatePane),
    ("Predict", PredictPane),
    ("Inspect", InspectPane),
    ("Audit", AuditPane),
]

DEFAULT_SIZE = (1280, 800)


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""  # pragma: no cover


def _local_folders(urls: Sequence) -> list[str]:
    return [url.toLocalFile() for url in urls if url.isLocalFile() and Path(url.toLocalFile()).is_dir()]


class StudioWindow(QMainWindow):
    """Navigation list on the left, one pane at a time on the right, status bar below."""

    def __init__(self, state: QtStudioState, settings: QSettings | None = None,
                 panes: Sequence[tuple[str, PaneFactory]] = PANES) -> None:
        super().__init__()
        self.state = state
        self.settings = settings or QSettings()
        self._close_when_idle = False
        self.setWindowTitle("Classification Studio")
        self.setAcceptDrops(True)
        self.choose_folder_dialog: Callable[[], str] = self._ask_folder

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(170)
        self.stack = QStackedWidget()
        self.panes: list[QWidget] = []
        for i, (title, factory) in enumerate(panes, start=1):
            pane = factory(state)
            self.panes.append(pane)
            self.stack.addWidget(pane)
            self.nav.addItem(f"{i}   {title}")
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        right = QVBoxLayout()
        right.setContentsMargins(8, 8, 8, 4)
        self.banner = QtBanner()
        right.addWidget(self.banner)
        right.addWidget(self.stack, 1)
        row.addWidget(self.nav)
        row.addLayout(right, 1)
        self.setCentralWidget(central)

        self._build_menus([title for title, _ in panes])
        self.run_label = QLabel()
        self.data_label = QLabel()
        self.device_label = QLabel(f"Device: {describe_device(pick_device('auto'))}")
        self.device_label.setToolTip("Where training runs: the GPU when there is one, else the CPU")
        self.statusBar().addWidget(self.run_label)
        self.statusBar().addWidget(self.data_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)

        state.run_state_changed.connect(self._on_run_state)
        state.report_changed.connect(self._on_report_changed)
        state.recent_changed.connect(self._on_recent_changed)
        state.folder_changed.connect(self._on_folder_changed)
        titles = [title for title, _ in panes]
        if "Inspect" in titles:  # "inspect this image" from Predict or Evaluate arrives through the state
            state.inspect_requested.connect(lambda _run, _image: self.show_pane(titles.index("Inspect")))
        if "Audit" in titles:  # "check labels" from Data or Evaluate
            state.audit_requested.connect(lambda: self.show_pane(titles.index("Audit")))
        self._restore_settings()
        state.watch_runs()
        self._on_run_state(state.run_state)
        self._on_report_changed()

    # ------------------------------------------------------------------------------------ menus

    def _build_menus(self, titles: list[str]) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = file_menu.addAction("&Open image folder…")
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._on_open_folder)
        file_menu.addAction("Open the &sample data set").triggered.connect(self._on_open_sample)
        self.recent_menu = file_menu.addMenu("&Recent folders")
        file_menu.addSeparator()
        self.cache_action = file_menu.addAction("Clear the image cache")
        self.cache_action.triggered.connect(self._on_clear_cache)
        file_menu.aboutToShow.connect(self._update_cache_action)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit")
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        go_menu = self.menuBar().addMenu("&Go")
        for i, title in enumerate(titles):
            action = QAction(f"&{i + 1}  {title}", self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, row=i: self.show_pane(row))
            go_menu.addAction(action)
        self.help_menu = HelpMenu(self, lambda: self.state.project_dir, self._device_text)

    def _device_text(self) -> str:
        from studio.core.devices import describe_device, pick_device

        try:
            return describe_device(pick_device(self.state.config.train.device))
        except Exception as exc:  # About must open even when the device cannot be chosen
            return f"unavailable ({exc})"

    @Slot()
    def _update_cache_action(self) -> None:
        """The menu says what the cache costs before the user decides to clear it."""
        from studio.core.cache import cache_usage, cap_bytes
        from studio.core.userdirs import cache_folder

        used = cache_usage(cache_folder()) if cache_folder().is_dir() else 0
        self.cache_action.setText(f"Clear the image cache ({_size(used)} of at most {_size(cap_bytes())})")
        self.cache_action.setToolTip(f"Decoded pictures kept in {cache_folder()} so training starts faster; "
                                     "clearing is safe, they are decoded again when needed")

    @Slot()
    def _on_clear_cache(self) -> None:
        from studio.core.cache import clear_caches
        from studio.core.userdirs import cache_folder

        freed = clear_caches(cache_folder()) if cache_folder().is_dir() else 0
        self.statusBar().showMessage(f"Image cache cleared: {_size(freed)} freed.", 8000)

    def show_pane(self, index: int) -> None:
        self.nav.setCurrentRow(index)

    def show_error(self, message: str) -> None:
        """For errors that belong to no pane (the last line of defence of `run_app`)."""
        self.banner.show_message(message, "error")

    def _ask_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Choose the folder of labelled images",
                                                self.state.folder or str(Path.home()))

    @Slot()
    def _on_open_folder(self) -> None:
        folder = self.choose_folder_dialog()
        if folder:
            self.state.set_folder(folder)

    @Slot()
    def _on_open_sample(self) -> None:
        self.show_pane(0)
        self.state.request_sample()

    # ------------------------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls() and _local_folders(event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        folders = _local_folders(event.mimeData().urls()) if event.mimeData().hasUrls() else []
        if not folders:
            self.statusBar().showMessage("Drop a folder (with one sub-folder per class), not single files.", 8000)
            event.ignore()
            return
        event.acceptProposedAction()
        self.show_pane(0)
        self.state.set_folder(folders[0])

    # ------------------------------------------------------------------------------------ state → window

    @Slot(str)
    def _on_run_state(self, _state: str) -> None:
        self.run_label.setText(f"Run: {self.state.run_state_text()}")
        if self._close_when_idle and not self.state.running:
            QTimer.singleShot(0, self.close)

    @Slot()
    def _on_report_changed(self) -> None:
        report, folder = self.state.report, self.state.folder
        name = Path(folder).name if folder else ""
        self.setWindowTitle(f"{name} — Classification Studio" if name else "Classification Studio")
        if report is not None:
            self.data_label.setText(f"  {name}: {len(report.classes)} classes, {len(report.good)} images")
        else:
            self.data_label.setText(f"  {name}: checking…" if folder else "  No data folder")

    @Slot(str)
    def _on_folder_changed(self, _folder: str) -> None:
        self.banner.clear()

    @Slot()
    def _on_recent_changed(self) -> None:
        self.recent_menu.clear()
        for folder in self.state.recent_folders:
            self.recent_menu.addAction(folder).triggered.connect(lambda _=False, f=folder: self.state.set_folder(f))
        self.recent_menu.setEnabled(bool(self.state.recent_folders))
        self.settings.setValue("recent_folders", list(self.state.recent_folders))

    # ------------------------------------------------------------------------------------ settings and closing

    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        recent = self.settings.value("recent_folders") or []
        recent = [recent] if isinstance(recent, str) else list(recent)
        self.state.recent_folders = [f for f in recent if isinstance(f, str) and f][:8]
        self.state.recent_changed.emit()
        self._restore_recipe()
        try:
            page = int(self.settings.value("page", 0))
        except (TypeError, ValueError):
            page = 0
        self.show_pane(page if 0 <= page < len(self.panes) else 0)

    def _restore_recipe(self) -> None:
        """The last recipe and data folder, so a restart continues where the user left off."""
        import json

        from studio.core.config import ConfigError, RunConfig

        text = self.settings.value("recipe")
        if isinstance(text, str) and text:
            try:
                saved = RunConfig.from_dict(json.loads(text))
            except (ConfigError, ValueError, TypeError, KeyError):
                saved = None  # from another version or hand-edited: start from the defaults
            if saved is not None:
                saved.data.root = self.state.folder
                for section in ("data", "augment", "model", "train", "recipe"):  # recipe last: its own pins
                    self.state.replace(section, getattr(saved, section))
        folder = self.settings.value("last_folder")
        if isinstance(folder, str) and folder and not self.state.folder and Path(folder).is_dir():
            self.state.set_folder(folder)

    def _save_settings(self) -> None:
        import json

        self.settings.setValue("recipe", json.dumps(self.state.config.to_dict()))
        self.settings.setValue("last_folder", self.state.folder)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("recent_folders", list(self.state.recent_folders))
        self.settings.setValue("page", self.nav.currentRow())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.state.running:
            # Stop first, close when the run has ended: its last checkpoint is then safely on disk.
            if not self._close_when_idle:
                self._close_when_idle = True
                self.state.request_stop()
                self.statusBar().showMessage("Stopping the run before closing; its last checkpoint is kept…")
            event.ignore()
            return
        for pane in self.panes:
            shutdown = getattr(pane, "shutdown", None)
            if shutdown is not None:
                shutdown()
        self._save_settings()
        event.accept()
