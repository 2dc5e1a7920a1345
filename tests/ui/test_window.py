"""The window as a newcomer meets it: the flow, the sample data, dropping a folder, remembered settings."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QLabel

from studio.core.sample import SAMPLE_CLASSES, make_sample_dataset
from studio.ui.main_window import PANES, StudioWindow
from studio.ui.panes import data_pane
from studio.ui.state import QtStudioState
from tests.conftest import make_colour_folder
from tests.ui.conftest import RUN_TIMEOUT_MS, load_folder


def test_studio_with_a_folder_opens_the_window_on_it(tmp_path: Path) -> None:
    """`studio DIR` (the CLI without a command) runs the window until it is closed, with DIR loaded."""
    from studio.cli import main

    folder = make_colour_folder(tmp_path / "data")
    seen: dict[str, object] = {}

    def look_then_close() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, StudioWindow) and w.isVisible()]
        if not windows or windows[0].state.report is None:
            QTimer.singleShot(20, look_then_close)
            return
        seen["classes"] = windows[0].state.report.classes
        seen["title"] = windows[0].windowTitle()
        windows[0].close()

    QTimer.singleShot(0, look_then_close)
    QTimer.singleShot(RUN_TIMEOUT_MS, QApplication.quit)  # never hang the test run
    assert main([str(folder)]) == 0
    assert seen == {"classes": ["blue", "green", "red"], "title": "data — Classification Studio"}


def test_flow_status_bar_and_one_line_pane_registry(window, qtbot) -> None:
    titles = [window.nav.item(i).text() for i in range(window.nav.count())]
    assert [t.split()[-1] for t in titles][:4] == ["Data", "Model", "Augment", "Train"]  # later steps follow
    assert window.device_label.text().startswith("Device: ") and window.device_label.text() != "Device: "
    assert "Ready" in window.run_label.text()
    window.show_pane(2)
    assert window.stack.currentWidget() is window.panes[2]

    extra = StudioWindow(QtStudioState(project_dir=window.state.project_dir),
                         panes=[*PANES, ("Evaluate", lambda state: QLabel("evaluate"))])
    qtbot.addWidget(extra)
    assert extra.nav.count() == len(PANES) + 1 and extra.nav.item(len(PANES)).text().endswith("Evaluate")


def test_first_start_opens_the_sample_data_in_one_click(window, qtbot, monkeypatch) -> None:
    # The real sample set, drawn smaller so the test stays quick.
    monkeypatch.setattr(data_pane, "make_sample_dataset", partial(make_sample_dataset, per_class=8, size=32))
    pane = window.panes[0]
    assert pane.pages.currentIndex() == 0  # the welcome page
    qtbot.mouseClick(pane.welcome.sample_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.state.report is not None, timeout=RUN_TIMEOUT_MS)
    assert window.state.report.classes == sorted(SAMPLE_CLASSES)
    assert pane.pages.currentIndex() == 1
    assert pane.class_table.rowCount() == len(SAMPLE_CLASSES)
    qtbot.waitUntil(lambda: pane.thumbnails.image_count() == 4 * data_pane.THUMBS_PER_CLASS, timeout=RUN_TIMEOUT_MS)
    assert "4 classes, 32 images" in window.data_label.text()


def _drag_enter(mime: QMimeData) -> QDragEnterEvent:
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        return QDragEnterEvent(QPointF(300, 300), *args)  # PySide6 >= 6.12; the QPoint form is deprecated there
    except TypeError:
        return QDragEnterEvent(QPoint(300, 300), *args)


def test_dropping_a_folder_loads_it(window, qtbot, tmp_path: Path) -> None:
    folder = make_colour_folder(tmp_path / "dropped")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    enter = _drag_enter(mime)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    qtbot.waitUntil(lambda: window.state.report is not None, timeout=RUN_TIMEOUT_MS)
    assert window.state.folder == str(folder) and window.state.report.classes == ["blue", "green", "red"]

    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(next(folder.glob("red/*.png"))))])
    refused = _drag_enter(files)
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()


def test_data_pane_shows_counts_split_and_scan_errors(window, qtbot, tmp_path: Path) -> None:
    make_colour_folder(tmp_path / "data", per_class=4)
    make_colour_folder(tmp_path / "data", per_class=30, classes={"red": (200, 40, 40)}, seed=1)
    load_folder(window, qtbot, tmp_path / "data")
    pane = window.panes[0]
    counts = {pane.class_table.item(i, 0).text(): int(pane.class_table.item(i, 1).text())
              for i in range(pane.class_table.rowCount())}
    assert counts == {"blue": 4, "green": 4, "red": 30}
    assert pane.balance_chart.counts == counts
    text = pane.banner.text()
    assert "imbalanced" in text and "only 4 images" in text and pane.banner.level == "warning"

    pane.val_spin.setValue(30)
    pane.test_spin.setValue(10)
    assert window.state.config.data.val_fraction == 0.3 and window.state.config.data.test_fraction == 0.1
    assert pane.val_spin.maximum() == 80
    counts = re.match(r"(\d+) training, (\d+) validation and (\d+) held-out test images", pane.split_label.text())
    assert counts, pane.split_label.text()
    train, val, test = map(int, counts.groups())
    assert train + val + test == 38 and val >= 9 and test >= 3  # 30 % and 10 % of 38, class by class

    window.state.set_folder(tmp_path / "no-such-folder")
    qtbot.waitUntil(lambda: pane.banner.level == "error", timeout=RUN_TIMEOUT_MS)
    assert "folder not found" in pane.banner.text() and "Traceback" not in pane.banner.text()
    assert not window.panes[3].start_button.isEnabled()


def test_recent_folders_and_geometry_are_remembered(qtbot, tmp_path: Path) -> None:
    folder = make_colour_folder(tmp_path / "data")
    first = StudioWindow(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(first)
    first.resize(1100, 700)
    first.show()
    load_folder(first, qtbot, folder)
    first.close()
    assert QSettings().value("recent_folders") in ([str(folder)], str(folder))

    second = StudioWindow(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(second)
    second.show()
    assert second.state.recent_folders == [str(folder)]
    assert [a.text() for a in second.recent_menu.actions()] == [str(folder)]
    assert QSettings().value("geometry") and second.height() == 700
    # (The width is clamped: the offscreen test screen is only 800 px wide, less than the window's minimum.)
    second.recent_menu.actions()[0].trigger()
    qtbot.waitUntil(lambda: second.state.report is not None, timeout=RUN_TIMEOUT_MS)
    second.close()


def test_whole_flow_is_registered_and_inspect_requests_switch_pages(window, qtbot, tmp_path) -> None:
    """Evaluate, Predict and Inspect sit after Train, and a request to inspect lands on Inspect."""
    titles = [window.nav.item(i).text().split()[-1] for i in range(window.nav.count())]
    assert titles == ["Data", "Model", "Augment", "Train", "Evaluate", "Predict", "Inspect", "Audit"]
    window.show_pane(0)
    window.state.request_inspect("", str(tmp_path / "image.png"))
    assert window.stack.currentWidget() is window.panes[titles.index("Inspect")]


def test_image_cache_size_shown_and_cleared_from_the_menu(window, tmp_path: Path) -> None:
    from studio.core.cache import build_cache, cache_usage
    from studio.core.userdirs import cache_folder

    data = make_colour_folder(tmp_path / "cached", per_class=3)
    paths = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.png"))
    build_cache(data, paths, 16, memory_mb=0, spill_dir=cache_folder())
    used = cache_usage(cache_folder())
    window._update_cache_action()
    assert f"{used / 1024:.1f} KB" in window.cache_action.text()
    window.cache_action.trigger()
    assert cache_usage(cache_folder()) == 0 and "cleared" in window.statusBar().currentMessage()


def test_last_folder_and_recipe_are_remembered(qtbot, tmp_path: Path) -> None:
    folder = make_colour_folder(tmp_path / "data")
    first = StudioWindow(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(first)
    first.show()
    load_folder(first, qtbot, folder)
    first.state.update("train", epochs=7, lr=0.0123)
    first.state.update("model", width=12)
    first.state.update("augment", hflip=0.25)
    first.close()

    second = StudioWindow(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(second)
    second.show()
    cfg = second.state.config
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.width, cfg.augment.hflip) == (7, 0.0123, 12, 0.25)
    assert second.state.folder == str(folder)
    qtbot.waitUntil(lambda: second.state.report is not None, timeout=RUN_TIMEOUT_MS)


def test_runs_started_elsewhere_appear_and_a_dead_one_can_be_continued(window, qtbot, tmp_path: Path) -> None:
    """A run the CLI records in the same project shows up within seconds, without a restart."""
    import sqlite3

    from studio.core.project import Project

    pane = window.panes[3]
    assert pane.run_list.rowCount() == 0
    other = Project(window.state.project_dir)  # another program using the same project
    run_dir = other.runs_dir / "from-the-cli"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"")
    run = other.add_run("from-the-cli", run_dir, "/data", {"model": {"arch": "custom"}})
    qtbot.waitUntil(lambda: pane.run_list.rowCount() == 1, timeout=6000)
    assert pane.run_list.rows[0].status == "running"
    pane.run_list.selectRow(0)
    assert not pane.continue_button.isEnabled()
    with sqlite3.connect(other.db_path) as db:  # its program is gone (pid that cannot exist)
        db.execute("UPDATE runs SET owner_pid = 999999999 WHERE id = ?", (run,))
    qtbot.waitUntil(lambda: pane.run_list.rows[0].status == "interrupted", timeout=6000)
    assert pane.continue_button.isEnabled()


def test_every_page_fits_a_1280_pixel_wide_screen(window, qtbot, tmp_path: Path) -> None:
    """A long sentence must wrap, not push the window wider than a small laptop's screen."""
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    window.show_pane(3)
    window.panes[3].eta_label.setText("What the run does next, said at length. " * 12)
    qtbot.wait(100)  # the layouts take the new text's size into account
    widths = {window.nav.item(i).text(): pane.minimumSizeHint().width() for i, pane in enumerate(window.panes)}
    assert window.minimumSizeHint().width() <= 1280 and max(widths.values()) <= 1100, widths
