"""The Audit page: a review queue driven from the keyboard, whose corrections show on the Data page."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from studio.core.audit import AuditResult
from studio.core.fonts import available_fallbacks
from studio.ui.panes.audit_pane import AuditPane, QtDatasetMap
from tests.conftest import make_colour_folder, snapshot
from tests.ui.conftest import RUN_TIMEOUT_MS, load_folder


def _counts(window) -> dict[str, int]:
    table = window.panes[0].class_table
    return {table.item(i, 0).text(): int(table.item(i, 1).text()) for i in range(table.rowCount())}


def test_review_queue_with_shortcuts_updates_data_counts(window, qtbot, tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=6, size=32)
    shutil.move(data / "red" / "red_02.png", data / "blue" / "red_02.png")
    before = snapshot(data)
    load_folder(window, qtbot, data)
    assert _counts(window) == {"blue": 7, "green": 6, "red": 5}
    qtbot.mouseClick(window.panes[0].audit_button, Qt.MouseButton.LeftButton)
    pane = next(p for p in window.panes if isinstance(p, AuditPane))
    assert window.stack.currentWidget() is pane
    qtbot.mouseClick(pane.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.result is not None and pane.check_button.isEnabled(), timeout=RUN_TIMEOUT_MS)
    first = pane.result.suspected_labels[0]
    assert (first.file, first.suggested) == ("blue/red_02.png", "red")
    pane.suspects.setFocus()
    qtbot.keyClick(pane.suspects, Qt.Key.Key_R)
    assert pane.suspects.item(0, 4).text() == "now red"
    assert _counts(window) == {"blue": 6, "green": 6, "red": 6}
    pane.suspects.selectRow(0)
    qtbot.keyClick(pane.suspects, Qt.Key.Key_X)
    assert pane.suspects.item(0, 4).text() == "left out"
    assert _counts(window)["blue"] == 6 and _counts(window)["red"] == 5
    pane.suspects.selectRow(0)
    qtbot.keyClick(pane.suspects, Qt.Key.Key_U)
    assert pane.suspects.item(0, 4).text() == ""
    assert _counts(window) == {"blue": 7, "green": 6, "red": 5}
    assert snapshot(data) == before
    pane.map.grab().save(str(tmp_path / "map.png"))


def test_the_map_legend_draws_class_names_in_any_script(qtbot) -> None:
    if not available_fallbacks():
        pytest.skip("no font for Chinese characters on this computer")
    matplotlib.rcParams["font.family"] = ["sans-serif"]  # as a fresh process starts
    result = AuditResult("/nowhere", ["a.png", "b.png", "c.png"], ["組織", "cat", "cat"], [], [], [],
                         np.array([[0, 0], [1, 1], [2, 0]], dtype=np.float32))
    view = QtDatasetMap()
    qtbot.addWidget(view)
    view.show_result(result)
    assert any(name in available_fallbacks() for name in matplotlib.rcParams["font.family"])
    assert view.file_at(QPoint(0, 0)) is None
    x, y = view.points[1]
    assert view.file_at(QPoint(int(x), int(y))) == "b.png"
