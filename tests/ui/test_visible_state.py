"""State a user can see on the Train page: paused, resumed, the runs table, why Start is off, each stage."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch
from PySide6.QtCore import Qt

from studio.core.models import build_model
from tests.conftest import make_colour_folder
from tests.ui.conftest import RUN_TIMEOUT_MS, choose_tiny_model, load_folder, set_recipe, start_run, wait_idle


def _log(pane) -> str:
    return pane.log.toPlainText()


def test_pause_shows_paused_and_resume_is_logged(window, qtbot, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    set_recipe(window, epochs=60)
    pane = window.panes[3]
    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.batch, timeout=RUN_TIMEOUT_MS):
        pass
    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    qtbot.wait(200)  # the batch that was running when Pause was pressed reports in the meantime
    assert pane.progress.format() == "Paused"
    assert "Paused" in pane.eta_label.text() and "images/s" not in pane.eta_label.text()
    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    assert "Resumed." in _log(pane) and pane.progress.format() != "Paused"
    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(window, qtbot)


def test_the_runs_table_follows_the_run_epoch_by_epoch(window, qtbot, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    set_recipe(window, epochs=60)
    pane = window.panes[3]
    worker = start_run(window, qtbot)
    for _ in range(2):
        with qtbot.waitSignal(worker.epoch, timeout=RUN_TIMEOUT_MS):
            pass
    qtbot.waitUntil(lambda: len(pane.live) >= 2, timeout=10_000)
    epochs, best = int(pane.run_list.item(0, 4).text()), pane.run_list.item(0, 5).text()
    assert epochs >= 2 and re.fullmatch(r"\d+\.\d% (val|test)", best), best
    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(window, qtbot)


def test_a_disabled_start_says_why(window, qtbot, tmp_path: Path) -> None:
    pane = window.panes[3]
    window.show_pane(3)
    assert not pane.start_button.isEnabled()
    assert "Data page" in pane.start_reason.text() and pane.start_reason.isVisible()
    data = make_colour_folder(tmp_path / "data")
    for extra in sorted(p for p in data.iterdir() if p.is_dir())[1:]:
        shutil.rmtree(extra)
    load_folder(window, qtbot, data)
    assert not pane.start_button.isEnabled()
    assert "needs at least two classes with images" in pane.start_reason.text()
    assert "1 class with usable images" in pane.start_reason.text()
    assert "Press Start" not in pane.eta_label.text()


def test_stage_two_is_announced_with_what_learns_now(window, qtbot, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    # Starting weights from a file make the custom CNN "pretrained", so it trains in two stages.
    weights = tmp_path / "start.pt"
    model = build_model(window.state.config.model, 3, load_weights=False)
    torch.save(model.state_dict(), weights)
    total = sum(p.numel() for p in model.parameters())
    window.state.update("model", pretrained=str(weights), mode="two-stage")
    window.state.update("train", head_epochs=1, backbone_lr_scale=0.1)
    set_recipe(window, epochs=2)
    pane = window.panes[3]
    start_run(window, qtbot)
    wait_idle(window, qtbot)
    log = _log(pane)
    assert "Stage 1 of 2: only the new last layer learns" in log
    assert f"Stage 2 of 2: all {total:,} parameters learn now, the pretrained part at 1/10 of the rate." in log
    assert log.index("Stage 1 of 2") < log.index("Epoch 1/2") < log.index("Stage 2 of 2") < log.index("Epoch 2/2")
    assert "parameters learn;" not in log.split("Stage 2 of 2")[1]  # no stale first-stage count after it
