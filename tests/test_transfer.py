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


def test_frozen_lite0_features_learn_real_photos(tmp_path: Path) -> None:
    data = photo_crops(tmp_path / "photos")
    notes = Notes()
    result = Trainer(lite0_config(data, "head", 8), project=tmp_path / "p", callbacks=[notes]).run()
    assert result.best_val_acc >= 0.9, result.history
    # Frozen backbone and no augmentation: features computed once, only the head's parameters train.
    assert any("features are computed once" in n for n in notes.statuses), notes.statuses
    assert notes.info.trainable_parameters < 10_000 < notes.info.parameters
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["preprocessing"]["mean"] == [0.5, 0.5, 0.5]  # the normalization Lite0's weights expect
    pred = Predictor(result.checkpoint)
    top = list(pred.predict_paths([data / "coffee" / "coffee_00.jpg"], top_k=1))[0]
    assert top.label == "coffee"


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
    changed = [k for k, v in start.items() if v.is_floating_point() and not v.equal(trained[k])]
    assert changed, "stage two must update backbone weights"


def load_lite0_backbone() -> dict:
    from studio.core.config import ModelConfig
    from studio.core.models import build_model

    model = build_model(ModelConfig(arch="efficientnet_lite0", pretrained="imagenet", image_size=96), 4)
    return {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
