"""`studio train` options generated from the config's own field metadata.

Every config field gets an option (`--field-name`, or the name its `Setting`
gives, such as `--val` or `--warmup`), with its type, range or choices and
help taken from the one declaration in `studio.core.config`; a field added
there is reachable here without a line of CLI code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from studio.core.config import AugmentConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from studio.core.settings import FieldSpec, section_specs

SECTIONS: tuple[tuple[str, type], ...] = (
    ("data", DataConfig), ("model", ModelConfig), ("augment", AugmentConfig), ("train", TrainConfig),
)
_TYPES = {"int": int, "float": float, "str": str}


def config_specs() -> list[FieldSpec]:
    return [spec for section, kind in SECTIONS for spec in section_specs(section, kind)]


def option_names(taken: set[str]) -> dict[str, str]:
    """Field key -> option; a name already taken (by another field or a plain option) gets the section in front."""
    names: dict[str, str] = {}
    used = set(taken)
    for spec in config_specs():
        name = spec.setting.option
        if name == "":
            continue
        name = name or "--" + spec.name.replace("_", "-")
        if name in used:
            name = f"--{spec.section}-{spec.name.replace('_', '-')}"
        used.add(name)
        names[spec.key] = name
    return names


def _help(spec: FieldSpec) -> str:
    s = spec.setting
    parts = []
    if s.low is not None and s.high is not None:
        parts.append(f"{_number(s.low)} to {_number(s.high)}")
    if spec.default not in ("", None):
        parts.append(f"default {spec.default}")
    text = s.help + (f" ({'; '.join(parts)})" if parts else "")
    return text.replace("%", "%%")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1 else f"{value:g}"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per config field, after the parser's own options (whose names the fields then avoid)."""
    taken = {opt for action in parser._actions for opt in action.option_strings}
    names = option_names(taken)
    groups: dict[str, Any] = {}
    for spec in config_specs():
        if spec.key not in names:
            continue
        group = groups.get(spec.section) or parser.add_argument_group(f"{spec.section} settings")
        groups[spec.section] = group
        kwargs: dict[str, Any] = {"dest": _dest(spec), "help": _help(spec), "default": None}
        if spec.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _TYPES.get(spec.kind, str)
            allowed = spec.setting.allowed()
            if allowed is not None:
                kwargs["choices"] = allowed
                if spec.setting.metavar:
                    kwargs["help"] += f": one of {', '.join(map(str, allowed))}"
            if spec.setting.metavar or allowed is None:
                kwargs["metavar"] = spec.setting.metavar or spec.name.upper()
        group.add_argument(names[spec.key], **kwargs)
    parser.set_defaults(cfg_options=names)  # for messages that name an option by its field


def _dest(spec: FieldSpec) -> str:
    return f"cfg__{spec.section}__{spec.name}"


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields set on the command line: {"train.lr": 0.01, ...}."""
    out = {}
    for spec in config_specs():
        value = getattr(args, _dest(spec), None)
        if value is not None:
            out[spec.key] = value
    return out


def apply_options(cfg: RunConfig, values: dict[str, Any]) -> None:
    """Set the given fields; a preset replaces the whole augmentation first, single augmentations then adjust it."""
    values = dict(values)
    if "augment.preset" in values:
        cfg.augment = AugmentConfig.from_preset(values.pop("augment.preset"))
    for key, value in values.items():
        section, name = key.split(".")
        if key == "data.root" or key == "model.pretrained" and value not in ("none", "imagenet"):
            value = str(Path(value).expanduser().resolve())
        setattr(getattr(cfg, section), name, value)
    if any(k.startswith("augment.") for k in values):
        base = cfg.augment.preset
        if base == "custom" or cfg.augment != AugmentConfig.from_preset(base):
            cfg.augment.preset = "custom"  # no longer the named preset: the window shows it as the user's own mix
