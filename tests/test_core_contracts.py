"""Promises the rest of the studio relies on: no Qt in core, safe checkpoints, strict configs."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import studio.core
from studio.core.augment import augment_batch, build_train_transform, channel_stats, normalize_batch
from studio.core.checkpoint import CheckpointError, load_checkpoint
from studio.core.config import AugmentConfig, ConfigError, RunConfig
from studio.core.loop import Schedule

ROOT = Path(__file__).resolve().parent.parent


def test_core_imports_no_qt() -> None:
    """Import every core module with Qt made unimportable: the engine must not need it."""
    modules = [m.name for m in pkgutil.iter_modules(studio.core.__path__, "studio.core.")]
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'):
            raise ImportError('Qt is blocked in this test: ' + name)
sys.meta_path.insert(0, Block())
import importlib
for name in {modules!r}:
    importlib.import_module(name)
import studio.cli
bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6')]
assert not bad, bad
print(len({modules!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10


class Evil:
    """Unpickling this would call os.system: the classic checkpoint attack."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "classification-studio-checkpoint", "version": 1, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_non_studio_or_broken_files_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a Classification Studio checkpoint"):
        load_checkpoint(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no best.pt"):
        load_checkpoint(tmp_path)


def test_config_round_trip_and_field_named_errors(tmp_path: Path) -> None:
    cfg = RunConfig()
    cfg.data.root = "/data"
    cfg.augment = AugmentConfig.from_preset("aerial")
    cfg.train.epochs = 7
    cfg.save(tmp_path / "run.json")
    assert RunConfig.load(tmp_path / "run.json") == cfg

    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"train": {"epochz": 3}})
    assert err.value.field == "train.epochz" and "epochs" in str(err.value)
    with pytest.raises(ConfigError, match="train.optimizer.*adamw, sgd"):
        bad = RunConfig()
        bad.train.optimizer = "adam"
        bad.validate()
    with pytest.raises(ConfigError, match="model.arch"):
        bad = RunConfig()
        bad.model.arch = "resnet9000"
        bad.validate()
    with pytest.raises(ConfigError, match="model.mode"):
        bad = RunConfig()
        bad.model.mode = "head"  # freezing a randomly initialised backbone makes no sense
        bad.validate()
    with pytest.raises(ConfigError, match="whole number"):
        RunConfig.from_dict(json.loads('{"train": {"epochs": "ten"}}'))


def test_augmentation_is_drawn_per_image_and_eval_is_deterministic() -> None:
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    img[:, :, :8] = 255  # left half white: a flip is visible
    batch = img.expand(64, 3, 16, 16).clone()
    flip = build_train_transform(AugmentConfig(hflip=0.5), 16)
    out = augment_batch(batch, flip)
    flipped = (out[:, 0, 0, 0] == 0).sum().item()
    assert 10 < flipped < 54, "flips must be drawn per image, not once per batch"
    assert build_train_transform(AugmentConfig(), 16) is None
    medical = AugmentConfig.from_preset("medical")
    assert medical.hflip == 0 and medical.vflip == 0 and 0 < medical.rotation <= 10
    aerial = AugmentConfig.from_preset("aerial")
    assert aerial.hflip and aerial.vflip and aerial.rotate90
    full = AugmentConfig(hflip=0.5, vflip=0.5, rotation=20, rotate90=True, crop_scale=0.5, color_jitter=0.4,
                         grayscale=0.5, erasing=0.5)
    res = augment_batch(batch, build_train_transform(full, 16))
    assert res.shape == batch.shape and res.dtype == torch.uint8
    assert not torch.equal(res, batch)
    a = normalize_batch(batch, (0.5,) * 3, (0.25,) * 3)
    assert torch.equal(a, normalize_batch(batch, (0.5,) * 3, (0.25,) * 3))
    assert a.max().item() == pytest.approx(2.0) and a.min().item() == pytest.approx(-2.0)


def test_channel_stats_match_numpy() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8, generator=g) for _ in range(3)]
    mean, std = channel_stats(iter(batches))
    allpix = torch.cat(batches).double() / 255
    assert mean == pytest.approx(allpix.mean(dim=(0, 2, 3)).tolist(), abs=1e-5)
    assert std == pytest.approx(allpix.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-5)


@pytest.mark.parametrize("kind", ["cosine", "step", "onecycle", "constant"])
def test_schedules_warm_up_and_decay(kind: str) -> None:
    s = Schedule(kind, total_steps=100, warmup_steps=10, steps_per_epoch=10, step_epochs=3, step_gamma=0.1)
    assert s.factor(0) < 0.1
    assert s.factor(10) == pytest.approx(1.0, abs=0.05) or kind == "onecycle"
    if kind == "constant":
        assert s.factor(99) == 1.0
    elif kind == "step":
        assert s.factor(35) == pytest.approx(0.1)
    else:
        assert s.factor(99) < 0.01


def test_augmentation_draws_only_from_the_generator_it_is_given() -> None:
    """What the window does meanwhile (preview, model page) must not change a run's augmentation."""
    full = AugmentConfig(hflip=0.5, vflip=0.5, rotation=20, rotate90=True, crop_scale=0.5, color_jitter=0.4,
                         grayscale=0.5, erasing=0.5)
    transform = build_train_transform(full, 16)
    batch = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    before = torch.random.get_rng_state()
    first = augment_batch(batch, transform, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), before), "the process-wide generator was used"
    torch.rand(1000)  # another thread drawing from the process-wide generator
    again = augment_batch(batch, transform, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment_batch(batch, transform, torch.Generator().manual_seed(6)))
