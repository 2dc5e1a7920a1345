"""Window tests: offscreen, user settings isolated, every worker thread ended before the next test."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shiboken6  # noqa: E402
from PySide6.QtCore import QSettings, Qt  # noqa: E402

from studio.ui.main_window import StudioWindow  # noqa: E402
from studio.ui.state import QtStudioState  # noqa: E402
from studio.ui.workers import QtGarbageCollector, live_workers  # noqa: E402

RUN_TIMEOUT_MS = 90_000  # a shared two-core machine can be slow; a healthy run takes a few seconds


@pytest.fixture(autouse=True, scope="package")
def _garbage_collected_on_the_ui_thread(qapp):
    """As in the app: a collection in a worker thread that frees a Qt object crashes the process."""
    collector = QtGarbageCollector()
    collector.start()
    yield
    collector.stop()


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, qapp) -> None:
    """Window geometry and recent folders go to a fresh INI file per test, never the user's."""
    qapp.setOrganizationName("Classification Studio Tests")
    qapp.setApplicationName("studio-tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))


@pytest.fixture(autouse=True)
def _no_stray_threads(qtbot):
    """A test must leave no worker running: a QThread destroyed while running aborts the process."""
    yield
    qtbot.waitUntil(lambda: live_workers() == 0, timeout=RUN_TIMEOUT_MS)
    gc.collect()  # the test's widgets, here on the UI thread


@pytest.fixture
def window(qtbot, tmp_path: Path):
    state = QtStudioState(project_dir=tmp_path / "project")
    state.config.recipe.mode = "manual"  # these tests drive the pages' own settings; tests of the recipe opt in
    win = StudioWindow(state)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win
    if not shiboken6.isValid(win):  # the test closed and deleted it itself
        return
    if state.running:
        state.request_stop()
        qtbot.waitUntil(lambda: not state.running, timeout=RUN_TIMEOUT_MS)
    win.close()


def load_folder(window: StudioWindow, qtbot, folder: Path) -> None:
    """Through the Data pane's Choose button, as a user would (the folder dialog answered)."""
    pane = window.panes[0]
    pane.choose_folder_dialog = lambda: str(folder)
    qtbot.mouseClick(pane.choose_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.state.report is not None, timeout=RUN_TIMEOUT_MS)


def choose_tiny_model(window: StudioWindow, image_size: int = 24) -> None:
    """A custom CNN small enough to train in a second, set through the Model pane's controls."""
    pane = window.panes[1]
    pane.arch_combo.setCurrentIndex(pane.arch_combo.findData("custom"))
    pane.size_spin.setValue(image_size)
    pane.blocks_spin.setValue(2)
    pane.width_spin.setValue(8)


def set_recipe(window: StudioWindow, epochs: int, batch_size: int = 8) -> None:
    pane = window.panes[3]
    pane.recipe.epochs_spin.setValue(epochs)
    pane.recipe.batch_spin.setValue(batch_size)


def start_run(window: StudioWindow, qtbot):
    """Click Start on the Train pane; returns the run's worker."""
    pane = window.panes[3]
    window.show_pane(3)
    qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
    assert pane.worker is not None, pane.banner.text()
    return pane.worker


def wait_idle(window: StudioWindow, qtbot) -> None:
    qtbot.waitUntil(lambda: not window.state.running, timeout=RUN_TIMEOUT_MS)
