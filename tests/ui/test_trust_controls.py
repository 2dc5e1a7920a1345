"""Window: the grouping and time controls reach the run config; Evaluate shows the test figure first."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.conftest import make_colour_folder
from tests.ui.conftest import RUN_TIMEOUT_MS, load_folder
from tests.ui.view_helpers import dispose, train_tiny_run


def test_grouping_and_time_controls_reach_the_run_config(window, qtbot, tmp_path: Path, monkeypatch) -> None:
    from studio.ui.panes import train_pane

    load_folder(window, qtbot, make_colour_folder(tmp_path / "data", per_class=8))
    grouping = window.panes[0].grouping
    grouping.unit_combo.setCurrentIndex(grouping.unit_combo.findData("pattern"))
    grouping.pattern_edit.setText("^(P\\d+_")  # a bracket left open
    grouping.pattern_edit.editingFinished.emit()
    assert "not a valid pattern" in grouping.error_label.text()
    assert window.state.config.data.group_by == ""
    grouping.pattern_edit.setText("^([a-z]+)_")
    grouping.pattern_edit.editingFinished.emit()
    assert grouping.error_label.text() == "" and window.state.config.data.group_by == "^([a-z]+)_"
    grouping.near_check.setChecked(False)
    train = next(p for p in window.panes if hasattr(p, "recipe"))
    form = train.recipe
    form.choose_combo.setCurrentIndex(form.choose_combo.findData("recommended"))
    form.budget_combo.setCurrentIndex(form.budget_combo.findData("ten-minutes"))
    form.epochs_spin.setValue(3)  # set by hand: kept, whatever the recipe would choose

    started = []

    class Capture:
        def __init__(self, config, **kwargs) -> None:
            started.append(config)
            raise RuntimeError("captured")

    monkeypatch.setattr(train_pane, "TrainWorker", Capture)
    with contextlib.suppress(RuntimeError):
        train._on_start()
    [config] = started
    assert config.data.group_by == "^([a-z]+)_" and config.data.near_duplicates is False
    assert config.recipe.mode == "recommended" and config.recipe.budget == "ten-minutes"
    assert "train.epochs" in config.recipe.pinned and config.train.epochs == 3


def test_evaluate_opens_on_the_held_out_test_figure(qtbot, tmp_path: Path) -> None:
    from studio.ui.panes.evaluate_pane import TRUST_NOTE, EvaluatePane
    from studio.ui.state import QtStudioState

    trained = train_tiny_run(tmp_path, per_class=30)  # 30 a class: a test share by default
    state = QtStudioState(project_dir=trained.project)
    state.set_current_run(trained.run)
    pane = EvaluatePane(state)
    try:
        with qtbot.waitSignal(pane.evaluated, timeout=RUN_TIMEOUT_MS):
            pane.show()
        assert pane.split == "test" and pane.evaluation.split == "test"
        assert pane.summary.text().startswith("Held-out test images")
        assert pane.banner.text() == TRUST_NOTE
    finally:
        dispose(pane)
    assert "Test accuracy" in (Path(trained.run) / "report.md").read_text().split("## Images")[0]
