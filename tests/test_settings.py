"""One source for every setting: metadata drives validation, the CLI options and (see ui tests) the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.cli import _config_from_args, build_parser
from studio.cli_options import config_specs, option_names
from studio.core.config import RunConfig
from studio.core.errors import ConfigError
from studio.core.policies import arch_defaults, mode_for_weights

# Fields without a list of choices: a value that differs from the default.
FREE_TEXT = {"train.device": "cpu", "data.group_by": "folder"}


def _other_value(spec):
    if spec.key in FREE_TEXT:
        return FREE_TEXT[spec.key]
    s = spec.setting
    allowed = s.allowed()
    if spec.kind == "bool":
        return not spec.default
    if allowed is not None:
        return next(c for c in allowed if c != spec.default and c != "custom")
    if s.low is not None and s.high is not None:
        if spec.default != s.low:
            return s.low
        middle = (s.low + s.high) / 2
        return int(middle) if spec.kind == "int" else middle
    return None


def test_every_field_has_metadata() -> None:
    specs = config_specs()
    assert len(specs) >= 40
    for spec in specs:
        s = spec.setting
        assert s.label and s.help, f"{spec.key}: give it a label and a one-line help"
        if spec.kind in ("int", "float"):
            assert s.allowed() is not None or (s.low is not None and s.high is not None), f"{spec.key}: no range"


def test_every_field_is_reachable_from_the_cli(tmp_path: Path) -> None:
    names = option_names({"--config", "--resume", "--project", "--name", "--json", "--quiet", "-h", "--help"})
    parser = build_parser()
    for spec in config_specs():
        if spec.key in ("data.root", "model.pretrained", "augment.preset"):
            continue  # paths and the preset: their own tests below
        value = _other_value(spec)
        assert value is not None, spec.key
        if spec.kind == "bool":
            argv = [names[spec.key] if value else "--no-" + names[spec.key][2:]]
        else:
            argv = [names[spec.key], str(value)]
        args = parser.parse_args(["train", "--data", str(tmp_path), *argv])
        if spec.key == "model.mode":
            args = parser.parse_args(["train", "--data", str(tmp_path), "--pretrained", "imagenet", *argv])
        if spec.key == "model.features":
            args = parser.parse_args(["train", "--data", str(tmp_path), "--arch", "efficientnet_lite0", *argv])
        cfg = _config_from_args(args)
        assert getattr(getattr(cfg, spec.section), spec.name) == value, (spec.key, argv)


@pytest.mark.parametrize("argv, key, expected", [
    (["--val", "0.3"], "data.val_fraction", 0.3),
    (["--test", "0.1"], "data.test_fraction", 0.1),
    (["--warmup", "2.5"], "train.warmup_epochs", 2.5),
    (["--image-size", "96"], "model.image_size", 96),
    (["--augment", "aerial"], "augment.vflip", 0.5),
    (["--augment", "natural", "--hflip", "0.25"], "augment.preset", "custom"),
    (["--augment", "natural", "--hflip", "0.25"], "augment.rotation", 10.0),
    (["--early-stopping", "3"], "train.early_stopping", 3),
    (["--momentum", "0.5"], "train.momentum", 0.5),
    (["--no-channels-last"], "train.channels_last", False),
])
def test_todays_option_names_keep_working(tmp_path: Path, argv: list[str], key: str, expected) -> None:
    cfg = _config_from_args(build_parser().parse_args(["train", "--data", str(tmp_path), *argv]))
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == expected


def test_validation_uses_the_metadata_range() -> None:
    for spec in config_specs():
        s = spec.setting
        if spec.kind not in ("int", "float") or s.high is None:
            continue
        cfg = RunConfig()
        setattr(getattr(cfg, spec.section), spec.name, s.high + (1 if spec.kind == "int" else 0.5))
        with pytest.raises(ConfigError) as err:
            cfg.validate()
        assert err.value.field == spec.key


def test_architecture_and_weights_defaults_are_one_policy(tmp_path: Path) -> None:
    assert arch_defaults("resnet18", pick_weights=True) == {"arch": "resnet18", "image_size": 224, "features": "final",
                                                            "pretrained": "imagenet", "mode": "two-stage"}
    assert arch_defaults("custom", pick_weights=True)["mode"] == "full"
    assert "pretrained" not in arch_defaults("resnet18", pick_weights=False)
    assert mode_for_weights("none", "imagenet", "head") == "full"
    assert mode_for_weights("imagenet", "none", "full") == "two-stage"
    assert mode_for_weights("imagenet", "imagenet", "head") == "head"
    parse = build_parser().parse_args
    cfg = _config_from_args(parse(["train", "--data", str(tmp_path), "--arch", "efficientnet_b2"]))
    assert (cfg.model.image_size, cfg.model.pretrained, cfg.model.mode) == (288, "none", "full")
    cfg = _config_from_args(parse(["train", "--data", str(tmp_path), "--pretrained", "imagenet"]))
    assert cfg.model.mode == "two-stage"
