"""An image unlike the training images is shown as such in the window, not as a confident class."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from studio.core.predict import UNFAMILIAR_MESSAGE
from studio.core.trust import SPACE_WORDS
from studio.ui.panes.inspect_pane import NEAREST_TAB, InspectPane
from studio.ui.panes.predict_pane import SINGLE, TABLE, PredictPane
from studio.ui.state import QtStudioState
from studio.ui.widgets.prediction_table import CONFIDENCE, VERDICT
from tests.test_trust import stripes
from tests.ui.view_helpers import dispose, drop_paths, train_tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_tiny_run(tmp_path_factory.mktemp("unfamiliar"), epochs=3, per_class=12)


@pytest.fixture
def pane(qtbot, trained):
    view = PredictPane(QtStudioState(project_dir=trained.project))
    qtbot.addWidget(view)
    view.resize(1100, 700)
    yield view
    dispose(view)


def dropped(qtbot, pane: PredictPane, paths: list) -> list:
    with qtbot.waitSignal(pane.finished, timeout=30_000):
        assert drop_paths(pane, paths)
    return pane.table_model.predictions


def test_a_dropped_foreign_image_shows_the_unfamiliar_banner(qtbot, pane: PredictPane, tmp_path: Path) -> None:
    odd = sorted(stripes(tmp_path / "odd", n=2).glob("*.png"))[0]
    rows = dropped(qtbot, pane, [odd])
    assert pane.view_mode() == SINGLE and rows[0].unfamiliar
    banner = pane.single.unfamiliar_banner
    assert not banner.isHidden() and UNFAMILIAR_MESSAGE in banner.label.text()
    assert pane.single.answer_label.text() == "Not like the training images"
    assert rows[0].label not in pane.single.answer_label.text()
    assert f"Compared with them by {SPACE_WORDS[rows[0].compared_with]}" in pane.single.sure_label.text()


def test_a_familiar_image_shows_its_class_and_no_banner(qtbot, pane: PredictPane, trained) -> None:
    image = sorted(Path(trained.data, "red").glob("*.png"))[0]
    rows = dropped(qtbot, pane, [image])
    assert not rows[0].unfamiliar
    assert pane.single.unfamiliar_banner.isHidden()
    assert pane.single.answer_label.text() == rows[0].label


def test_table_filters_to_unfamiliar_rows_and_the_csv_carries_the_column(qtbot, pane: PredictPane, trained,
                                                                         tmp_path: Path) -> None:
    familiar = sorted(Path(trained.data, "green").glob("*.png"))[:3]
    odd = sorted(stripes(tmp_path / "odd", n=2).glob("*.png"))
    rows = dropped(qtbot, pane, familiar + odd)
    assert pane.view_mode() == TABLE and len(rows) == 5
    flagged = {p.path for p in rows if p.unfamiliar}
    assert {str(p) for p in odd} <= flagged
    pane.only_unfamiliar.setChecked(True)
    shown = {pane.table.prediction_at(r).path for r in range(pane.table.proxy.rowCount())}
    assert shown == flagged
    verdict = pane.table.proxy.index(0, VERDICT).data()
    assert verdict.startswith("⚠ No")
    assert pane.table.proxy.index(0, CONFIDENCE).data().startswith("guess")  # not a confident-looking number
    assert "not like the training images" in pane.table.summary.text()
    out = tmp_path / "window.csv"
    pane.choose_csv_path = lambda: str(out)
    pane.csv_button.click()
    with out.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {r["file"] for r in table if r["unfamiliar"] == "yes"} == flagged
    assert all(float(r["unfamiliar_score"]) > 1 for r in table if r["unfamiliar"] == "yes")


@pytest.fixture
def inspect_pane(qtbot, trained):
    view = InspectPane(QtStudioState(project_dir=trained.project))
    qtbot.addWidget(view)
    view.resize(1100, 700)
    yield view
    dispose(view)


def test_inspect_shows_the_nearest_training_images_of_an_unfamiliar_image(qtbot, inspect_pane, trained,
                                                                          tmp_path: Path) -> None:
    view = inspect_pane
    odd = sorted(stripes(tmp_path / "odd", n=2).glob("*.png"))[0]
    with qtbot.waitSignal(view.inspection_changed, timeout=30_000):
        view.state.request_inspect(trained.run, str(odd))
    assert view.tabs.currentIndex() == NEAREST_TAB
    assert view.answer_label.text().startswith("Not like the training images")
    near = view.neighbours
    assert not near.banner.isHidden() and UNFAMILIAR_MESSAGE in near.banner.label.text()
    assert near.images.count() == 8
    labels = {near.images.item(i).text().split("\n")[0] for i in range(near.images.count())}
    assert labels <= {"red", "green", "blue"}
    assert all(not near.images.item(i).icon().isNull() for i in range(near.images.count()))
