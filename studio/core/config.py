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
from studio.core.group_rule import check_rule
from studio.core.settings import FieldSpec, section_specs, setting, validate_section

AUGMENT_PRESETS = ("none", "natural", "medical", "aerial")
TRANSFER_MODES = ("head", "last-block", "full", "two-stage")
LITE0_FEATURES = ("final", "stages")
OPTIMIZERS = ("adamw", "sgd", "lbfgs")
SCHEDULES = ("cosine", "step", "onecycle", "constant")
IMBALANCE = ("none", "weighted-loss", "balanced-sampler")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
RECIPE_MODES = ("recommended", "applied", "manual")
BUDGETS = ("minute", "ten-minutes", "best")
FAMILIARITY_SPACES = ("auto", "network", "reference")
# The held-out test share: -1 asks for the automatic rule, a share of AUTO_TEST_SHARE when every class
# has at least TEST_FLOOR images (below that a test set would be too small to mean anything).
AUTO_TEST = -1.0
AUTO_TEST_SHARE = 0.2
TEST_FLOOR = 30

CONFIG_VERSION = 1


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")


def _architectures() -> tuple[str, ...]:
    return tuple(list_architectures())


@dataclass
class DataConfig:
    """Where the images are and how they are divided."""

    root: str = setting("", "Image folder", "image folder: one sub-folder per class", option="--data", metavar="DIR")
    val_fraction: float = setting(0.2, "Validation", "share of images for validation", low=0.0,
                                  high=0.9, percent=True, option="--val", metavar="FRACTION")
    test_fraction: float = setting(AUTO_TEST, "Test", "share of images held out for a final test; -1 = automatic: "
                                   f"{AUTO_TEST_SHARE:g} when every class has at least {TEST_FLOOR} images, else none",
                                   low=0.0, high=0.9, auto=AUTO_TEST, percent=True, option="--test",
                                   metavar="FRACTION")
    seed: int = setting(0, "Seed", "random seed of the split, the first weights and the batch order", low=0,
                        high=2**31 - 1)
    group_by: str = setting("", "Keep together", "keep related images on one side of the split: the sub-folder "
                            "below each class folder (folder, or folder:N for deeper), or a file-name pattern with "
                            "one group, e.g. '^(P\\d+)_'", option="--group-by", metavar="folder|folder:N|PATTERN")
    near_duplicates: bool = setting(True, "Keep near-copies together", "near-copies of one picture (re-encoded, "
                                    "resized, slightly shifted) stay on one side of the split")
    # Decoded images above this many megabytes spill from memory to a disk cache.
    cache_memory_mb: int = setting(2048, "Memory for images", "megabytes of decoded images kept in memory; the rest "
                                   "spill to a disk cache", low=0, high=1 << 20, unit="MB", metavar="MB")

    def validate(self) -> None:
        validate_section(self, "data")
        if self.val_fraction + (AUTO_TEST_SHARE if self.test_fraction == AUTO_TEST else self.test_fraction) >= 0.95:
            raise ConfigError("data.val_fraction", "validation and test together leave too few training images")
        check_rule(self.group_by)


_CHANCE = dict(low=0.0, high=1.0, percent=True)


@dataclass
class AugmentConfig:
    """Per-image random changes applied to training images only.

    Each field is one toggle with its strength, so a pane maps onto it one to
    one. Probabilities are 0..1; 0 switches the augmentation off.
    """

    preset: str = setting("none", "Preset", "a named set of augmentations: " + ", ".join(AUGMENT_PRESETS),
                          choices=AUGMENT_PRESETS + ("custom",), option="--augment", metavar="PRESET")
    hflip: float = setting(0.0, "Mirror left–right", "share of training images mirrored left to right", **_CHANCE)
    vflip: float = setting(0.0, "Mirror top–bottom", "share of training images mirrored top to bottom", **_CHANCE)
    rotation: float = setting(0.0, "Tilt", "rotate by a random angle up to this many degrees either way; "
                              "the corners are filled with the picture's mirrored edge, not black", low=0.0,
                              high=180.0, unit="°", metavar="DEGREES")
    rotate90: bool = setting(False, "Turn by right angles", "turn by 0, 90, 180 or 270 degrees at random")
    # At least half the picture: tighter crops cut the object off.
    crop_scale: float = setting(1.0, "Zoom in", "random crops that always hold the middle of the picture keep "
                                "at least this share of it; 1 = off",
                                low=0.5, high=1.0, percent=True, metavar="FRACTION")
    color_jitter: float = setting(0.0, "Vary light and colour", "strength of random brightness, contrast and "
                                  "saturation changes", **_CHANCE)
    grayscale: float = setting(0.0, "Sometimes grey", "share of training images turned grey", **_CHANCE)
    erasing: float = setting(0.0, "Hide a patch", "share of training images with a random rectangle covered",
                             **_CHANCE)

    def validate(self) -> None:
        validate_section(self, "augment")

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

    arch: str = setting("custom", "Network", "the network to train", choices=_architectures)
    pretrained: str = setting("none", "Weights", "starting weights: none, imagenet or a weights file",
                              metavar="imagenet|none|PATH")
    mode: str = setting("full", "What learns", "which layers learn when starting from pretrained weights",
                        choices=TRANSFER_MODES, choice_labels={
                            "two-stage": "Two stages: new layer first, then all", "head": "Only the new last layer",
                            "last-block": "The last block and the new layer", "full": "Every layer"})
    image_size: int = setting(64, "Image size", "images are resized to this many pixels square", low=8, high=1024,
                              unit="px")
    # Custom CNN only.
    blocks: int = setting(4, "Blocks", "custom CNN: number of conv blocks; each finds patterns, then halves the "
                          "picture", low=1, high=8)
    width: int = setting(32, "Width", "custom CNN: channels of the first block (doubling per block)", low=1, high=1024)
    dropout: float = setting(0.2, "Dropout", "share of features switched off at random while learning: fights "
                             "memorizing", low=0.0, high=0.95)
    kernel_size: int = setting(3, "Kernel size", "custom CNN: how many neighbouring pixels each filter looks at",
                               choices=(1, 3, 5, 7))
    # EfficientNet-Lite0 only.
    features: str = setting("final", "Looks at", "EfficientNet-Lite0: what its new last layer reads; every stage adds "
                            "how surfaces look (grain, weave, stain) to what is in the picture",
                            choices=LITE0_FEATURES, choice_labels={
                                "final": "What is in the picture (last layer)",
                                "stages": "Also how surfaces look (every stage)"})

    def validate(self) -> None:
        validate_section(self, "model")
        if self.pretrained == "":
            raise ConfigError("model.pretrained", "give none, imagenet or a path to a weights file")
        if self.pretrained not in ("none", "imagenet") and not Path(self.pretrained).is_file():
            raise ConfigError("model.pretrained", f"{self.pretrained}: no such weights file")
        if self.features != "final" and self.arch != "efficientnet_lite0":
            raise ConfigError("model.features", f"{self.features!r} reads EfficientNet-Lite0's stages; "
                                                f"{self.arch} uses final")
        if self.pretrained == "none" and self.mode in ("head", "last-block", "two-stage"):
            raise ConfigError(
                "model.mode", f"{self.mode!r} freezes a pretrained backbone; with --pretrained none use full"
            )


@dataclass
class TrainConfig:
    """How the optimizer walks: the numbers of a training recipe."""

    epochs: int = setting(15, "Epochs", "passes over all training images", low=1, high=10_000, unit="epochs")
    batch_size: int = setting(64, "Batch size", "images per update; lower it if memory runs out", low=1, high=65_536)
    lr: float = setting(1e-3, "Learning rate", "how big a step each update takes; too high and the loss jumps about "
                        "or becomes NaN", low=1e-6, high=1.0)
    backbone_lr_scale: float = setting(0.1, "Pretrained layers' rate", "pretrained layers learn at the "
                                       "learning rate times this, the new last layer at the full rate, so what they "
                                       "know is adjusted, not overwritten; raise it towards 1 for images unlike "
                                       "photographs", low=0.0,
                                       high=10.0, metavar="FACTOR")
    optimizer: str = setting("adamw", "Optimizer", "how each update is computed", choices=OPTIMIZERS,
                             choice_labels={"adamw": "AdamW (adaptive, a safe default)", "sgd": "SGD with momentum",
                                            "lbfgs": "Exact solve (only the new last layer, no augmentation)"})
    momentum: float = setting(0.9, "Momentum", "SGD: how much of the previous step carries into the next", low=0.0,
                              high=0.999)
    weight_decay: float = setting(1e-4, "Weight decay", "pulls weights towards zero a little each step: fights "
                                  "memorizing; raise it (0.01-0.05) when training accuracy runs far ahead of "
                                  "validation accuracy", low=0.0, high=1.0)
    schedule: str = setting("cosine", "Schedule", "how the learning rate changes over the run", choices=SCHEDULES,
                            choice_labels={"cosine": "Cosine: slow down smoothly", "onecycle": "One-cycle: up, then "
                                           "down", "step": "Step: divide by 10 every 10 epochs",
                                           "constant": "Constant"})
    warmup_epochs: float = setting(1.0, "Warm-up", "epochs over which the learning rate rises to its full value, "
                                   "so the first updates cannot wreck a pretrained network; lengthen it if the loss "
                                   "jumps at the start",
                                   low=0.0, high=1000.0, option="--warmup", metavar="EPOCHS")
    step_epochs: int = setting(10, "Step every", "step schedule: multiply the learning rate by the step factor "
                               "every this many epochs", low=1, high=10_000, unit="epochs")
    step_gamma: float = setting(0.1, "Step factor", "step schedule: what the learning rate is multiplied by",
                                low=0.0, high=1.0)
    label_smoothing: float = setting(0.0, "Label smoothing", "keeps the model from being certain (0.1 is common): "
                                     "helps when some labels may be wrong or classes overlap; 0 = off", low=0.0,
                                     high=0.5)
    imbalance: str = setting("none", "Class sizes", "how classes of very different sizes are treated",
                             choices=IMBALANCE, choice_labels={
                                 "none": "Treat all images alike", "weighted-loss": "Count rare classes more",
                                 "balanced-sampler": "Show every class equally often"})
    early_stopping: int = setting(0, "Stop early", "epochs without improvement before the run ends; 0 = off",
                                  low=0, high=10_000, unit="epochs", metavar="PATIENCE")
    grad_clip: float = setting(0.0, "Gradient clipping", "largest gradient norm allowed (0 = off); try 1-5 if the "
                                "loss suddenly jumps or becomes NaN", low=0.0, high=1e6)
    head_epochs: int = setting(2, "Warm-up of the new layer", "two-stage mode: epochs in which only the new last "
                               "layer learns", low=0, high=10_000, unit="epochs", metavar="EPOCHS")
    precision: str = setting("auto", "Number format", "auto picks bf16 where it is fast, else fp32",
                             choices=PRECISIONS)
    device: str = setting("auto", "Device", "where to train: auto takes a GPU when there is one; cuda:N one GPU of "
                          "several", metavar="auto|cpu|cuda|cuda:N|mps")
    channels_last: bool = setting(True, "Channels-last memory layout", "faster convolutions on most CPUs and GPUs")
    compile: bool = setting(False, "Compile the network first", "turns the network into faster native code before "
                            "training starts: each step is quicker, but the first waits while it compiles (about a "
                            "minute on a small computer), so it pays off only on longer runs")
    # Counted from the first epoch: the recipe already shortened the run by what looking at the images took.
    time_limit: float = setting(0.0, "Time limit", "seconds of training after which the run ends with its best "
                                "weights; 0 = none", low=0.0, high=1e7, unit="s", metavar="SECONDS")
    # After training: the share of validation images the "unlike the training images" limit lets pass,
    # and which features it measures in ("auto": the bundled reference network's whenever it is installed).
    familiar_share: float = setting(0.95, "Familiar share", "share of validation images the 'unlike the training "
                                    "images' limit lets pass", low=0.5, high=0.999, metavar="SHARE")
    familiarity_space: str = setting("auto", "Familiarity measured in", "features the familiarity is measured in: "
                                     "auto, network or reference", choices=FAMILIARITY_SPACES)

    def validate(self) -> None:
        validate_section(self, "train")
        # "cuda:1" names one GPU of several; the plain names pick automatically.
        if not (isinstance(self.device, str) and self.device.startswith("cuda:") and self.device[5:].isdigit()):
            _choice("train.device", self.device, DEVICES)


@dataclass
class RecipeConfig:
    """Whether the studio chooses the settings itself, and in how much time.

    "recommended": at the start of a run the automatic recipe fills in the model, augmentation
    and training settings, except those named in `pinned` (what the user set by hand); it then
    becomes "applied", so a saved config repeats the same run. "manual": the settings as given.
    A config made in Python is manual; the window and `studio train` start from "recommended".
    """

    mode: str = setting("manual", "Settings", "recommended: the studio chooses; manual: as given",
                        choices=RECIPE_MODES)
    budget: str = setting("minute", "Time", "time for the recommended settings", choices=BUDGETS,
                          choice_labels={"minute": "About a minute", "ten-minutes": "About 10 minutes",
                                         "best": "As good as possible"})
    pinned: list[str] = setting(label="Set by hand", help="settings the recipe leaves alone",
                                default_factory=list)
    reason: str = setting("", "Why", "the recipe's own sentence: what it chose and why")

    def validate(self) -> None:
        validate_section(self, "recipe")
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
        if self.train.optimizer == "lbfgs" and (self.model.mode != "head" or self.augment.needs_pixels):
            raise ConfigError("train.optimizer", "the exact solve (lbfgs) trains only the new last layer of a frozen "
                                                 "network (--mode head) without augmentation (--augment none)")
        if self.train.optimizer == "lbfgs" and self.train.imbalance == "balanced-sampler":
            raise ConfigError("train.imbalance", "the exact solve sees every image at once, so it cannot sample "
                                                 "classes equally often; use weighted-loss to count rare classes more")
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


SECTIONS: dict[str, type] = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "train": TrainConfig,
                             "recipe": RecipeConfig}


def field_spec(key: str) -> FieldSpec:
    """The metadata of one field by its dotted name, "train.lr": what a window control or an option is built from."""
    section, name = key.split(".")
    for spec in section_specs(section, SECTIONS[section]):
        if spec.name == name:
            return spec
    raise KeyError(key)
