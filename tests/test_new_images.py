"""A finished run measured on a folder of new labelled images: the user's own test, never their own folder."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch

from studio.core.errors import EvaluationError
from studio.core.evaluate import NEW
from studio.core.new_images import evaluate_folder, harder_than_reported
from studio.core.predict import Predictor
from studio.core.runfiles import read_split
from studio.core.train import Trainer
from tests.conftest import make_colour_folder, snapshot
from tests.test_train import tiny_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("new-images")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(base / "home"))
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        result = Trainer(tiny_config(make_colour_folder(base / "data", per_class=10), epochs=3),
                         project=base / "project").run()
    torch.set_num_threads(threads)
    return Path(result.run_dir)


def _trained_on(run: Path) -> Path:
    return Path(json.loads((run / "config.json").read_text())["data"]["root"])


def _new_folder(run: Path, tmp_path: Path) -> Path:
    """Other images of the run's classes, one copy of a training image, one broken file and an unknown class."""
    new = make_colour_folder(tmp_path / "new", per_class=6, seed=7)
    trained = next(p for p, _, s in read_split(run) if s == "train")
    shutil.copy(_trained_on(run) / trained, new / trained.split("/")[0] / "copy.png")
    (new / "red" / "broken.png").write_text("not an image")
    (new / "purple").mkdir()
    shutil.copy(new / "red" / "red_00.png", new / "purple" / "p.png")
    return new


def test_new_images_are_predicted_as_prediction_does_and_copies_are_left_out(run: Path, tmp_path: Path) -> None:
    new = _new_folder(run, tmp_path)
    before = snapshot(new)
    ev = evaluate_folder(run, new)
    assert ev.split == NEW and Path(ev.data_root) == new.resolve()
    assert ev.metrics.total == 18  # 3 classes x 6: not the copy, the broken file or the unknown class
    skipped = dict(ev.skipped)
    assert "trained or validated on" in skipped[[p for p in skipped if p.endswith("copy.png")][0]]
    assert "red/broken.png" in skipped
    assert "not one the model knows" in skipped["purple/p.png"]
    assert ev.notes[0] == ("Left out of the 21 new images: 1 a copy of an image the run trained or validated on; "
                           "1 in a class the model does not know; 1 could not be read. report.md names each.")
    predictor = Predictor(run)
    for image in ev.images:
        [result] = predictor.predict_paths([str(new / image.path)], top_k=1)
        assert result.top[0][0] == ev.classes[image.predicted]
    assert snapshot(new) == before  # nothing written into the user's folder


def test_cli_writes_its_own_section_beside_the_runs_figures(run: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from studio.cli_evaluate_export import MODEL_COMMANDS, add_parsers

    parser = argparse.ArgumentParser(prog="studio")
    add_parsers(parser.add_subparsers(dest="command"))
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    before = (copy / "report.md").read_text()
    new = _new_folder(copy, tmp_path)
    args = parser.parse_args(["evaluate", str(copy), "--data", str(new)])
    assert MODEL_COMMANDS["evaluate"](args) == 0
    out = capsys.readouterr().out
    assert f"new images in {new.resolve()}: 18 images" in out and "copy.png" in out
    report = (copy / "report.md").read_text()
    assert report.startswith(before.rstrip("\n"))  # the run's own sections stay as they were
    assert "## Evaluation on new images" in report and (copy / "confusion-new.png").is_file()
    assert MODEL_COMMANDS["evaluate"](args) == 0  # again: the section is replaced, not repeated
    assert (copy / "report.md").read_text().count("## Evaluation on new images") == 1


def test_bad_folders_get_one_line(run: Path, tmp_path: Path) -> None:
    root = _trained_on(run)
    with pytest.raises(EvaluationError, match="the folder the run was trained on"):
        evaluate_folder(run, root)
    with pytest.raises(EvaluationError, match="the folder the run was trained on"):
        evaluate_folder(run, root / "red")
    with pytest.raises(EvaluationError, match="not found"):
        evaluate_folder(run, tmp_path / "nowhere")
    other = make_colour_folder(tmp_path / "other", per_class=2, classes={"cyan": (0, 200, 200), "tan": (200, 180, 140)})
    with pytest.raises(EvaluationError, match="none of its class folders .*cyan.* is a class this model knows"):
        evaluate_folder(run, other)
    with pytest.raises(EvaluationError, match="not a run folder"):
        evaluate_folder(tmp_path, other)


def test_a_clear_drop_below_the_runs_own_figure_is_said_plainly() -> None:
    found = harder_than_reported(("its own test images", 1.0), 0.929, 0.23)
    assert found is not None and found.severity == "warning"
    assert "92.9%" in found.detail and "100.0%" in found.detail and "23%" in found.detail
    assert "Keep together" in found.advice
    assert harder_than_reported(("its own test images", 0.95), 0.93, None) is None  # within what chance moves
