"""Can the window open here? Answered before Qt is imported, in one line a person can act on.

Qt's xcb platform plugin needs a dozen system libraries that a fresh Linux install may lack
(libxcb-cursor0 most often). When one is missing, Qt prints a paragraph and aborts the process
(exit 134, sometimes a core dump). The studio looks for the same libraries first, the way the
loader will (by trying to load them), and says which package to install.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HEADLESS_HINT = "for training without a window use `studio train --data DIR` (see `studio --help`)"

# What Qt 6's xcb plugin and libQt6XcbQpa link against (readelf -d), with the package that
# provides each on Debian/Ubuntu and on Fedora.
XCB_LIBRARIES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

# Platforms that draw nowhere or on a framebuffer: no display server, no xcb libraries needed.
NO_DISPLAY_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


class WindowUnavailable(Exception):
    """The window cannot start on this machine; the message says why and what to do, in one line."""


def library_loads(soname: str) -> bool:
    """Whether the dynamic loader finds `soname` now: the same search Qt's plugin load will do."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Distro:
    installer: str  # "apt", "dnf" or "" when unknown

    def command(self, sonames: list[str]) -> str:
        if self.installer == "apt":
            return "sudo apt install " + " ".join(dict.fromkeys(XCB_LIBRARIES[s][0] for s in sonames))
        if self.installer == "dnf":
            return "sudo dnf install " + " ".join(dict.fromkeys(XCB_LIBRARIES[s][1] for s in sonames))
        return "install the package that provides " + ", ".join(sonames) + " with your system's package manager"


def detect_distro(os_release: Path = Path("/etc/os-release")) -> Distro:
    """apt for the Debian family, dnf for the Fedora/RHEL family, from ID and ID_LIKE."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Distro("")
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = " ".join(fields.get(key, "").strip('"').lower() for key in ("ID", "ID_LIKE")).split()
    if any(i in ("debian", "ubuntu") for i in ids):
        return Distro("apt")
    if any(i in ("fedora", "rhel", "centos") for i in ids):
        return Distro("dnf")
    return Distro("")


def missing_libraries(finder: Callable[[str], bool] = library_loads) -> list[str]:
    return [soname for soname in XCB_LIBRARIES if not finder(soname)]


def window_problem(env: dict[str, str] | None = None, platform: str | None = None,
                   finder: Callable[[str], bool] | None = None, distro: Distro | None = None) -> str:
    """Why the window cannot open here, as one line; "" when nothing stands in the way."""
    env = dict(os.environ if env is None else env)
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return ""  # Windows and macOS ship their platform plugins' needs with the OS
    qpa = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if qpa in NO_DISPLAY_PLATFORMS:
        return ""
    wayland, x11 = bool(env.get("WAYLAND_DISPLAY")), bool(env.get("DISPLAY"))
    if qpa == "wayland" and wayland:
        return ""
    if not wayland and not x11:
        return ("no display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the window cannot open; "
                + HEADLESS_HINT)
    if wayland and qpa != "xcb" and not x11:
        return ""  # a pure Wayland session: Qt uses its Wayland plugin, which needs no xcb libraries
    missing = missing_libraries(finder or library_loads)
    if not missing:
        return ""
    named = missing[0] if len(missing) == 1 else f"{missing[0]} (and {len(missing) - 1} more)"
    return (f"the window needs the system library {named}, which is not installed: "
            f"{(distro or detect_distro()).command(missing)}")


def check_window_can_start(**kwargs) -> None:
    """Raise WindowUnavailable with the one-line reason, before anything imports Qt."""
    problem = window_problem(**kwargs)
    if problem:
        raise WindowUnavailable(problem)
