"""Desktop packaging files: they validate with the distributions' own tools and point at files that exist."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
APP_ID = "io.github.classification_studio.ClassificationStudio"
DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = "desktop-file-utils" if "desktop" in name else "appstream"
        pytest.skip(f"{name} is not installed (Debian: apt install {package}); .ci/run installs it")
    return path


def test_desktop_entry_validates() -> None:
    done = subprocess.run([_tool("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "error" not in done.stdout.lower(), done.stdout + done.stderr
    assert "warning" not in done.stdout.lower() and "hint" not in done.stdout.lower(), done.stdout


def test_metainfo_validates() -> None:
    done = subprocess.run([_tool("appstreamcli"), "validate", "--no-net", str(METAINFO)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [line for line in done.stdout.splitlines() if line.startswith(("E:", "W:"))], done.stdout


def test_desktop_metainfo_and_icon_agree() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(DESKTOP, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Exec"].split()[0] == "studio"  # the console script pip installs, and the bundle's executable
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID and root.findtext("launchable") == DESKTOP.name
    assert root.findtext("icon") == section["Icon"]
    icons = resources.files("studio").joinpath("resources/icons")
    assert icons.joinpath(f"{section['Icon']}.svg").is_file()


@pytest.mark.parametrize("size", [16, 32, 48, 64, 128, 256, 512])
def test_icon_pngs_have_their_sizes(size: int) -> None:
    icon = resources.files("studio").joinpath(f"resources/icons/classification-studio-{size}.png")
    with resources.as_file(icon) as path, Image.open(path) as img:
        assert img.size == (size, size) and img.mode == "RGBA"


def test_svg_icon_is_square_svg() -> None:
    root = ET.parse(ROOT / "studio" / "resources" / "icons" / "classification-studio.svg").getroot()
    assert root.tag.endswith("svg") and root.get("viewBox") == "0 0 256 256"


def test_every_resource_is_in_the_installed_package_data() -> None:
    """pyproject's package-data globs must cover every file the app reads from studio/resources."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["studio"]
    base = ROOT / "studio"
    covered = {p for pattern in patterns for p in base.glob(pattern) if p.is_file()}
    wanted = {p for p in (base / "resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert wanted and wanted <= covered, sorted(str(p.relative_to(base)) for p in wanted - covered)


def test_bundle_spec_and_build_script_compile() -> None:
    for name in ("studio.spec", "build.py", "launch.py", "make_icons.py"):
        compile((PACKAGING / name).read_text(), name, "exec")
