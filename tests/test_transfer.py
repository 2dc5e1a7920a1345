"""Real transfer learning, offline: the bundled ImageNet EfficientNet-Lite0 on real photographs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.core.callbacks import Callback
from studio.core.checkpoint import load_checkpoint
from studio.core.config import RunConfig
from studio.core.predict import Predictor
from studio.core.train import Trainer

skdata = pytest.importorskip("skimage.data")

PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket", "astronaut": "astronaut"}


def photo_crops(root: Path, per_class: int = 10, size: int = 96, seed: int = 0) -> Path:
    """Random crops of one real photograph per class: different framing, same subject."""
    rng = np.random.default_rng(seed)
    for name, fn in PHOTOS.items():
        img = Image.fromarray(getattr(skdata, fn)()).convert("RGB")
        w, h = img.size
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            side = int(min(w, h) * rng.uniform(0.55, 0.95))
            x, y = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            crop = img.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
            crop.save(root / name / f"{name}_{i:02d}.jpg", quality=90)
    return root


class Notes(Callback):
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def on_run_start(self, info) -> None:
        self.info = info

    def on_status(self, message: str) -> None:
        self.statuses.append(message)


def lite0_config(root: Path, mode: str, epochs: int) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(root)
    cfg.data.val_fraction = 0.3
    cfg.model.arch = "efficientnet_lite0"
    cfg.model.pretrained = "imagenet"
    cfg.model.mode = mode
    cfg.model.image_size = 96
    cfg.train.epochs = epochs
    cfg.train.batch_size = 16
    cfg.train.lr = 3e-3
    cfg.train.head_epochs = 1
    return cfg.validate()


@pytest.mark.parametrize("features, optimizer", [("final", "adamw"), ("stages", "lbfgs")])
def test_frozen_lite0_features_learn_real_photos(features: str, optimizer: str, tmp_path: Path) -> None:
    data = photo_crops(tmp_path / "photos")
    notes = Notes()
    cfg = lite0_config(data, "head", 8)
    cfg.model.features, cfg.train.optimizer = features, optimizer
    result = Trainer(cfg, project=tmp_path / "p", callbacks=[notes]).run()
    assert result.best_val_acc >= 0.9, result.history
    # Frozen backbone and no augmentation: features computed once, only the head's parameters train.
    assert any("features are computed once" in n for n in notes.statuses), notes.statuses
    assert notes.info.trainable_parameters < 10_000 < notes.info.parameters
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["preprocessing"]["mean"] == [0.5, 0.5, 0.5]  # the normalization Lite0's weights expect
    pred = Predictor(result.checkpoint)
    top = list(pred.predict_paths([data / "coffee" / "coffee_00.jpg"], top_k=1))[0]
    assert top.label == "coffee"
    assert pred.model.feature_dim == {"final": 1280, "stages": 1568}[features]
    if optimizer == "lbfgs":  # solved: it stops once the optimum stops moving, and the report says how it trained
        assert len(result.history) < 8
        assert result.best_epoch == len(result.history)  # the solution, not an unfinished round validation liked
        assert "solved exactly" in (Path(result.run_dir) / "report.md").read_text()


def test_stage_statistics_are_the_mean_and_spread_at_each_stage_end() -> None:
    """What the "every stage" reading promises: per-channel mean and spread where each stage hands on."""
    import torch

    from studio.core.effnet_lite import lite0_features, lite0_stage_statistics
    from studio.core.weights import imagenet_state_dict

    state = imagenet_state_dict("efficientnet_lite0")
    stages, dim, _ = lite0_stage_statistics(state)
    uncut, _, _ = lite0_features(state)
    assert stages.stage_ends == [0, 2, 4, 7, 10, 14, 15] and dim == 1568
    seen = {}
    for i in stages.stage_ends:
        uncut._blocks[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = stages.eval()(x)
        uncut.eval()(x)
    expected = torch.cat([torch.cat([seen[i].mean((2, 3)), seen[i].std((2, 3), correction=0)], 1)
                          for i in stages.stage_ends], 1)
    assert got.shape == (2, 1568)
    assert torch.allclose(got, expected, atol=1e-3)


def test_two_stage_fine_tunes_everything_after_warm_up(tmp_path: Path) -> None:
    data = photo_crops(tmp_path / "photos", per_class=6)
    stages: list[str] = []

    class Stages(Callback):
        def on_epoch_end(self, info) -> None:
            stages.append(info.stage)

    cfg = lite0_config(data, "two-stage", 2)
    cfg.train.batch_size = 8
    start = {k: v.clone() for k, v in load_lite0_backbone().items()}
    result = Trainer(cfg, project=tmp_path / "p", callbacks=[Stages()]).run()
    assert stages == ["head", "all"]
    trained = load_checkpoint(Path(result.run_dir) / "last.pt")["state_dict"]
    # Learned weights, not BatchNorm's running statistics (which change without any learning): parameters only.
    parameters = {f"backbone.{name}" for name, _ in load_lite0_model().backbone.named_parameters()}
    changed = [k for k in parameters if not start[k].equal(trained[k])]
    assert len(changed) > len(parameters) // 2, "stage two must update the backbone's weights"


def load_lite0_model():
    from studio.core.config import ModelConfig
    from studio.core.models import build_model

    return build_model(ModelConfig(arch="efficientnet_lite0", pretrained="imagenet", image_size=96), 4)


def load_lite0_backbone() -> dict:
    return {k: v for k, v in load_lite0_model().state_dict().items() if k.startswith("backbone.")}
