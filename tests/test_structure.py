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


def test_import_contracts_hold() -> None:
    """The contracts in pyproject.toml (also run by .ci/run); they read imports inside functions too."""
    pytest.importorskip("importlinter")
    out = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                          "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def test_no_import_circle_in_core() -> None:
    """No chain of imports in studio.core leads back to where it started (imports inside functions included)."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("studio")
    core = sorted(m for m in graph.modules if m.startswith("studio.core."))
    for module in core:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("studio.core.") and imported != module:
                back = graph.find_shortest_chain(importer=imported, imported=module)
                assert back is None, f"{module} -> {' -> '.join(back)}"


# Functions and modules still being split elsewhere; each entry goes once its split has landed.
SIZE_ALLOWED: set[str] = set()  # "path:Class.function" of anything allowed over the limits, each with its reason
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def _oversized(path: Path, root: Path = ROOT) -> list[str]:
    """Every function over the line limit in one file, named as in SIZE_ALLOWED, and the file if too long."""
    import ast

    source = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    found = [f"{name} ({len(source.splitlines())} lines)"] if len(source.splitlines()) > MAX_MODULE_LINES else []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualified = f"{prefix}{child.name}"
                lines = child.end_lineno - child.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{qualified} ({lines} lines)")
                walk(child, f"{qualified}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(source), "")
    return found


def test_no_function_over_60_lines_and_no_module_over_400() -> None:
    """Small rooms: a function that needs a scroll bar, or a module that holds two things, gets split."""
    found = [f for path in sorted((ROOT / "studio").rglob("*.py")) for f in _oversized(path)]
    assert [f for f in found if f.split(" (")[0] not in SIZE_ALLOWED] == []


def test_the_size_check_sees_a_long_method_and_a_long_module(tmp_path: Path) -> None:
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "probe.py").write_text(f"class A:\n    def long(self) -> None:\n{body}" + "\n" * MAX_MODULE_LINES)
    assert _oversized(tmp_path / "probe.py", tmp_path) == [
        f"probe.py ({MAX_FUNCTION_LINES + 2 + MAX_MODULE_LINES} lines)",
        f"probe.py:A.long ({MAX_FUNCTION_LINES + 1} lines)"]
