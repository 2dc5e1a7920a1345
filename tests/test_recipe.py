"""The automatic recipe: choices on made-up data sets and computers, its sentence, and what it leaves alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.core.config import RunConfig
from studio.core.recipe import (
    DataProfile,
    Hardware,
    choose,
    estimate_sentence,
    linear_probe,
    measure_rate,
    profile_images,
)

CPU2 = Hardware("cpu", 2, False)
CPU2_BF16 = Hardware("cpu", 2, True)
GPU = Hardware("cuda", 16, True)


def rate(per_second: float):
    return lambda arch, size, augmented: per_second * (64 / size) ** 2 / (8 if arch != "custom" else 1)


def digits_like(n: int = 150) -> DataProfile:
    return DataProfile({str(d): n for d in range(10)}, native_size=32, grey=True, photo_like=False)


def photos_like(n: int = 60, size: int = 256) -> DataProfile:
    return DataProfile({f"c{i}": n for i in range(12)}, native_size=size, grey=False, photo_like=True)


def test_small_grey_images_get_a_small_network_at_their_own_size_without_flips() -> None:
    recipe = choose(digits_like(), CPU2, "minute", probe=0.8, rate=rate(3000))
    s = recipe.settings
    assert s["model.arch"] == "custom" and s["model.image_size"] == 32 and s["model.blocks"] == 3
    assert recipe.augment_preset == "medical"  # no mirror images of digits
    assert "32 px" in recipe.reason and "80%" in recipe.reason and recipe.reason.count(".") <= 2


def test_features_that_already_separate_the_classes_choose_the_pretrained_network() -> None:
    cpu = choose(photos_like(), CPU2, "minute", probe=0.97, rate=rate(3000))
    assert cpu.settings["model.arch"] == "efficientnet_lite0" and cpu.settings["model.mode"] == "head"
    assert cpu.augment_preset == "none"  # frozen features computed once need unchanging pixels
    # Computed once, read at every stage, and the last layer solved with more caution for fewer images.
    assert (cpu.settings["model.features"], cpu.settings["train.optimizer"]) == ("stages", "lbfgs")
    fewer = choose(photos_like(n=20), CPU2, "minute", probe=0.97, rate=rate(3000)).settings["train.weight_decay"]
    assert fewer > cpu.settings["train.weight_decay"] > 0
    cfg = RunConfig()
    cfg.data.root = "x"
    assert cpu.apply(cfg).train.optimizer == "lbfgs"
    cfg = RunConfig()
    cfg.data.root, cfg.augment.hflip, cfg.recipe.pinned = "x", 0.5, ["augment.hflip"]
    walked = cpu.apply(cfg).train  # the user's flips change the pixels every epoch: no exact solve
    assert (walked.optimizer, walked.epochs) == ("adamw", 30)
    gpu = choose(photos_like(), GPU, "ten-minutes", probe=0.97, rate=rate(200_000))
    assert gpu.settings["model.mode"] == "two-stage" and gpu.settings["model.image_size"] == 224
    assert gpu.augment_preset == "natural" and "GPU" in gpu.reason
    assert (gpu.settings["model.features"], gpu.settings["train.optimizer"]) == ("final", "adamw")


def test_epochs_follow_the_measured_speed_and_the_budget() -> None:
    slow = choose(digits_like(), CPU2, "minute", probe=None, rate=rate(80)).settings["train.epochs"]
    fast = choose(digits_like(), CPU2, "minute", probe=None, rate=rate(3000)).settings["train.epochs"]
    longer = choose(digits_like(), CPU2, "ten-minutes", probe=None, rate=rate(3000)).settings["train.epochs"]
    assert slow < fast < longer
    spent = choose(digits_like(), CPU2, "minute", probe=None, rate=rate(80), spent=40).settings["train.epochs"]
    assert spent < slow


def test_estimate_is_measured_not_assumed_and_bf16_is_never_counted_on() -> None:
    a = choose(digits_like(), CPU2, "minute", probe=None, rate=rate(3000))
    b = choose(digits_like(), CPU2_BF16, "minute", probe=None, rate=rate(3000))
    assert a.estimate_seconds == b.estimate_seconds and b.settings["train.precision"] == "fp32"
    assert choose(digits_like(), GPU, "minute", probe=None, rate=rate(3000)).settings["train.precision"] == "auto"
    assert 0 < a.estimate_seconds <= 60 * 1.2
    assert estimate_sentence(a).startswith("Estimated training time: about")


def test_large_native_images_are_not_trained_at_full_size_and_tiny_ones_not_blown_up() -> None:
    big = choose(photos_like(size=1024), CPU2, "minute", probe=0.5, rate=rate(3000)).settings["model.image_size"]
    tiny = choose(DataProfile({"a": 50, "b": 50}, 20, False, False), CPU2, "minute", probe=None,
                  rate=rate(3000)).settings["model.image_size"]
    assert big <= 96 and tiny == 24


def test_apply_keeps_what_the_user_pinned() -> None:
    recipe = choose(digits_like(), CPU2, "minute", probe=None, rate=rate(3000))
    cfg = RunConfig()
    cfg.data.root = "x"
    cfg.recipe.mode, cfg.recipe.pinned = "recommended", ["train.epochs"]
    cfg.train.epochs = 3
    recipe.apply(cfg)
    assert cfg.train.epochs == 3 and cfg.model.image_size == 32 and cfg.augment.preset == "medical"
    assert cfg.recipe.mode == "applied" and cfg.recipe.reason == recipe.reason
    own = RunConfig()
    own.recipe.pinned = ["model.arch", "augment.preset"]
    own.model.arch, own.model.image_size = "custom", 40
    recipe.apply(own)
    assert own.model.image_size == 40 and own.augment.preset == "none"


def test_profile_tells_grey_drawings_from_colour_photos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files, sizes = [], []
    for i in range(6):
        arr = np.zeros((32, 32), np.uint8)
        arr[8:24, 14:18] = 255
        Image.fromarray(arr).save(tmp_path / f"g{i}.png")
        files.append(tmp_path / f"g{i}.png")
        sizes.append((32, 32))
    grey = profile_images(files, sizes, {"a": 6})
    assert grey.grey and not grey.photo_like and grey.native_size == 32
    files, sizes = [], []
    for i in range(6):
        arr = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"c{i}.png")
        files.append(tmp_path / f"c{i}.png")
        sizes.append((120, 80))
    colour = profile_images(files, sizes, {"a": 6})
    assert not colour.grey and colour.photo_like and colour.native_size == 80


def test_linear_probe_on_separable_and_on_random_features() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    centres = rng.normal(size=(3, 32)) * 4
    separable = centres[labels] + rng.normal(size=(90, 32))
    assert linear_probe(separable, labels) > 0.95
    noise = rng.normal(size=(90, 32))
    assert linear_probe(noise, labels) < 0.6
    separable[0] = np.nan  # an undecodable image: left out, neither fatal nor spoiling the others
    assert linear_probe(separable, labels) > 0.95
    assert linear_probe(noise[:4], labels[:4]) is None


def test_rate_is_measured_on_this_computer() -> None:
    assert measure_rate("custom", 16, "plain", batch=8, repeats=1) > 0
    assert measure_rate("custom", 16, "forward", batch=8, repeats=1) > 0


def test_a_frozen_network_is_timed_by_its_forward_pass_alone() -> None:
    """Its features are computed once, without gradients: timing training steps for it cost 8 s of a
    minute's run on photo crops, and guessed the extraction's speed as a third of theirs."""
    asked: list[tuple[str, int, str]] = []

    def rate(arch: str, size: int, step: str) -> float:
        asked.append((arch, size, step))
        return 300.0

    recipe = choose(photos_like(), CPU2, "minute", probe=0.97, rate=rate)
    assert recipe.settings["model.mode"] == "head"
    assert asked == [("efficientnet_lite0", 160, "forward")]
    assert recipe.estimate_seconds == pytest.approx(12 * 60 / 300 + 5.0)


@pytest.mark.parametrize("budget", ["minute", "ten-minutes", "best"])
def test_every_budget_gives_a_valid_config(budget: str) -> None:
    cfg = RunConfig()
    cfg.data.root = "x"
    choose(photos_like(), CPU2, budget, probe=0.95, rate=rate(3000)).apply(cfg)
    cfg = RunConfig()
    cfg.data.root = "x"
    choose(digits_like(), CPU2, budget, probe=None, rate=rate(3000)).apply(cfg)
