"""After the last epoch: one pass per image with the best weights feeds calibration, familiarity and the evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.evaluate import SECTION, evaluate_run
from studio.core.evaluation_report import evaluation_markdown
from studio.core.train import Trainer
from tests.conftest import make_colour_folder
from tests.test_train import tiny_config


def _section(report: str) -> str:
    return report.split(f"\n{SECTION}\n", 1)[1]


def test_the_end_of_a_run_sees_each_image_once_and_writes_what_evaluate_writes(tmp_path: Path, monkeypatch) -> None:
    from studio.core import predict
    from studio.core.runfiles import read_split

    data = make_colour_folder(tmp_path / "data", per_class=14, size=16)
    seen: list[int] = []
    real = Trainer._train_stages

    def then_count(self, ctx, make, stages):  # every forward pass after the last epoch, whatever calls it
        status = real(self, ctx, make, stages)
        ctx.model.backbone.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
        return status

    monkeypatch.setattr(Trainer, "_train_stages", then_count)
    made: list[str] = []
    real_init = predict.Predictor.__init__
    monkeypatch.setattr(predict.Predictor, "__init__",
                        lambda self, *a, **k: (made.append("predictor"), real_init(self, *a, **k))[1])
    cfg = tiny_config(data, epochs=3)
    cfg.data.test_fraction = 0.2
    result = Trainer(cfg, project=tmp_path / "p").run()

    assert result.status == "finished"
    rows = read_split(Path(result.run_dir))
    test_images = sum(1 for r in rows if r[2] == "test")
    assert test_images and sum(seen) == len(rows), (sum(seen), len(rows))  # train + val + test, once each
    assert made == []  # nothing read the files again through a predictor
    # The same evaluation as predicting the held-out files again with best.pt: the best weights, not the last.
    written = _section((Path(result.run_dir) / "report.md").read_text(encoding="utf-8"))
    again = evaluate_run(result.run_dir, "test")
    assert written.rstrip() == evaluation_markdown(again).split(f"{SECTION}\n", 1)[1].rstrip()
    assert result.test_acc == again.metrics.accuracy


@pytest.mark.parametrize("engine", [False, True], ids=["pytorch", "onnxruntime"])
def test_a_frozen_backbone_is_not_run_again_on_images_it_already_saw(tmp_path: Path, monkeypatch,
                                                                     engine: bool) -> None:
    """Features computed once for training are the final pass's too: only the held-out test images go through
    the backbone after the last epoch, and the report still equals a fresh evaluation of best.pt (which
    runs the backbone in PyTorch, as prediction does) when ONNX Runtime ran it during the run."""
    from studio.core import feature_engine, stage
    from studio.core.runfiles import read_split

    data = make_colour_folder(tmp_path / "data", per_class=14, size=16)
    seen: list[int] = []
    through_engine: list[int] = []
    if engine:
        pytest.importorskip("onnxruntime")
        monkeypatch.setattr(stage, "ENGINE_FROM_IMAGES", 0)
        real_engine = feature_engine.frozen_engine

        def counted(backbone, size):
            run = real_engine(backbone, size)
            assert run is not None
            return lambda x: (through_engine.append(len(x)), run(x))[1]

        monkeypatch.setattr(feature_engine, "frozen_engine", counted)
    real = Trainer._train_stages

    def then_count(self, ctx, make, stages):
        status = real(self, ctx, make, stages)
        ctx.model.backbone.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
        return status

    monkeypatch.setattr(Trainer, "_train_stages", then_count)
    cfg = tiny_config(data, epochs=3)
    cfg.model.arch, cfg.model.pretrained, cfg.model.mode, cfg.model.image_size = "efficientnet_lite0", "imagenet", \
        "head", 32
    cfg.model.features, cfg.train.optimizer = "stages", "lbfgs"
    cfg.data.test_fraction = 0.2
    result = Trainer(cfg.validate(), project=tmp_path / "p").run()
    rows = read_split(Path(result.run_dir))
    assert result.status == "finished"
    tested = sum(1 for r in rows if r[2] == "test")
    assert tested > 0
    if engine:
        assert sum(seen) == 0 and sum(through_engine) == len(rows), (seen, through_engine)
    else:
        assert sum(seen) == tested and not through_engine, seen
    written = _section((Path(result.run_dir) / "report.md").read_text(encoding="utf-8"))
    again = evaluate_run(result.run_dir, "test")
    assert written.rstrip() == evaluation_markdown(again).split(f"{SECTION}\n", 1)[1].rstrip()


def test_rows_written_in_place_equal_the_batches_joined() -> None:
    import torch

    from studio.core.loop import Rows

    batches = [torch.randn(n, 5) for n in (4, 4, 3)]
    for capacity in (11, 4, 0):  # the expected count, fewer (it grows), unknown
        rows = Rows(capacity)
        for b in batches:
            rows.add(b)
        assert torch.equal(rows.result(torch.zeros(0)), torch.cat(batches))
    assert Rows(8).result(torch.zeros(0, 5)).shape == (0, 5)
    labels = Rows(3)
    labels.add(torch.tensor([2, 0]))
    assert labels.result(torch.zeros(0)).dtype == torch.long and labels.result(torch.zeros(0)).tolist() == [2, 0]
