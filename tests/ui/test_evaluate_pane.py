"""The Evaluate view: the confusion matrix and its cells' images, per-class figures, diagnostics, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from studio.core.evaluate import evaluate_run
from studio.ui.panes.evaluate_pane import CELL_TAB, PATH_ROLE, EvaluatePane
from studio.ui.state import QtStudioState
from tests.ui.view_helpers import dispose, train_tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_tiny_run(tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="module")
def expected(trained):
    return evaluate_run(trained.run, "val")


@pytest.fixture
def pane(qtbot, trained):
    state = QtStudioState(project_dir=trained.project)
    view = EvaluatePane(state)
    qtbot.addWidget(view)
    view.resize(1100, 750)
    yield view
    dispose(view)


def evaluated(qtbot, pane: EvaluatePane) -> None:
    with qtbot.waitSignal(pane.evaluated, timeout=30_000):
        pane.show()  # evaluates the current run when shown


def listed(widget) -> list[str]:
    return [widget.item(i).data(PATH_ROLE) for i in range(widget.count())]


def test_shows_the_run_evaluation(qtbot, pane: EvaluatePane, trained, expected) -> None:
    evaluated(qtbot, pane)
    ev = pane.evaluation
    assert ev is not None and ev.run_dir == trained.run
    np.testing.assert_array_equal(pane.matrix.cm, expected.confusion)
    assert pane.matrix.classes == expected.classes
    rows = [[pane.per_class.item(r, c).text() for c in range(5)] for r in range(pane.per_class.rowCount())]
    assert [r[0] for r in rows] == expected.classes
    assert [int(r[4]) for r in rows] == [c.support for c in expected.metrics.per_class]
    assert f"accuracy {100 * expected.metrics.accuracy:.1f}%" in pane.summary.text()
    for d in expected.diagnostics:
        assert d.title in pane.diagnostics.toPlainText()
    assert "## Evaluation" in (Path(trained.run) / "report.md").read_text()
    assert (Path(trained.run) / "confusion.png").is_file()
    assert listed(pane.wrong_list) == [str(expected.abspath(w.path)) for w in expected.most_wrong] or (
        not expected.most_wrong and pane.wrong_list.count() == 1)


def test_clicking_a_cell_lists_its_images(qtbot, pane: EvaluatePane, expected) -> None:
    evaluated(qtbot, pane)
    n = len(expected.classes)
    for true in range(n):
        for pred in range(n):
            qtbot.mouseClick(pane.matrix, Qt.MouseButton.LeftButton, pos=pane.matrix.cell_rect(true, pred).center())
            want = [str(expected.abspath(im.path)) for im in expected.images_in_cell(true, pred)]
            assert listed(pane.cell_list) == want, (true, pred)
            assert len(want) == expected.confusion[true, pred]
            assert pane.tabs.currentIndex() == CELL_TAB
            assert pane.cell_label.text().startswith(f"<b>{len(want)}</b> {expected.classes[true]}")
    qtbot.waitUntil(lambda: not pane.cell_list.item(0).icon().isNull() if pane.cell_list.count() else True)


def test_clicking_an_image_asks_inspect_for_it(qtbot, pane: EvaluatePane, trained, expected) -> None:
    evaluated(qtbot, pane)
    true = int(np.argmax(expected.confusion.diagonal()))
    pane.matrix.click_cell(true, true)
    item = pane.cell_list.item(0)
    with qtbot.waitSignal(pane.state.inspect_requested) as signal:
        pane.cell_list.itemClicked.emit(item)
    assert signal.args == [trained.run, item.data(PATH_ROLE)]
    assert pane.state.current_run == trained.run


def test_a_run_without_test_images_shows_validation_and_says_why(qtbot, pane: EvaluatePane) -> None:
    evaluated(qtbot, pane)
    with qtbot.waitSignal(pane.evaluated, timeout=30_000):
        pane.split_combo.setCurrentIndex(pane.split_combo.findData("test"))
    assert pane.split == "val" and pane.evaluation.split == "val"
    assert pane.banner.level == "info" and "no held-out test images" in pane.banner.text()


def test_new_images_from_a_folder_are_the_users_own_test(qtbot, pane: EvaluatePane, trained, tmp_path: Path,
                                                         monkeypatch) -> None:
    from studio.core.evaluate import NEW
    from studio.core.new_images import evaluate_folder
    from tests.conftest import make_colour_folder

    new = make_colour_folder(tmp_path / "new", per_class=5, seed=11)
    evaluated(qtbot, pane)
    shown = pane.split
    monkeypatch.setattr(pane, "choose_new_folder", lambda: "")  # cancelled: back to what was shown
    pane.split_combo.setCurrentIndex(pane.split_combo.findData(NEW))
    assert pane.split == shown and pane.evaluation.split == shown
    monkeypatch.setattr(pane, "choose_new_folder", lambda: str(new))
    with qtbot.waitSignal(pane.evaluated, timeout=30_000):
        pane.split_combo.setCurrentIndex(pane.split_combo.findData(NEW))
    ev = pane.evaluation
    assert ev.split == NEW and Path(ev.data_root) == new.resolve() and ev.metrics.total == 15
    np.testing.assert_array_equal(pane.matrix.cm, evaluate_folder(trained.run, new).confusion)
    assert pane.summary.text().startswith("New images in new: 15 images")
    assert pane.banner.level == "info" and "never saw" in pane.banner.text()
    assert "## Evaluation on new images" in (Path(trained.run) / "report.md").read_text()
    assert "confusion-new.png" in pane.report_label.text()
    assert not pane.reviews[0].root()  # no label corrections for images outside the project


def test_a_checkpoint_file_cannot_be_evaluated_but_is_said_so(qtbot, pane: EvaluatePane, trained) -> None:
    evaluated(qtbot, pane)
    with qtbot.waitSignal(pane.evaluated, timeout=30_000):
        pane.state.set_current_run(str(Path(trained.run) / "best.pt"))
    assert pane.banner.level == "info" and "checkpoint file" in pane.banner.text()


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_from_the_window(qtbot, pane: EvaluatePane, trained, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"exported.{fmt}"
    box = pane.export_box
    box.format_combo.setCurrentIndex(box.format_combo.findData(fmt))
    box.choose_path = lambda _fmt, _default: str(out)
    with qtbot.waitSignal(box.finished, timeout=60_000):
        box.export_button.click()
        assert not box.export_button.isEnabled()  # the export runs in a worker
    assert out.is_file() and pane.banner.level == "info" and str(out) in pane.banner.text()
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["classes"] == ["blue", "green", "red"] and sidecar["format"] == fmt


def test_the_model_package_is_offered_first(qtbot, pane: EvaluatePane, trained, tmp_path: Path) -> None:
    box = pane.export_box
    assert box.format_combo.currentData() == "package" and box.format_combo.itemData(0) == "package"
    out = tmp_path / "model-package"
    box.choose_path = lambda _fmt, _default: str(out)
    with qtbot.waitSignal(box.finished, timeout=90_000):
        box.export_button.click()
    assert (out / "predict.py").is_file() and (out / "README.md").is_file()
    assert pane.banner.level == "info" and "model card" in pane.banner.text()
