"""The walls between modules: a leaf errors module, torch-free facts and help, one name per exception."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_help_imports_no_torch() -> None:
    """`studio --help` (and `studio train --help`, which lists the architectures) stays light."""
    loaded = _loaded_after(
        "import contextlib, io\nfrom studio import cli\n"
        "for argv in (['--help'], ['train', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        cli.build_parser().parse_args(argv)\n")
    assert "studio.cli" in loaded
    assert "torch" not in loaded and not any(m.startswith("torch.") for m in loaded)


def test_errors_is_a_leaf() -> None:
    loaded = _loaded_after("import studio.core.errors")
    studio_modules = {m for m in loaded if m.startswith("studio.core.")}
    assert studio_modules == {"studio.core.errors", "studio.core.atomic"}
    assert "torch" not in loaded


def test_config_and_architectures_need_no_torch() -> None:
    loaded = _loaded_after("from studio.core.config import RunConfig\nRunConfig().validate()\n"
                           "import studio.core.architectures")
    assert "torch" not in loaded


@pytest.mark.parametrize("module, names", [
    ("studio.core.config", ["ConfigError"]),
    ("studio.core.dataset", ["DatasetError", "ScanCancelled"]),
    ("studio.core.cache", ["Cancelled"]),
    ("studio.core.images", ["ImageError"]),
    ("studio.core.checkpoint", ["CheckpointError"]),
    ("studio.core.train", ["TrainingError"]),
    ("studio.core.rundata", ["TrainingError"]),
    ("studio.core.loop", ["NonFiniteLoss"]),
    ("studio.core.weights", ["WeightsUnavailable", "WeightsFileError"]),
    ("studio.core.evaluate", ["EvaluationError"]),
    ("studio.core.export", ["ExportError"]),
    ("studio.core.project", ["ProjectError"]),
])
def test_old_exception_names_are_the_same_classes(module: str, names: list[str]) -> None:
    """Code written against the old homes keeps catching the very same exceptions."""
    import importlib

    from studio.core import errors

    old = importlib.import_module(module)
    for name in names:
        assert getattr(old, name) is getattr(errors, name)


def test_architecture_facts_match_torchvision() -> None:
    """The torch-free facts are what torchvision's own weights declare, not what someone remembered."""
    from torchvision.models import get_model_weights

    from studio.core.architectures import architecture_info, list_architectures

    checked = 0
    for name in list_architectures():
        info = architecture_info(name)
        if not info.imagenet or info.bundled:
            continue
        preset = get_model_weights(name).DEFAULT.transforms()
        assert info.default_image_size == int(preset.crop_size[0]), name
        assert info.mean == tuple(preset.mean) and info.std == tuple(preset.std), name
        checked += 1
    assert checked >= 7
