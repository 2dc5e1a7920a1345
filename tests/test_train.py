"""The spine end to end: folder → trained run on disk → predictions, resume, failures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from studio.core.callbacks import Callback, StopToken
from studio.core.checkpoint import load_checkpoint
from studio.core.config import RunConfig
from studio.core.predict import Predictor
from studio.core.project import Project
from studio.core.train import Trainer, TrainingError
from tests.conftest import make_colour_folder, snapshot


def tiny_config(root: Path, **train) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(root)
    cfg.data.near_duplicates = False  # no feature pass per tiny run; tests/test_splits.py covers the grouping
    cfg.model.image_size = 24
    cfg.model.width = 8
    cfg.train.epochs = train.pop("epochs", 3)
    cfg.train.batch_size = 8
    cfg.train.lr = 3e-3
    cfg.train.familiarity_space = "network"  # the reference network's pass is tested once, in test_trust
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None, token: StopToken | None = None) -> None:
        self.events: list[str] = []
        self.epochs: list = []
        self.batches = 0
        self.failed: list[str] = []
        self.stop_after, self.token = stop_after, token

    def on_run_start(self, info) -> None:
        self.events.append("start")
        self.started = info

    def on_batch_end(self, info) -> None:
        self.batches += 1

    def on_epoch_end(self, info) -> None:
        self.events.append("epoch")
        self.epochs.append(info)
        if self.stop_after and info.epoch == self.stop_after:
            self.token.stop()

    def on_finished(self, result) -> None:
        self.events.append(f"finished:{result.status}")

    def on_failed(self, message: str) -> None:
        self.failed.append(message)


def test_train_checkpoint_predict_round_trip(colour_folder: Path, project_dir: Path) -> None:
    before = snapshot(colour_folder)
    rec = Recorder()
    result = Trainer(tiny_config(colour_folder), project=project_dir, callbacks=[rec]).run()
    run = Path(result.run_dir)

    assert result.status == "finished" and result.epochs_done == 3
    assert rec.events == ["start", "epoch", "epoch", "epoch", "finished:finished"]
    assert rec.batches == 3 * rec.started.batches_per_epoch
    assert result.best_val_acc is not None and result.best_val_acc >= 0.9  # colour is trivially learnable
    for name in ("config.json", "history.csv", "best.pt", "last.pt", "report.md", "split.csv"):
        assert (run / name).is_file(), name
    assert run.parent.parent == project_dir.resolve()
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert RunConfig.load(run / "config.json").to_dict() == tiny_config(colour_folder).to_dict()
    assert snapshot(colour_folder) == before, "training wrote into the image folder"

    ckpt = load_checkpoint(run)
    assert ckpt["classes"] == ["blue", "green", "red"]
    assert ckpt["preprocessing"]["image_size"] == 24
    # Trained from scratch: normalization measured on the training images, not ImageNet's.
    assert ckpt["preprocessing"]["mean"] != pytest.approx([0.485, 0.456, 0.406], abs=1e-3)

    predictor = Predictor(run)
    preds = list(predictor.predict_paths(sorted((colour_folder / "red").glob("*.png")), top_k=2))
    assert sum(p.label == "red" for p in preds) >= len(preds) - 1
    # top_k=2 of three classes: two answers, most likely first, probabilities that cannot add up past 1.
    assert all(len(p.top) == 2 and p.top[0][1] >= p.top[1][1] >= 0 for p in preds)
    assert all(sum(v for _, v in p.top) <= 1 + 1e-6 for p in preds)
    every = list(predictor.predict_paths([p.path for p in preds], top_k=3))
    assert all(abs(sum(v for _, v in p.top) - 1) < 1e-5 for p in every)  # all classes: exactly a distribution
    again = list(Predictor(run).predict_paths([preds[0].path], top_k=3))[0]
    assert again.top == list(predictor.predict_paths([preds[0].path], top_k=3))[0].top

    # The accuracy the run reports is the accuracy evaluation measures on the same images.
    from studio.core.evaluate import evaluate_run

    assert evaluate_run(run).metrics.accuracy == pytest.approx(ckpt["metrics"]["val_acc"])
    assert (run / "confusion.png").is_file() and "## Evaluation" in (run / "report.md").read_text()

    project = Project(project_dir)
    [row] = project.runs()
    assert row.status == "finished" and row.best_metric == pytest.approx(result.best_val_acc)
    val = project.split_images(row.id, "val")
    assert val and {c for _, c, _ in val} == {"blue", "green", "red"}
    assert len(project.split_images(row.id)) == 36
    assert [e["epoch"] for e in project.epochs(row.id)] == [1, 2, 3]


def test_prediction_is_deterministic_and_matches_evaluation(colour_folder: Path, project_dir: Path) -> None:
    result = Trainer(tiny_config(colour_folder, epochs=1), project=project_dir).run()
    files = sorted(colour_folder.glob("*/*.png"))[:5]
    first = [p.top for p in Predictor(result.checkpoint).predict_paths(files, top_k=3)]
    second = [p.top for p in Predictor(result.checkpoint).predict_paths(files, top_k=3, batch_size=1)]
    for a, b in zip(first, second):
        assert [c for c, _ in a] == [c for c, _ in b]
        assert [v for _, v in a] == pytest.approx([v for _, v in b], abs=1e-5)


def test_stop_then_resume_continues_like_an_uninterrupted_run(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data")
    full = Trainer(tiny_config(data, epochs=4, precision="fp32"), project=tmp_path / "a").run()

    token = StopToken()
    rec = Recorder(stop_after=2, token=token)
    stopped = Trainer(tiny_config(data, epochs=4, precision="fp32"), project=tmp_path / "b",
                      callbacks=[rec], stop=token).run()
    assert stopped.status == "stopped" and stopped.epochs_done == 2
    assert load_checkpoint(Path(stopped.run_dir) / "last.pt")["training"]["epoch"] == 2
    assert Project(tmp_path / "b").runs()[0].status == "stopped"

    rec2 = Recorder()
    resumed = Trainer.resume(stopped.run_dir, callbacks=[rec2]).run()
    assert resumed.status == "finished" and resumed.epochs_done == 4
    assert rec2.started.start_epoch == 2
    assert [e.epoch for e in rec2.epochs] == [3, 4]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    # Same seed, same order, same optimizer state: the resumed run retraces the uninterrupted one.
    for a, b in zip(full.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
    assert Project(tmp_path / "b").runs()[0].status == "finished"


def test_hostile_folder_trains_and_reports_skipped_files(tmp_path: Path) -> None:
    from tests.hostile import make_hostile_folder

    root = tmp_path / "hostile"
    make_hostile_folder(root)
    before = snapshot(root)
    rec = Recorder()
    result = Trainer(tiny_config(root, epochs=1), project=tmp_path / "p", callbacks=[rec]).run()
    assert result.status == "finished"
    assert any("unusable" in n for n in rec.started.notes)
    assert snapshot(root) == before


def test_nan_loss_stops_with_a_plain_message(colour_folder: Path, project_dir: Path) -> None:
    class Poison(Recorder):
        """Weights blown up to NaN after epoch 1, as a too-high learning rate would do."""

        def on_epoch_end(self, info) -> None:
            super().on_epoch_end(info)
            for p in trainer.model.head.parameters():
                p.data.fill_(float("nan"))

    rec = Poison()
    trainer = Trainer(tiny_config(colour_folder, epochs=3), project=project_dir, callbacks=[rec])
    with pytest.raises(TrainingError, match="NaN") as err:
        trainer.run()
    assert "epoch 2" in str(err.value) and "learning rate" in str(err.value)
    assert rec.failed == [str(err.value)]
    assert Project(project_dir).runs()[0].status == "failed"
    assert load_checkpoint(Path(trainer.run_dir) / "best.pt")["metrics"]["epoch"] == 1  # last good one kept


def test_early_stopping_restores_best_weights(tmp_path: Path, project_dir: Path) -> None:
    # Two classes drawn from the same colour: nothing to learn, so validation stops improving.
    same = make_colour_folder(tmp_path / "same", classes={"a": (120, 120, 120), "b": (120, 120, 120)})
    cfg = tiny_config(same, epochs=30, early_stopping=2)
    result = Trainer(cfg, project=project_dir).run()
    assert result.status == "early-stopped"
    assert result.epochs_done < 30
    assert result.epochs_done - result.best_epoch == 2
    best = load_checkpoint(Path(result.run_dir) / "best.pt")
    assert best["metrics"]["epoch"] == result.best_epoch


def test_project_inside_data_folder_is_refused(colour_folder: Path) -> None:
    with pytest.raises(TrainingError, match="inside the image folder"):
        Trainer(tiny_config(colour_folder, epochs=1), project=colour_folder / "runs").run()
    assert not (colour_folder / "runs").exists()


def test_one_class_is_refused(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "one", classes={"red": (200, 0, 0)})
    with pytest.raises(TrainingError, match="two classes"):
        Trainer(tiny_config(data, epochs=1), project=tmp_path / "p").run()


@pytest.mark.parametrize("imbalance", ["weighted-loss", "balanced-sampler"])
def test_imbalanced_classes(tmp_path: Path, imbalance: str) -> None:
    data = make_colour_folder(tmp_path / "d", per_class=4)
    make_colour_folder(tmp_path / "d", per_class=20, classes={"red": (200, 40, 40)}, seed=1)
    result = Trainer(tiny_config(data, epochs=2, imbalance=imbalance), project=tmp_path / "p").run()
    assert result.status == "finished" and not math.isnan(result.history[-1]["train_loss"])


def test_imbalance_settings_give_rare_classes_their_share() -> None:
    """What each setting does: the loss counts a rare image more, or the sampler shows it more often."""
    from studio.core.config import TrainConfig
    from studio.core.loop import FeatureBatches, make_criterion

    labels = torch.tensor([0] * 4 + [1] * 4 + [2] * 20)
    plain, none = make_criterion(TrainConfig(imbalance="none"), labels, 3, torch.device("cpu"))
    assert plain.weight is None and none is None
    weighted, _ = make_criterion(TrainConfig(imbalance="weighted-loss"), labels, 3, torch.device("cpu"))
    assert weighted.weight[0] / weighted.weight[2] == pytest.approx(5.0)  # 20 images against 4
    _, sample_weights = make_criterion(TrainConfig(imbalance="balanced-sampler"), labels, 3, torch.device("cpu"))
    batches = FeatureBatches(torch.zeros(len(labels), 1), labels, batch_size=7, shuffle=True,
                             sample_weights=sample_weights, seed=0)
    drawn = []
    for epoch in range(50):
        batches.set_epoch(epoch)
        drawn.extend(y for _, y in batches)
    shares = torch.bincount(torch.cat(drawn), minlength=3).double() / len(torch.cat(drawn))
    assert shares.tolist() == pytest.approx([1 / 3] * 3, abs=0.06)  # unbalanced it would be 0.14, 0.14, 0.71


@pytest.mark.parametrize("schedule", ["step", "onecycle", "constant"])
def test_schedules_and_sgd(colour_folder: Path, project_dir: Path, schedule: str) -> None:
    result = Trainer(tiny_config(colour_folder, epochs=2, schedule=schedule, optimizer="sgd", lr=0.05,
                                 label_smoothing=0.1, grad_clip=1.0), project=project_dir).run()
    assert result.status == "finished"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.5


def test_augmented_run_and_test_split(colour_folder: Path, project_dir: Path) -> None:
    from studio.core.config import AugmentConfig

    cfg = tiny_config(colour_folder, epochs=2)
    cfg.augment = AugmentConfig.from_preset("aerial")
    cfg.augment.erasing = 0.5
    cfg.augment.grayscale = 0.1
    cfg.data.test_fraction = 0.2
    result = Trainer(cfg, project=project_dir).run()
    report = (Path(result.run_dir) / "report.md").read_text()
    assert result.test_acc is not None and f"Test accuracy: {100 * result.test_acc:.1f}%" in report


def test_cancel_before_training_starts(colour_folder: Path, project_dir: Path) -> None:
    token = StopToken()
    token.stop()
    result = Trainer(tiny_config(colour_folder), project=project_dir, stop=token).run()
    assert result.status == "stopped" and result.epochs_done == 0


def test_channels_last_bf16_matches_fp32_accuracy(tmp_path: Path) -> None:
    # Close colours: accuracy alone saturates at 100 % on easy data and could not tell the two apart,
    # so the losses, which stay well above zero here, are compared epoch by epoch as well.
    close = {"a": (128, 110, 110), "b": (110, 128, 110), "c": (110, 110, 128)}
    data = make_colour_folder(tmp_path / "d", per_class=16, classes=close)
    fast = Trainer(tiny_config(data, epochs=3, precision="bf16"), project=tmp_path / "a").run()
    slow = Trainer(tiny_config(data, epochs=3, precision="fp32", channels_last=False), project=tmp_path / "b").run()
    assert fast.best_val_acc >= slow.best_val_acc - 0.15
    assert min(r["train_loss"] for r in slow.history) > 0.05
    for f, s in zip(fast.history, slow.history, strict=True):  # same seed, same batches
        assert f["train_loss"] == pytest.approx(s["train_loss"], rel=0.1)
        assert f["val_loss"] == pytest.approx(s["val_loss"], rel=0.1)
