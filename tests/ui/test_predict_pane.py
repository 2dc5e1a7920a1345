"""The Predict view: what a drop of files, folders and non-images shows, and that it is `studio predict`'s answer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

from studio.cli import main as cli_main
from studio.core.predict import Predictor, expand_inputs
from studio.ui.panes.predict_pane import SINGLE, TABLE, PredictPane
from studio.ui.state import QtStudioState
from studio.ui.widgets.prediction_table import TOP3
from studio.ui.workers import live_workers
from tests.ui.view_helpers import dispose, drop_paths, train_tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_tiny_run(tmp_path_factory.mktemp("predict"))


@pytest.fixture
def pane(qtbot, trained):
    state = QtStudioState(project_dir=trained.project)
    view = PredictPane(state)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    yield view
    dispose(view)


def dropped(qtbot, pane: PredictPane, paths: list) -> list:
    with qtbot.waitSignal(pane.finished, timeout=30_000):
        assert drop_paths(pane, paths)
    return pane.table_model.predictions


def some_images(trained, n: int) -> list[Path]:
    return sorted(Path(trained.data).rglob("*.png"))[:n]


def test_picker_chooses_the_trained_run(pane: PredictPane, trained) -> None:
    assert pane.state.current_run == trained.run
    assert pane.picker.combo.currentData() == trained.run


def test_one_image_shows_its_top_classes_the_same_every_time(qtbot, pane: PredictPane, trained) -> None:
    image = some_images(trained, 1)[0]
    rows = dropped(qtbot, pane, [image])
    assert pane.view_mode() == SINGLE
    assert [p.path for p in rows] == [str(image)]
    expected = next(Predictor(trained.run).predict_paths([image], top_k=5))
    assert rows[0].top == expected.top  # bit for bit, not approximately
    assert pane.single.bars.top == expected.top and pane.single.answer_label.text() == expected.label
    qtbot.waitUntil(lambda: pane.single.image_view.image is not None, timeout=10_000)
    again = dropped(qtbot, pane, [image])
    assert again[0].top == expected.top


def test_many_files_fill_the_table_as_studio_predict_answers(qtbot, pane: PredictPane, trained, capsys) -> None:
    images = some_images(trained, 7)
    rows = dropped(qtbot, pane, images)
    assert pane.view_mode() == TABLE
    assert [p.path for p in rows] == [str(p) for p in images]
    assert all(thumb is not None for thumb in pane.table_model.thumbs)
    capsys.readouterr()
    assert cli_main(["predict", *map(str, images), "--model", trained.run, "--top-k", "5", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert [(r["path"], [tuple(t) for t in r["top"]]) for r in cli] == [(p.path, p.top) for p in rows]


def test_a_folder_gives_a_row_per_image_inside(qtbot, pane: PredictPane, trained) -> None:
    folder = Path(trained.data) / "green"
    rows = dropped(qtbot, pane, [folder])
    assert [p.path for p in rows] == [str(p) for p in expand_inputs([folder])]
    assert len(rows) == 10 and not any(p.error for p in rows)


def test_unusable_files_are_rows_with_their_reason(qtbot, pane: PredictPane, trained, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    good = some_images(trained, 1)[0]
    rows = dropped(qtbot, pane, [text, good, empty])
    assert [Path(p.path).name for p in rows] == ["notes.png", good.name, "empty.jpg"]
    assert rows[0].error and rows[2].error == "empty file (0 bytes)" and not rows[1].error
    model = pane.table_model
    assert model.data(model.index(0, 2)) == "unusable" and model.data(model.index(0, TOP3)) == rows[0].error
    assert "2 unusable" in pane.table.summary.text()

    alone = dropped(qtbot, pane, [text])  # one unusable file: its row, not an empty single view
    assert pane.view_mode() == TABLE and alone[0].error


def test_low_confidence_rows_are_flagged_and_filterable(qtbot, pane: PredictPane, trained) -> None:
    rows = dropped(qtbot, pane, some_images(trained, 12))
    pane.threshold.setValue(99)
    low = [p for p in rows if p.confidence < 0.99]
    assert pane.table_model.flagged() == (0, len(low))
    pane.only_flagged.setChecked(True)
    assert pane.table.proxy.rowCount() == len(low)
    pane.only_flagged.setChecked(False)
    pane.table.view.sortByColumn(3, Qt.SortOrder.AscendingOrder)
    first = pane.table.proxy.mapToSource(pane.table.proxy.index(0, 0)).row()
    assert rows[first].confidence == min(p.confidence for p in rows)


def test_csv_export_writes_every_row(qtbot, pane: PredictPane, trained, tmp_path: Path) -> None:
    rows = dropped(qtbot, pane, some_images(trained, 4))
    out = tmp_path / "out.csv"
    pane.choose_csv_path = lambda: str(out)
    pane.csv_button.click()
    with out.open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["file"] for r in table] == [p.path for p in rows]
    assert [r["predicted"] for r in table] == [p.label for p in rows]
    assert "Saved 4 rows" in pane.banner.text()


def test_pasted_picture_is_predicted(qtbot, pane: PredictPane, trained) -> None:
    image = QImage(str(some_images(trained, 1)[0]))
    QGuiApplication.clipboard().setImage(image)
    with qtbot.waitSignal(pane.finished, timeout=30_000):
        pane.paste_button.click()
    [row] = pane.table_model.predictions
    assert not row.error and Path(row.path).parent == Path(pane.state.project.cache_dir) / "pasted"
    assert pane.view_mode() == SINGLE


def test_inspect_goes_through_the_shared_state(qtbot, pane: PredictPane, trained) -> None:
    image = some_images(trained, 1)[0]
    dropped(qtbot, pane, [image])
    with qtbot.waitSignal(pane.state.inspect_requested) as signal:
        pane.inspect_button.click()
    assert signal.args == [trained.run, str(image)]


def test_a_bad_checkpoint_is_a_message_in_the_view(qtbot, pane: PredictPane, trained, tmp_path: Path) -> None:
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    pane.state.set_current_run(str(bogus))
    pane.predict_files(some_images(trained, 2))
    qtbot.waitUntil(lambda: pane.banner.level == "error", timeout=10_000)
    assert pane.banner.text().startswith(str(bogus)) and "Traceback" not in pane.banner.text()
    assert pane.picker.combo.currentData() == str(bogus)


def test_a_new_drop_replaces_a_running_batch_and_closing_waits(qtbot, trained) -> None:
    state = QtStudioState(project_dir=trained.project)
    view = PredictPane(state)  # not given to qtbot: this test deletes it itself
    many, few = some_images(trained, 30), some_images(trained, 30)[-2:]
    with qtbot.waitSignal(view.finished, timeout=30_000):
        drop_paths(view, many)
        drop_paths(view, few)  # while the first batch may still run
    assert [p.path for p in view.table_model.predictions] == [str(p) for p in few]
    drop_paths(view, many)
    dispose(view)  # closing mid-batch: the worker is stopped and waited for
    assert live_workers() == 0
