"""Checks on a checkpoint's header, made before any network is built from it.

A checkpoint can come from anyone. Its header decides what the studio allocates
(a width of 100,000 asks for hundreds of gigabytes) and how it reads images, so
every field is checked with plain comparisons first; only then is the network
built, and only a network whose every weight the file provides with the right
shape. Each refusal is one line naming the field. Keys this studio does not know
are left alone: newer studios add optional fields (calibration, familiarity).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from studio.core.config import TRANSFER_MODES, ModelConfig
from studio.core.errors import ConfigError
from studio.core.images import RESIZE_RULE

# What building a network and one test pass through it may cost, at most.
MEMORY_BUDGET_BYTES = 4 * 1024**3
_INT_FIELDS = ("image_size", "blocks", "width", "kernel_size")


class HeaderError(ValueError):
    """One field of a checkpoint header is unusable; `field` names it as it appears in the file."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"field '{field_name}': {reason}")
        self.field = field_name


def check_header(data: Mapping[str, Any], newest_version: int) -> None:
    """Raise `HeaderError` for the first unusable field; return when the header is safe to build from."""
    _check_version(data.get("version"), newest_version)
    for key in ("arch", "classes", "preprocessing", "state_dict", "config"):
        if key not in data:
            raise HeaderError(key, "missing (damaged checkpoint)")
    arch = _check_arch(data["arch"])
    state = _check_state(data["state_dict"])
    _check_classes(data["classes"], state)
    _check_preprocessing(data["preprocessing"], arch)
    if not isinstance(data["config"], Mapping):
        raise HeaderError("config", "must be a table of settings")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, Mapping) or not all(_is_number(v, finite=False) for v in metrics.values()):
        raise HeaderError("metrics", "must map names to numbers")
    _check_budget(arch)


def arch_config(data: Mapping[str, Any]) -> ModelConfig:
    """The model config a (checked) header describes, never loading pretrained weights."""
    known = {k: v for k, v in data["arch"].items() if k in ModelConfig.__dataclass_fields__}
    arch = ModelConfig(**known)
    arch.pretrained = "none"  # the state dict replaces whatever a pretrained load would give
    arch.mode = "full"  # what trained says nothing about the network's shape (and "head" needs pretrained)
    return arch


def fit_summary(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """One line on how a file's weights differ from the network's, or "" when they fit exactly."""
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    shaped = [k for k in expected if k in given and tuple(expected[k].shape) != tuple(given[k].shape)]
    if not (missing or extra or shaped):
        return ""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (first: {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} not part of this network (first: {extra[0]})")
    if shaped:
        key = shaped[0]
        parts.append(f"{len(shaped)} of another shape (first: {key}, "
                     f"{list(given[key].shape)} where {list(expected[key].shape)} is needed)")
    return "; ".join(parts)


def _check_version(version: object, newest: int) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise HeaderError("version", f"{version!r} is not a whole number")
    if version < 1:
        raise HeaderError("version", f"{version} is not a checkpoint version")
    if version > newest:
        raise HeaderError("version", f"{version} is newer than this studio reads ({newest}); update the studio")


def _check_arch(arch: object) -> ModelConfig:
    from studio.core.models import list_architectures  # late: models imports the network builders

    if not isinstance(arch, Mapping):
        raise HeaderError("arch", "must be a table describing the network")
    name = arch.get("arch")
    if not isinstance(name, str) or name not in list_architectures():
        raise HeaderError("arch.arch", f"{name!r} is not an architecture this studio knows "
                                       f"({', '.join(list_architectures())})")
    for key in _INT_FIELDS:
        value = arch.get(key)
        if key in arch and (not isinstance(value, int) or isinstance(value, bool)):
            raise HeaderError(f"arch.{key}", f"{value!r} is not a whole number")
    if "dropout" in arch and not _is_number(arch["dropout"]):
        raise HeaderError("arch.dropout", f"{arch['dropout']!r} is not a number")
    if "mode" in arch and not isinstance(arch["mode"], str):
        raise HeaderError("arch.mode", f"{arch['mode']!r} is not a transfer mode")
    if "mode" in arch and arch["mode"] not in TRANSFER_MODES:
        raise HeaderError("arch.mode", f"{arch['mode']!r} is not one of {', '.join(TRANSFER_MODES)}")
    try:
        config = arch_config({"arch": arch})
        # The sizes are what matter here; how the run chose to freeze its backbone does not.
        dataclasses.replace(config, mode="full").validate()
    except ConfigError as exc:
        raise HeaderError(f"arch.{exc.field.removeprefix('model.')}", exc.reason) from None
    except TypeError as exc:
        raise HeaderError("arch", str(exc)) from None
    return config


def _check_state(state: object) -> Mapping[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise HeaderError("state_dict", "must be a non-empty table of weight tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise HeaderError("state_dict", f"entry {key!r} is not a named tensor")
    return state


def _check_classes(classes: object, state: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise HeaderError("classes", "must be a list of class names (text)")
    if not classes:
        raise HeaderError("classes", "the list is empty")
    if len(set(classes)) != len(classes):
        raise HeaderError("classes", "a class name appears twice")
    heads = [k for k, v in state.items() if k.startswith("head.") and k.endswith(".weight") and v.ndim == 2]
    if not heads:
        raise HeaderError("state_dict", "holds no classifier head (head.*.weight)")
    outputs = int(state[sorted(heads)[-1]].shape[0])
    if outputs != len(classes):
        raise HeaderError("classes", f"{len(classes)} names, but the classifier head has {outputs} outputs")


def _check_preprocessing(pre: object, arch: ModelConfig) -> None:
    if not isinstance(pre, Mapping):
        raise HeaderError("preprocessing", "must be a table (image_size, resize, mean, std)")
    for key in ("image_size", "resize", "mean", "std"):
        if key not in pre:
            raise HeaderError(f"preprocessing.{key}", "missing")
    size = pre["image_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size != arch.image_size:
        raise HeaderError("preprocessing.image_size", f"{size!r} must equal the network's {arch.image_size}")
    if pre["resize"] != RESIZE_RULE:
        raise HeaderError("preprocessing.resize", f"{pre['resize']!r} is not a rule this studio applies "
                                                  f"({RESIZE_RULE})")
    for key in ("mean", "std"):
        values = pre[key]
        if not isinstance(values, list | tuple) or len(values) != 3 or not all(_is_number(v) for v in values):
            raise HeaderError(f"preprocessing.{key}", "must be three numbers, one per colour channel")
    if not all(v > 0 for v in pre["std"]):
        raise HeaderError("preprocessing.std", "every value must be above zero")


def _check_budget(arch: ModelConfig) -> None:
    """The custom CNN's size follows from its header: refuse what could not fit in memory."""
    if arch.arch != "custom":
        return  # fixed networks: their size does not depend on the header
    params, channels = 0, 3
    for index in range(arch.blocks):
        out = min(arch.width * 2**index, arch.width * 8)
        params += channels * out * arch.kernel_size**2 + 2 * out
        channels = out
    # The build-time test pass holds the first block's output a few times over (conv, norm).
    activations = 3 * arch.width * arch.image_size**2
    need = 4 * (params + activations)
    if need > MEMORY_BUDGET_BYTES:
        raise HeaderError("arch.width", f"a network of width {arch.width}, {arch.blocks} blocks at "
                                        f"{arch.image_size} px would need about {need / 1024**3:.0f} GB; "
                                        f"the limit is {MEMORY_BUDGET_BYTES / 1024**3:.0f} GB")


def _is_number(value: object, *, finite: bool = True) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and (not finite or math.isfinite(value))
