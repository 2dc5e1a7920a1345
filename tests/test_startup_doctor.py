"""Start-up that explains what is missing, and `studio doctor`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from studio import cli
from studio.core import display, doctor
from studio.core.display import Distro, detect_distro, window_problem

DESKTOP = {"DISPLAY": ":0"}  # an X session; QT_QPA_PLATFORM unset, so Qt would pick xcb


def without(*missing: str):
    return lambda soname: soname not in missing


def test_a_missing_xcb_library_is_named_with_its_install_command() -> None:
    line = window_problem(DESKTOP, "linux", without("libxcb-cursor.so.0"), Distro("apt"))
    assert line == ("the window needs the system library libxcb-cursor.so.0, which is not installed: "
                    "sudo apt install libxcb-cursor0")
    line = window_problem(DESKTOP, "linux", without("libxcb-cursor.so.0", "libxkbcommon-x11.so.0"), Distro("dnf"))
    assert "(and 1 more)" in line and line.endswith("sudo dnf install xcb-util-cursor libxkbcommon-x11")
    assert "\n" not in line


def test_nothing_to_say_when_the_window_can_start() -> None:
    assert window_problem(DESKTOP, "linux", lambda s: True, Distro("apt")) == ""
    assert window_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", lambda s: False) == ""
    assert window_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux", lambda s: False) == ""  # no xcb there
    assert window_problem({}, "win32", lambda s: False) == ""


def test_no_display_suggests_the_headless_commands() -> None:
    line = window_problem({}, "linux", lambda s: True)
    assert line.startswith("no display found") and "studio train" in line


def test_distro_family_picks_the_installer(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=linuxmint\nID_LIKE="ubuntu debian"\n')
    assert detect_distro(release).installer == "apt"
    release.write_text('ID="rocky"\nID_LIKE="rhel centos fedora"\n')
    assert detect_distro(release).installer == "dnf"
    release.write_text("ID=arch\n")
    assert "package manager" in detect_distro(release).command(["libxcb-cursor.so.0"])
    assert detect_distro(tmp_path / "absent").installer == ""


def test_studio_exits_with_one_line_before_qt_is_loaded(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(display, "library_loads", without("libxcb-cursor.so.0"))
    monkeypatch.setattr(display, "detect_distro", lambda: Distro("apt"))
    monkeypatch.setitem(sys.modules, "studio.ui.app", None)  # reaching Qt would fail differently
    assert cli.main([]) == 3
    err = capsys.readouterr().err.strip()
    assert err == ("studio: the window needs the system library libxcb-cursor.so.0, which is not installed: "
                   "sudo apt install libxcb-cursor0")


def test_studio_without_a_display_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(sys.modules, "studio.ui.app", None)
    assert cli.main([]) == 3
    assert "no display found" in capsys.readouterr().err


def test_doctor_prints_every_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    for title in ("Versions", "Devices", "Window", "Pretrained weights", "Disk space", "Export tools"):
        assert f"\n{title}\n" in f"\n{out}"
    for item in ("torch:", "torchvision:", "Qt:", "CPU:", "bf16", "CUDA:", "MPS:", "bundled backbone:",
                 "onnxruntime:", str(tmp_path)):
        assert item in out
    assert "Everything needed is here." in out


def test_doctor_fails_and_says_what_to_do_when_something_needed_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(doctor, "LOW_DISK_BYTES", 2**62)  # no disk is that large
    assert cli.main(["doctor", "--project", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING  project:" in out and "free some space" in out and "problem(s)" in out


def test_doctor_window_finding_uses_the_startup_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(display, "library_loads", without("libxcb-cursor.so.0"))
    (finding,) = doctor.window({"DISPLAY": ":0"})
    assert finding.status == "missing" and "libxcb-cursor" in finding.detail
    (finding,) = doctor.window({})
    assert finding.status == "note" and "studio train" in finding.detail
