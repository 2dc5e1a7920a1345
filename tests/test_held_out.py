"""The held-out test share: carved by default, never seen while training, reported first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.callbacks import Callback
from studio.core.config import RunConfig
from studio.core.project import Project
from studio.core.runfiles import read_split
from studio.core.train import Trainer
from tests.conftest import make_colour_folder


def _config(data: Path, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root, cfg.data.near_duplicates = str(data), False
    cfg.model.image_size, cfg.model.blocks, cfg.model.width = 16, 2, 4
    cfg.train.epochs, cfg.train.batch_size = 2, 32
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def test_test_images_are_never_read_while_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.core import cache

    data = make_colour_folder(tmp_path / "d", per_class=32, size=16)
    taken: list[tuple[str, list[int]]] = []
    phase = {"now": "training"}
    real_take = cache.ImageCache.take

    def spy(self, positions):
        taken.append((phase["now"], [int(p) for p in positions]))
        return real_take(self, positions)

    class Phase(Callback):
        def on_epoch_end(self, info) -> None:
            if info.epoch == info.epochs:
                phase["now"] = "after"  # the last validation is done; what follows is the final test

    monkeypatch.setattr(cache.ImageCache, "take", spy)
    cfg = _config(data)
    assert cfg.data.test_fraction == -1  # automatic by default
    result = Trainer(cfg, project=tmp_path / "p", callbacks=[Phase()]).run()
    rows = read_split(Path(result.run_dir))
    test = {i for i, row in enumerate(rows) if row[2] == "test"}
    assert len(test) == round(0.2 * 32) * 3  # 32 a class: above the floor, so a test share by default
    during = {p for when, positions in taken if when == "training" for p in positions}
    after = {p for when, positions in taken if when == "after" for p in positions}
    assert during and not (during & test)
    assert test <= after and result.test_acc is not None


def test_below_the_floor_there_is_no_test_set_and_the_report_says_why(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "d", per_class=12, size=16)
    result = Trainer(_config(data, epochs=1), project=tmp_path / "p").run()
    assert result.test_acc is None
    assert {row[2] for row in read_split(Path(result.run_dir))} == {"train", "val"}
    assert "No held-out test set" in (Path(result.run_dir) / "report.md").read_text()


def test_time_budget_ends_the_run_with_its_best_weights(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "d", per_class=12, size=16)
    result = Trainer(_config(data, epochs=50, time_limit=0.001), project=tmp_path / "p").run()
    assert result.status == "finished" and result.epochs_done == 1
    assert "time budget" in (Path(result.run_dir) / "report.md").read_text()


def test_cli_json_puts_the_test_figure_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from studio.cli import main

    data = make_colour_folder(tmp_path / "d", per_class=30, size=16)
    code = main(["train", "--data", str(data), "--project", str(tmp_path / "p"), "--manual", "--epochs", "1",
                 "--image-size", "16", "--blocks", "2", "--width", "4", "--no-near-duplicates", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:2] == ["test_acc", "figure_to_trust"] and out["figure_to_trust"] == "test_acc"
    assert out["test_acc"] == Project(tmp_path / "p").runs()[-1].test_acc and 0.0 <= out["test_acc"] <= 1.0


@pytest.mark.parametrize("pattern", ["^(P\\d+_", "no-group", "^(Q\\d+)_"])
def test_cli_bad_group_pattern_is_one_line_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              pattern: str) -> None:
    from studio.cli import main

    data = make_colour_folder(tmp_path / "d", per_class=4, size=16)
    code = main(["train", "--data", str(data), "--project", str(tmp_path / "p"), "--group-by", pattern,
                 "--no-near-duplicates", "--manual"])
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error" in line]
    assert code != 0 and len(errors) == 1 and errors[0].startswith("studio train: error: group-by: ")
    assert "Traceback" not in err
    assert not (tmp_path / "p" / "runs").exists() or not any((tmp_path / "p" / "runs").iterdir())
