"""The networks a user can choose, and the one shape every one of them is given.

Each architecture is a registry entry: its facts (`ArchInfo`, kept torch-free
in `architectures`) and here a builder that returns its feature extractor cut
from its classifier. `StudioModel` then wraps every one as backbone + head, so that
freezing, learning rates per part, feature caching and the layer-by-layer
inspection are written once instead of once per architecture.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from studio.core import effnet_lite, weights
from studio.core.architectures import (  # noqa: F401 - re-exported: these lived here before
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    ArchInfo,
    architecture_info,
    list_architectures,
    register_info,
)
from studio.core.config import ModelConfig
from studio.core.errors import ConfigError
from studio.core.layers import list_layers

PARTS = ("head", "last-block", "all")


@dataclass
class BackboneParts:
    """What a builder hands back: the network without its classifier, and how to treat it.

    last_block: module paths inside the backbone that "last-block" training unfreezes.
    classifier_key: where the original network kept its final Linear, so that a file
    saved from the uncut network can still fill the head when the class count fits.
    """

    backbone: nn.Module
    feature_dim: int
    dropout: float | None
    last_block: tuple[str, ...]
    classifier_key: str | None = None
    # Features on scales far apart (stage statistics) get a BatchNorm before the new layer, so that one
    # learning rate suits every one of them.
    standardise: bool = False


# A builder gets the run's model config and, when ImageNet weights were asked for,
# the state dict of the uncut network, which it must load strictly before cutting.
Builder = Callable[[ModelConfig, "dict[str, Tensor] | None"], BackboneParts]
_BUILDERS: dict[str, Builder] = {}


def register_architecture(info: ArchInfo, builder: Builder | None = None) -> Builder | Callable[[Builder], Builder]:
    """Add an architecture to the list the window and the CLI offer; usable as a decorator."""

    def add(fn: Builder) -> Builder:
        register_info(info)
        _BUILDERS[info.name] = fn
        return fn

    return add if builder is None else add(builder)


# ---------------------------------------------------------------- the custom CNN


def _custom_cnn(cfg: ModelConfig, imagenet: dict[str, Tensor] | None) -> BackboneParts:
    if imagenet is not None:
        raise ConfigError("model.pretrained", "the custom CNN has no ImageNet weights")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    for index in range(cfg.blocks):
        out = min(cfg.width * 2**index, cfg.width * 8)  # doubling per halving of the image, capped to stay small
        layers[f"block{index + 1}"] = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(channels, out, cfg.kernel_size, padding=cfg.kernel_size // 2, bias=False),
            bn=nn.BatchNorm2d(out),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(2),
        ))
        channels = out
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten(1)
    backbone = nn.Sequential(layers)
    _check_fits(backbone, cfg)
    return BackboneParts(backbone, channels, cfg.dropout, (f"block{cfg.blocks}",))


def _check_fits(backbone: nn.Module, cfg: ModelConfig) -> None:
    """Fail at build time, in words, rather than with a shape error in the first training batch."""
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, 3, cfg.image_size, cfg.image_size))
    except RuntimeError as exc:
        need = 2**cfg.blocks
        raise ConfigError(
            "model.image_size",
            f"{cfg.image_size} px is too small for model.blocks = {cfg.blocks}: each block halves the image, "
            f"so {cfg.blocks} blocks need at least {need} px; raise model.image_size or lower model.blocks",
        ) from exc
    finally:
        backbone.train()


_BUILDERS["custom"] = _custom_cnn


# ---------------------------------------------------------------- EfficientNet-Lite0 (in effnet_lite.py)


def _efficientnet_lite0(cfg: ModelConfig, imagenet: dict[str, Tensor] | None) -> BackboneParts:
    if cfg.features == "stages":
        net, feature_dim, dropout = effnet_lite.lite0_stage_statistics(imagenet)
        return BackboneParts(net, feature_dim, dropout, effnet_lite.LAST_STAGE_BLOCK, effnet_lite.CLASSIFIER_KEY,
                             standardise=True)
    net, feature_dim, dropout = effnet_lite.lite0_features(imagenet)
    return BackboneParts(net, feature_dim, dropout, effnet_lite.LAST_BLOCK, effnet_lite.CLASSIFIER_KEY)


_BUILDERS["efficientnet_lite0"] = _efficientnet_lite0


# ---------------------------------------------------------------- torchvision backbones


def _cut_classifier(net: nn.Module, attr: str) -> tuple[int, float | None, str]:
    """Remove the final Linear (and the Dropout right before it); keep what precedes, e.g. ConvNeXt's LayerNorm."""
    old = getattr(net, attr)
    layers = list(old) if isinstance(old, nn.Sequential) else [old]
    final = layers.pop()
    if not isinstance(final, nn.Linear):
        raise TypeError(f"expected {type(net).__name__}.{attr} to end in a Linear layer, found {type(final).__name__}")
    key = f"{attr}.{len(layers)}" if isinstance(old, nn.Sequential) else attr
    dropout = layers.pop().p if layers and isinstance(layers[-1], nn.Dropout) else None
    setattr(net, attr, nn.Sequential(*layers) if layers else nn.Identity())
    return final.in_features, dropout, key


def _torchvision(name: str, classifier: str, last_block: tuple[str, ...]) -> Builder:
    def build(cfg: ModelConfig, imagenet: dict[str, Tensor] | None) -> BackboneParts:
        from torchvision.models import get_model

        net = get_model(name, weights=None)
        if imagenet is not None:
            net.load_state_dict(imagenet, strict=True)
        feature_dim, dropout, key = _cut_classifier(net, classifier)
        return BackboneParts(net, feature_dim, dropout, last_block, key)

    return build


_TORCHVISION = (
    # name (its facts are in architectures.py), attribute holding the classifier, what "last block" unfreezes
    ("resnet18", "fc", ("layer4",)),
    ("resnet50", "fc", ("layer4",)),
    ("efficientnet_b0", "classifier", ("features.7", "features.8")),
    ("efficientnet_b2", "classifier", ("features.7", "features.8")),
    ("mobilenet_v3_small", "classifier", ("features.10", "features.11", "features.12", "classifier")),
    ("mobilenet_v3_large", "classifier", ("features.14", "features.15", "features.16", "classifier")),
    ("convnext_tiny", "classifier", ("features.6", "features.7", "classifier")),
)
for _name, _classifier, _last in _TORCHVISION:
    _BUILDERS[_name] = _torchvision(_name, _classifier, _last)


# ---------------------------------------------------------------- the common wrapper


class StudioModel(nn.Module):
    """Every architecture is wrapped the same way, so freezing, feature caching and inspection need no per-arch code.

    backbone maps images [N, 3, H, W] to features [N, feature_dim]; head maps features to logits.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, feature_dim: int, arch: str,
        last_block: tuple[str, ...] = (), pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim
        self.arch = arch
        self.last_block = tuple(f"backbone.{name}" for name in last_block)
        # Decided by the config, not by whether weights were loaded, so a model rebuilt for a
        # checkpoint gets the same parameter groups as the run that saved it.
        self.pretrained = pretrained
        self.weights_note = "random initialization"
        self._frozen: list[str] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    @property
    def frozen_modules(self) -> list[str]:
        """The largest submodules with no trainable parameter: kept in eval mode while training."""
        return list(self._frozen)

    def set_trainable(self, part: str) -> None:
        """Choose what learns: "head" (backbone frozen), "last-block" (its last block(s) and the head) or "all".

        "full" is accepted for "all" so a config's transfer mode can be passed through.
        """
        part = "all" if part == "full" else part
        if part not in PARTS:
            raise ValueError(f"unknown trainable part {part!r}; choose one of {', '.join(PARTS)}")
        learn = {"head": ("head.",), "last-block": tuple(f"{m}." for m in ("head", *self.last_block)), "all": ("",)}
        for name, param in self.named_parameters():
            param.requires_grad_(name.startswith(learn[part]))
        self._frozen = []
        for name, module in self.named_modules():
            params = list(module.parameters())
            inside_frozen = any(name.startswith(f"{outer}.") for outer in self._frozen)
            if name and params and not inside_frozen and not any(p.requires_grad for p in params):
                self._frozen.append(name)
        self.train(self.training)

    def train(self, mode: bool = True) -> StudioModel:
        """Frozen parts stay in eval mode: their BatchNorm statistics must not drift to the new data,
        and their dropout / stochastic depth must not vary, or cached features would be wrong."""
        super().train(mode)
        if mode:
            for name in self._frozen:
                self.get_submodule(name).eval()
        return self

    def param_groups(self, lr: float, backbone_lr_scale: float, weight_decay: float) -> list[dict]:
        """Optimizer groups: the new head at lr, a pretrained backbone slower so it is adjusted, not overwritten.

        Biases and normalization weights get no weight decay (pulling a BatchNorm scale toward zero switches
        channels off). A backbone trained from scratch learns at the full lr. Frozen parameters are left out.
        """
        scale = backbone_lr_scale if self.pretrained else 1.0
        groups: dict[str, dict] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            part = "head" if name.startswith("head.") else "backbone"
            decay = param.ndim > 1 and not name.endswith(".bias")
            key = part if decay else f"{part}_no_decay"
            group = groups.setdefault(key, {
                "name": key, "params": [], "lr": lr * (scale if part == "backbone" else 1.0),
                "weight_decay": weight_decay if decay else 0.0,
            })
            group["params"].append(param)
        order = ("head", "head_no_decay", "backbone", "backbone_no_decay")
        return [groups[key] for key in order if key in groups]


def _studio_keys(state: dict[str, Tensor], classifier_key: str | None, head_linear: str) -> dict[str, Tensor]:
    """Rename a file saved from the uncut network (conv1.weight, fc.bias) to this wrapper's names."""
    if any(key.startswith(("backbone.", "head.")) for key in state):
        return state
    renamed = {}
    for key, value in state.items():
        if classifier_key and key.startswith(f"{classifier_key}."):
            renamed[f"{head_linear}.{key[len(classifier_key) + 1:]}"] = value
        else:
            renamed[f"backbone.{key}"] = value
    return renamed


def build_model(cfg: ModelConfig, num_classes: int, *, load_weights: bool = True) -> StudioModel:
    """The network a run config describes, with num_classes outputs.

    load_weights=False builds random weights and touches neither the network nor any weights file:
    for when a checkpoint's state dict is loaded right after.
    """
    info = architecture_info(cfg.arch)
    if num_classes < 1:
        raise ValueError(f"a classifier needs at least one class, got {num_classes}")
    source = cfg.pretrained if load_weights else "none"
    imagenet = None
    if source == "imagenet":
        if not info.imagenet:
            raise ConfigError("model.pretrained", f"{info.title} has no ImageNet weights; use none or a weights file")
        imagenet = weights.imagenet_state_dict(cfg.arch)
    builder = _BUILDERS[cfg.arch]
    parts = builder(cfg, imagenet)
    layers: list[nn.Module] = [nn.BatchNorm1d(parts.feature_dim, affine=False)] if parts.standardise else []
    layers += [] if parts.dropout is None else [nn.Dropout(parts.dropout)]
    layers.append(nn.Linear(parts.feature_dim, num_classes))
    model = StudioModel(
        parts.backbone, nn.Sequential(*layers), parts.feature_dim, cfg.arch, parts.last_block,
        pretrained=cfg.pretrained != "none",
    )
    if imagenet is not None:
        model.weights_note = "ImageNet" + (" (bundled)" if info.bundled else "")
    elif source != "none":
        state = _studio_keys(weights.state_dict_from_file(source), parts.classifier_key, f"head.{len(layers) - 1}")
        loaded, total = weights.load_into(model, state, source=source)
        model.weights_note = f"{source}: {loaded} of {total} tensors"
    return model


# ---------------------------------------------------------------- inspection


@dataclass(frozen=True)
class LayerRow:
    """One line of the layer table: where a module sits, what it outputs, what it holds."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: bool


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) number of parameter values."""
    total = trainable = 0
    for param in model.parameters():
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return total, trainable


def summarize(model: nn.Module, image_size: int) -> list[LayerRow]:
    """The layer table: leaves, blocks down to three levels and any module with parameters of its own.

    Rows come from the studio's one layer walk (`layers.list_layers`, a real forward pass); each
    counts only its own parameters, so the table's column adds up to the model's total.
    """
    modules = dict(model.named_modules())
    rows = []
    for info in list_layers(model, image_size, hidden=True):
        own = sum(p.numel() for p in modules[info.name].parameters(recurse=False))
        # e.g. ConvNeXt's layer scale: a parameter on a block, not on a leaf
        if info.name.count(".") < 3 or info.leaf or own:
            rows.append(LayerRow(info.name, info.kind, info.output_shape, own, info.trainable))
    return rows
