"""Label corrections outside the Audit page: the Evaluate gallery, and stopping a check halfway."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from PySide6.QtCore import Qt

from studio.core import features
from studio.core.features import FOLDER
from studio.ui.panes.audit_pane import AuditPane
from studio.ui.panes.evaluate_pane import EvaluatePane
from tests.conftest import make_colour_folder, snapshot
from tests.ui.conftest import RUN_TIMEOUT_MS, load_folder
from tests.ui.view_helpers import train_tiny_run


def _counts(window) -> dict[str, int]:
    table = window.panes[0].class_table
    return {table.item(i, 0).text(): int(table.item(i, 1).text()) for i in range(table.rowCount())}


def test_a_relabel_in_the_evaluate_gallery_shows_in_the_data_counts(qtbot, tmp_path: Path) -> None:
    from studio.ui.main_window import StudioWindow
    from studio.ui.state import QtStudioState

    trained = train_tiny_run(tmp_path)
    before = snapshot(trained.data)
    state = QtStudioState(project_dir=trained.project)
    window = StudioWindow(state)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    try:
        load_folder(window, qtbot, trained.data)
        start = _counts(window)
        state.set_current_run(trained.run)
        pane = next(p for p in window.panes if isinstance(p, EvaluatePane))
        with qtbot.waitSignal(pane.evaluated, timeout=RUN_TIMEOUT_MS):
            window.show_pane(window.panes.index(pane))
        ev = pane.evaluation
        true = next(c for c in range(len(ev.classes)) if ev.confusion[c].sum())
        predicted = int(ev.confusion[true].argmax())
        qtbot.mouseClick(pane.matrix, Qt.MouseButton.LeftButton, pos=pane.matrix.cell_rect(true, predicted).center())
        given = ev.classes[true]
        other = next(c for c in ev.classes if c != given)
        pane.cell_list.setCurrentRow(0)
        pane.cell_list.setFocus()
        qtbot.keyClick(pane.cell_list, Qt.Key.Key_X)  # leave it out
        assert _counts(window)[given] == start[given] - 1
        assert pane.cell_list.item(0).text().endswith("left out")
        pane.cell_list.setCurrentRow(0)
        qtbot.keyClick(pane.cell_list, Qt.Key.Key_U)  # undo
        assert _counts(window) == start
        menu = pane.reviews[1].build_menu()  # the right-click menu: any class
        relabel = next(a for a in menu.actions() if a.menu() is not None).menu()
        next(a for a in relabel.actions() if a.text() == other).trigger()
        assert _counts(window)[given] == start[given] - 1
        assert _counts(window)[other] == start[other] + 1
        assert pane.cell_list.item(0).text().endswith(f"now {other}")
        assert snapshot(trained.data) == before
    finally:
        pane.shutdown()
        window.close()


def test_stopping_a_check_halfway_leaves_nothing_half_written(window, qtbot, tmp_path: Path, monkeypatch,
                                                             request) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=40, size=32)
    load_folder(window, qtbot, data)
    # The check waits after its first batch, at its stop check, until Stop has been clicked: at 64 px the
    # whole check can otherwise finish before the click lands.
    released, first_batch = threading.Event(), threading.Event()
    request.addfinalizer(released.set)
    embed = features.FeatureStore.embed_files

    def held_embed(self, paths, *, progress=None, should_stop=None, **options):
        reported = threading.Event()

        def report(done: int, total: int) -> None:
            if progress:
                progress(done, total)
            if done:
                reported.set()
                first_batch.set()

        def stop_check() -> bool:
            if reported.is_set():
                released.wait(timeout=RUN_TIMEOUT_MS / 1000)
            return bool(should_stop and should_stop())

        return embed(self, paths, progress=report, should_stop=stop_check, **options)

    monkeypatch.setattr(features.FeatureStore, "embed_files", held_embed)
    pane = next(p for p in window.panes if isinstance(p, AuditPane))
    window.show_pane(window.panes.index(pane))
    qtbot.mouseClick(pane.check_button, Qt.MouseButton.LeftButton)
    assert pane.stop_button.isVisible() and not pane.check_button.isEnabled()
    # Its progress bar may not show that batch yet: the worker sends progress at most every so often.
    qtbot.waitUntil(first_batch.is_set, timeout=RUN_TIMEOUT_MS)
    qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
    released.set()
    qtbot.waitUntil(lambda: pane.check_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
    assert pane.result is None and pane.suspects.rowCount() == 0
    assert not pane.stop_button.isVisible() and not pane.progress.isVisible()
    assert pane.status.text().startswith("Stopped")
    with sqlite3.connect(window.state.project.folder / FOLDER / "features.sqlite") as db:
        feats = {h for (h,) in db.execute("SELECT hash FROM features")}
        thumbs = {h for (h,) in db.execute("SELECT hash FROM thumbs")}
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert 0 < len(feats) < 120 and feats == thumbs  # whole batches only: every feature has its thumbnail
    qtbot.mouseClick(pane.check_button, Qt.MouseButton.LeftButton)  # and the next check finishes from there
    qtbot.waitUntil(lambda: pane.result is not None and pane.check_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
    assert len(pane.result.files) == 120
