"""The run config: the single source of truth for one training run.

Every knob a user can turn in the window or on the command line lives in one
of these dataclasses. A config is validated when it is made, so a bad value is
reported once, by field name, before any image is decoded; it is saved as JSON
next to every checkpoint so the run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.core.architectures import list_architectures
from studio.core.errors import ConfigError

AUGMENT_PRESETS = ("none", "natural", "medical", "aerial")
TRANSFER_MODES = ("head", "last-block", "full", "two-stage")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "onecycle", "constant")
IMBALANCE = ("none", "weighted-loss", "balanced-sampler")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
RECIPE_MODES = ("recommended", "applied", "manual")
BUDGETS = ("minute", "ten-minutes", "best")
FAMILIARITY_SPACES = ("auto", "network", "reference")

CONFIG_VERSION = 1


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")


def _range(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (low <= value <= high):
        raise ConfigError(name, f"{value!r} must be a number between {low} and {high}")


@dataclass
class DataConfig:
    """Where the images are and how they are divided."""

    root: str = ""
    val_fraction: float = 0.2
    # A share held out for the final test; -1 = automatic: 0.2 when every class has enough images.
    test_fraction: float = -1.0
    seed: int = 0
    # Images that belong together stay on one side of the split: "" (none), "folder" or "folder:N"
    # (the sub-folder N levels below the class folder), or a file-name pattern with one group.
    group_by: str = ""
    # Near-copies of one picture (re-encoded, resized, slightly shifted) are grouped as well.
    near_duplicates: bool = True
    # Decoded images above this many megabytes spill from memory to a disk cache.
    cache_memory_mb: int = 2048

    def validate(self) -> None:
        _range("data.val_fraction", self.val_fraction, 0.0, 0.9)
        if self.test_fraction != -1.0:
            _range("data.test_fraction", self.test_fraction, 0.0, 0.9)
        if self.val_fraction + max(self.test_fraction, 0.2) >= 0.95:
            raise ConfigError("data.val_fraction", "validation and test together leave too few training images")
        _range("data.seed", self.seed, 0, 2**31 - 1)
        _range("data.cache_memory_mb", self.cache_memory_mb, 0, 1 << 20)
        from studio.core.splits import check_rule  # late: splits imports this module

        check_rule(self.group_by)


@dataclass
class AugmentConfig:
    """Per-image random changes applied to training images only.

    Each field is one toggle with its strength, so a pane maps onto it one to
    one. Probabilities are 0..1; 0 switches the augmentation off.
    """

    preset: str = "none"
    hflip: float = 0.0
    vflip: float = 0.0
    rotation: float = 0.0  # degrees, uniformly in [-rotation, +rotation]
    rotate90: bool = False  # any multiple of 90 degrees: for aerial and microscopy images
    crop_scale: float = 1.0  # random resized crop keeps this fraction of the area at least; 1 = off
    color_jitter: float = 0.0  # brightness, contrast and saturation strength
    grayscale: float = 0.0
    erasing: float = 0.0

    def validate(self) -> None:
        _choice("augment.preset", self.preset, AUGMENT_PRESETS + ("custom",))
        for name in ("hflip", "vflip", "grayscale", "erasing", "color_jitter"):
            _range(f"augment.{name}", getattr(self, name), 0.0, 1.0)
        _range("augment.rotation", self.rotation, 0.0, 180.0)
        _range("augment.crop_scale", self.crop_scale, 0.05, 1.0)

    @property
    def needs_pixels(self) -> bool:
        """True when any augmentation changes pixels, so features cannot be precomputed."""
        return bool(
            self.hflip or self.vflip or self.rotation or self.rotate90 or self.crop_scale < 1.0
            or self.color_jitter or self.grayscale or self.erasing
        )

    @classmethod
    def from_preset(cls, name: str) -> AugmentConfig:
        _choice("augment.preset", name, AUGMENT_PRESETS)
        presets: dict[str, dict[str, Any]] = {
            "none": {},
            "natural": dict(hflip=0.5, rotation=10.0, crop_scale=0.7, color_jitter=0.2),
            # Orientation carries meaning in many medical images: no flips, mild rotation.
            "medical": dict(rotation=5.0, crop_scale=0.85, color_jitter=0.1),
            # Seen from above there is no "up": every flip and right-angle rotation.
            "aerial": dict(hflip=0.5, vflip=0.5, rotate90=True, rotation=15.0, crop_scale=0.8, color_jitter=0.1),
        }
        return cls(preset=name, **presets[name])


@dataclass
class ModelConfig:
    """Which network, where its starting weights come from, what of it trains."""

    arch: str = "custom"
    pretrained: str = "none"  # "none", "imagenet" or a path to a weights file
    mode: str = "full"
    image_size: int = 64
    # Custom CNN only.
    blocks: int = 4
    width: int = 32
    dropout: float = 0.2
    kernel_size: int = 3

    def validate(self) -> None:
        _choice("model.arch", self.arch, tuple(list_architectures()))
        _choice("model.mode", self.mode, TRANSFER_MODES)
        _range("model.image_size", self.image_size, 8, 1024)
        _range("model.blocks", self.blocks, 1, 8)
        _range("model.width", self.width, 1, 1024)
        _range("model.dropout", self.dropout, 0.0, 0.95)
        if self.kernel_size not in (1, 3, 5, 7):
            raise ConfigError("model.kernel_size", f"{self.kernel_size!r} is not one of 1, 3, 5, 7")
        if self.pretrained == "":
            raise ConfigError("model.pretrained", "give none, imagenet or a path to a weights file")
        if self.pretrained not in ("none", "imagenet") and not Path(self.pretrained).is_file():
            raise ConfigError("model.pretrained", f"{self.pretrained}: no such weights file")
        if self.pretrained == "none" and self.mode in ("head", "last-block", "two-stage"):
            raise ConfigError(
                "model.mode", f"{self.mode!r} freezes a pretrained backbone; with --pretrained none use full"
            )


@dataclass
class TrainConfig:
    """How the optimizer walks: the numbers of a training recipe."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1  # backbone learns at lr * this; the new head at lr
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    step_epochs: int = 10  # step schedule: multiply lr by step_gamma every this many epochs
    step_gamma: float = 0.1
    label_smoothing: float = 0.0
    imbalance: str = "none"
    early_stopping: int = 0  # epochs without improvement before stopping; 0 = off
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    head_epochs: int = 2  # two-stage mode: epochs of head warm-up before unfreezing
    precision: str = "auto"
    device: str = "auto"
    channels_last: bool = True
    time_limit: float = 0.0  # seconds of training after which the run ends with its best weights; 0 = none
    # After training: the share of validation images the "unlike the training images" limit lets pass,
    # and which features it measures in ("auto": the model's own when pretrained, else the reference network's).
    familiar_share: float = 0.95
    familiarity_space: str = "auto"

    def validate(self) -> None:
        _range("train.epochs", self.epochs, 1, 10_000)
        _range("train.batch_size", self.batch_size, 1, 65_536)
        _range("train.lr", self.lr, 1e-8, 10.0)
        _range("train.backbone_lr_scale", self.backbone_lr_scale, 0.0, 10.0)
        _choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _range("train.momentum", self.momentum, 0.0, 0.999)
        _range("train.weight_decay", self.weight_decay, 0.0, 1.0)
        _choice("train.schedule", self.schedule, SCHEDULES)
        _range("train.warmup_epochs", self.warmup_epochs, 0.0, 1000.0)
        _range("train.step_epochs", self.step_epochs, 1, 10_000)
        _range("train.step_gamma", self.step_gamma, 0.0, 1.0)
        _range("train.label_smoothing", self.label_smoothing, 0.0, 0.5)
        _choice("train.imbalance", self.imbalance, IMBALANCE)
        _range("train.early_stopping", self.early_stopping, 0, 10_000)
        _range("train.grad_clip", self.grad_clip, 0.0, 1e6)
        _range("train.head_epochs", self.head_epochs, 0, 10_000)
        _choice("train.precision", self.precision, PRECISIONS)
        # "cuda:1" names one GPU of several; the plain names pick automatically.
        if not (isinstance(self.device, str) and self.device.startswith("cuda:") and self.device[5:].isdigit()):
            _choice("train.device", self.device, DEVICES)
        _range("train.familiar_share", self.familiar_share, 0.5, 0.999)
        _choice("train.familiarity_space", self.familiarity_space, FAMILIARITY_SPACES)
        _range("train.time_limit", self.time_limit, 0.0, 1e7)


@dataclass
class RecipeConfig:
    """Whether the studio chooses the settings itself, and in how much time.

    "recommended": at the start of a run the automatic recipe fills in the model, augmentation
    and training settings, except those named in `pinned` (what the user set by hand); it then
    becomes "applied", so a saved config repeats the same run. "manual": the settings as given.
    A config made in Python is manual; the window and `studio train` start from "recommended".
    """

    mode: str = "manual"
    budget: str = "minute"
    pinned: list[str] = field(default_factory=list)
    reason: str = ""  # the recipe's own sentence: what it chose and why

    def validate(self) -> None:
        _choice("recipe.mode", self.mode, RECIPE_MODES)
        _choice("recipe.budget", self.budget, BUDGETS)
        if not isinstance(self.pinned, list) or not all(isinstance(p, str) for p in self.pinned):
            raise ConfigError("recipe.pinned", "must be a list of setting names such as train.epochs")


@dataclass
class RunConfig:
    """Everything that decides what a run does; nothing else is read by the trainer."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    name: str = ""
    version: int = CONFIG_VERSION

    def validate(self) -> RunConfig:
        self.data.validate()
        self.augment.validate()
        self.model.validate()
        self.train.validate()
        self.recipe.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Build from JSON-like data, refusing unknown keys by name (a typo must not pass silently)."""
        if not isinstance(raw, dict):
            raise ConfigError("config", "must be a JSON object")
        sections = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "train": TrainConfig,
                    "recipe": RecipeConfig}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                kwargs[key] = _section(key, sections[key], value)
            elif key in ("name", "version"):
                kwargs[key] = value
            else:
                raise ConfigError(key, f"unknown section; expected one of {', '.join(sections)}")
        if kwargs.get("version", CONFIG_VERSION) > CONFIG_VERSION:
            raise ConfigError("version", f"config version {kwargs['version']} is newer than this studio")
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        from studio.core.atomic import write_text

        write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError("config", f"cannot read {path}: {exc}") from exc
        return cls.from_dict(raw)


def _section(name: str, kind: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(name, "must be a JSON object")
    known = {f.name: f for f in fields(kind)}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown setting; expected one of {', '.join(known)}")
        expected = known[key].type
        if expected in ("float",) and isinstance(value, int) and not isinstance(value, bool):
            raw[key] = float(value)
        elif expected == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ConfigError(f"{name}.{key}", f"{value!r} must be a whole number")
        elif expected == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{name}.{key}", f"{value!r} must be true or false")
        elif expected == "str" and not isinstance(value, str):
            raise ConfigError(f"{name}.{key}", f"{value!r} must be text")
    return kind(**raw)
