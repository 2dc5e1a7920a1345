"""Training from the window: live curves, checkpoints, stop, pause, close mid-run, a hostile folder."""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import Qt

from studio.core.project import Project
from studio.ui.workers import live_workers
from tests.conftest import make_colour_folder
from tests.hostile import EXPECTED_REASONS, make_hostile_folder
from tests.ui.conftest import RUN_TIMEOUT_MS, choose_tiny_model, load_folder, set_recipe, start_run, wait_idle


def test_two_epoch_run_draws_its_curves_and_leaves_checkpoints(window, qtbot, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    set_recipe(window, epochs=2)
    pane = window.panes[3]
    assert pane.start_button.isEnabled()

    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.epoch, timeout=RUN_TIMEOUT_MS) as first:
        pass
    assert first.args[0]["epoch"] == 1 and first.args[0]["epochs"] == 2
    assert window.state.running and "Training" in window.run_label.text()
    # A second run cannot start while one runs: the button is off, and the handler refuses too.
    assert not pane.start_button.isEnabled()
    pane._on_start()
    assert pane.worker is worker and "already" in pane.banner.text()

    wait_idle(window, qtbot)
    qtbot.waitUntil(lambda: len(pane.plot.points("val_acc")) == 2, timeout=10_000)
    assert [x for x, _ in pane.plot.points("train_loss")] == [1.0, 2.0]
    assert all(0 <= acc <= 100 for _, acc in pane.plot.points("val_acc"))
    assert len(pane.plot.points("lr")) == 2

    [run] = Project(window.state.project_dir).runs()
    assert run.status == "finished" and run.epochs_done == 2
    assert (Path(run.folder) / "last.pt").is_file() and (Path(run.folder) / "best.pt").is_file()
    assert pane.run_list.rowCount() == 1 and pane.run_list.item(0, 3).text() == "finished"
    assert "Finished after 2 epoch" in pane.banner.text()
    assert "Ready" in window.run_label.text() and pane.start_button.isEnabled()


def test_pause_resume_and_stop_mid_run(window, qtbot, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    set_recipe(window, epochs=60)
    pane = window.panes[3]
    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.epoch, timeout=RUN_TIMEOUT_MS):
        pass

    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    assert window.state.run_state == "paused" and pane.pause_button.text() == "Resume"
    assert "Paused" in window.run_label.text()
    qtbot.mouseClick(pane.pause_button, Qt.MouseButton.LeftButton)
    assert window.state.run_state == "training" and pane.pause_button.text() == "Pause"

    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT_MS) as done:
        qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert result["status"] == "stopped" and 1 <= result["epochs_done"] < 60
    assert (Path(result["run_dir"]) / "last.pt").is_file()
    wait_idle(window, qtbot)
    assert pane.start_button.isEnabled() and not pane.stop_button.isEnabled()
    assert Project(window.state.project_dir).runs()[0].status == "stopped"

    # The stopped run continues from its last checkpoint, its earlier epochs still on the plot.
    pane.run_list.select_ids([Project(window.state.project_dir).runs()[0].id])
    assert pane.continue_button.isEnabled()
    qtbot.mouseClick(pane.continue_button, Qt.MouseButton.LeftButton)
    resumed = pane.worker
    with qtbot.waitSignal(resumed.epoch, timeout=RUN_TIMEOUT_MS) as next_epoch:
        pass
    assert next_epoch.args[0]["epoch"] == result["epochs_done"] + 1
    # The pane's own slot for that signal may run just after the test's: wait for the plot data.
    qtbot.waitUntil(lambda: len(pane.live) >= result["epochs_done"] + 1, timeout=RUN_TIMEOUT_MS)
    assert [row["epoch"] for row in pane.live][:result["epochs_done"] + 1] == list(range(1, result["epochs_done"] + 2))
    qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(window, qtbot)
    [run] = Project(window.state.project_dir).runs()
    assert run.status == "stopped" and run.epochs_done > result["epochs_done"]


def test_closing_the_window_mid_run_stops_it_and_keeps_the_checkpoint(window, qtbot, qtlog, tmp_path: Path) -> None:
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window)
    set_recipe(window, epochs=60)
    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.epoch, timeout=RUN_TIMEOUT_MS):
        pass

    window.close()
    assert window.isVisible(), "the window waits for the run to stop before it closes"
    assert window.state.run_state == "stopping"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert not window.state.running
    qtbot.waitUntil(lambda: live_workers() == 0, timeout=RUN_TIMEOUT_MS)

    [run] = Project(window.state.project_dir).runs()
    assert run.status == "stopped" and run.epochs_done >= 1
    assert (Path(run.folder) / "last.pt").is_file()
    gc.collect()
    qtbot.wait(50)
    assert not [r.message for r in qtlog.records if "Destroyed while thread" in r.message]


def test_hostile_folder_lists_its_bad_files_and_still_trains(window, qtbot, tmp_path: Path) -> None:
    expected = make_hostile_folder(tmp_path / "hostile")
    load_folder(window, qtbot, tmp_path / "hostile")
    data = window.panes[0]
    report = window.state.report
    bad_expected = sorted(path for path, outcome in expected.items() if outcome == "bad")
    listed = {data.bad_table.item(i, 0).text(): data.bad_table.item(i, 1).text()
              for i in range(data.bad_table.rowCount())}
    assert sorted(listed) == sorted(r.path for r in report.bad)
    assert set(bad_expected) <= set(listed)
    for path, words in EXPECTED_REASONS.items():
        assert words in listed[path], (path, listed[path])
    assert data.banner.level == "warning" and "cannot be used" in data.banner.text()

    choose_tiny_model(window)
    set_recipe(window, epochs=1)
    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.finished, timeout=RUN_TIMEOUT_MS) as done:
        pass
    assert done.args[0]["status"] == "finished"
    wait_idle(window, qtbot)
    assert "unusable file(s) skipped" in window.panes[3].log.toPlainText()


def test_selecting_two_runs_overlays_their_curves(window, qtbot, tmp_path: Path) -> None:
    from studio.core.config import RunConfig
    from studio.core.train import Trainer

    data = make_colour_folder(tmp_path / "data")
    for lr in (3e-3, 1e-2):
        cfg = RunConfig()
        cfg.data.root = str(data)
        cfg.model.image_size, cfg.model.blocks, cfg.model.width = 24, 2, 8
        cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = 2, 8, lr
        Trainer(cfg, project=window.state.project_dir).run()
    pane = window.panes[3]
    window.state.runs_changed.emit()  # as after any run; the list reads the project again
    window.show_pane(3)
    assert pane.run_list.rowCount() == 2

    pane.run_list.select_ids([run.id for run in pane.run_list.rows])
    qtbot.waitUntil(lambda: bool(pane.plot.points("train_loss", run=1)), timeout=10_000)
    assert len(pane.plot.points("train_loss", run=0)) == 2 and len(pane.plot.points("val_acc", run=1)) == 2
    assert pane.plot.points("lr", run=0) != pane.plot.points("lr", run=1)


def test_same_seed_gives_the_same_history_while_the_window_draws_random_numbers(window, qtbot, tmp_path: Path) -> None:
    """The Augment preview and the Model page draw random numbers while a run trains: the run must not notice."""
    import torch
    from PySide6.QtCore import QTimer

    load_folder(window, qtbot, make_colour_folder(tmp_path / "data", per_class=8))
    choose_tiny_model(window)
    set_recipe(window, epochs=2)
    window.state.update("augment", hflip=0.5, rotation=15.0, color_jitter=0.2, erasing=0.3)
    window.state.update("model", dropout=0.5)
    window.state.update("data", seed=11)
    histories = []
    for _ in range(2):
        noise = QTimer()
        noise.timeout.connect(lambda: torch.rand(4096))  # other window activity drawing meanwhile
        noise.start(0)
        start_run(window, qtbot)
        wait_idle(window, qtbot)
        noise.stop()
        run = Project(window.state.project_dir).runs()[-1]
        histories.append([(r["train_loss"], r["val_loss"]) for r in Project(window.state.project_dir).epochs(run.id)])
    assert len(histories[0]) == 2 and histories[0] == histories[1]


def test_data_folder_deleted_mid_run_fails_in_one_line(window, qtbot, tmp_path: Path) -> None:
    import shutil

    data = make_colour_folder(tmp_path / "data")
    load_folder(window, qtbot, data)
    choose_tiny_model(window)
    set_recipe(window, epochs=60)
    worker = start_run(window, qtbot)
    with qtbot.waitSignal(worker.epoch, timeout=RUN_TIMEOUT_MS):
        pass
    shutil.rmtree(data)
    wait_idle(window, qtbot)
    [run] = Project(window.state.project_dir).runs()
    assert run.status == "failed" and "data folder was deleted" in run.message and "\n" not in run.message
    pane = window.panes[3]
    assert "data folder was deleted" in pane.banner.text() and "Traceback" not in pane.banner.text()
    assert (Path(run.folder) / "last.pt").is_file()
