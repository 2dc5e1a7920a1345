"""Crafted checkpoint headers: each is refused in one line naming the field, before a network is built."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from studio.core import models
from studio.core.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.models import IMAGENET_MEAN, IMAGENET_STD, build_model
from studio.core.predict import Predictor

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def good() -> dict[str, Any]:
    cfg = RunConfig()
    cfg.model.image_size, cfg.model.width, cfg.model.blocks = 16, 4, 2
    model = build_model(cfg.model, len(CLASSES), load_weights=False)
    return make_checkpoint(model=model, config=cfg, classes=CLASSES, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                           metrics={"val_acc": 0.5})


def _set(*keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


def _other_weights(data: dict[str, Any]) -> None:
    """Another architecture's weights (with a head that fits) under a custom-CNN header."""
    cfg = RunConfig().model
    cfg.arch, cfg.image_size = "efficientnet_lite0", 32
    data["state_dict"] = build_model(cfg, len(CLASSES), load_weights=False).state_dict()


CRAFTED = {
    "unknown arch": (_set("arch", "arch", value="resnet9000"), "arch.arch"),
    "no mean": (_drop("preprocessing", "mean"), "preprocessing.mean"),
    "image_size 0": (_set("arch", "image_size", value=0), "arch.image_size"),
    "preprocessing size 0": (_set("preprocessing", "image_size", value=0), "preprocessing.image_size"),
    "version abc": (_set("version", value="abc"), "version"),
    "version float": (_set("version", value=1.5), "version"),
    "width 100000": (_set("arch", "width", value=100_000), "arch.width"),
    "width within range but too large": (
        lambda d: (d["arch"].update(width=1024, image_size=1024, blocks=3), d["preprocessing"].update(image_size=1024)),
        "arch.width"),
    "classes a string": (_set("classes", value="cat,dog,fox"), "classes"),
    "classes of numbers": (_set("classes", value=[1, 2, 3]), "classes"),
    "fewer classes than the head": (_set("classes", value=["cat", "dog"]), "classes"),
    "more classes than the head": (_set("classes", value=[*CLASSES, "owl"]), "classes"),
    "no state": (_drop("state_dict"), "state_dict"),
    "std zero": (_set("preprocessing", "std", value=[0.0, 0.2, 0.2]), "preprocessing.std"),
    "unknown mode": (_set("arch", "mode", value="sideways"), "arch.mode"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_header_is_refused_in_one_line_naming_the_field(
    name: str, good: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, field = CRAFTED[name]
    data = copy.deepcopy(good)
    change(data)
    path = tmp_path / "crafted.pt"
    save_checkpoint(data, path)
    built: list[object] = []
    monkeypatch.setattr(models, "build_model", lambda *a, **k: built.append(a) or pytest.fail("built"))
    for attempt in (lambda: load_checkpoint(path), lambda: Predictor(data)):
        with pytest.raises(CheckpointError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and len(message) < 400, message
        assert field in message, message
    assert not built


def test_foreign_weights_are_one_line(good: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(good)
    _other_weights(data)
    path = tmp_path / "foreign.pt"
    save_checkpoint(data, path)
    with pytest.raises(CheckpointError) as caught:
        Predictor(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert "do not fit the custom network" in message and "foreign.pt" in message


def test_own_and_older_checkpoints_and_new_optional_fields_load(good: dict[str, Any], tmp_path: Path) -> None:
    """Optional keys a newer studio adds (plain tensors and numbers) are accepted; an older file without
    'training' or 'metrics' still loads."""
    data = copy.deepcopy(good)
    data["arch"]["mode"], data["arch"]["pretrained"] = "head", "/gone/weights.pth"  # as a transfer run saves it
    data["temperature"] = 1.7
    data["calibration"] = {"ece_before": 0.2, "ece_after": 0.03}
    data["familiarity"] = {"means": torch.zeros(3, 8), "precision": torch.eye(8), "threshold": 4.0, "share": 0.95,
                           "space": "network"}
    del data["training"], data["metrics"]
    path = tmp_path / "model.pt"
    save_checkpoint(data, path)
    predictor = Predictor(path)
    assert predictor.classes == CLASSES
    probs = predictor.probabilities(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    assert probs.shape == (1, 3) and torch.allclose(probs.sum(), torch.tensor(1.0))
