"""Build the one-folder desktop bundle and measure it: build time, size, what dominates, start time.

    python packaging/build.py            # build into build/bundle/dist/classification-studio, then measure
    python packaging/build.py --no-build # measure an existing bundle

A benchmark-style script, not a test: a build takes many minutes and gigabytes. After building
it runs the bundle the way a user without Python would (clean environment, no PYTHONPATH):
`studio --help`, `studio doctor`, the window offscreen, `studio sample`, `studio train` on the
sample and `studio predict`, and prints one line of figures per step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "studio.spec"
WORK = ROOT / "build" / "bundle"
APP_NAME = "classification-studio"


def build(cpu_only: bool) -> float:
    env = dict(os.environ, STUDIO_CPU_ONLY="1" if cpu_only else "0")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(WORK / "dist"), "--workpath", str(WORK / "work"), str(SPEC)],
                   check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def size_of(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() or f.is_symlink())


def biggest(app: Path, n: int = 12) -> list[tuple[int, str]]:
    """Largest items two levels into _internal: packages (torch, PySide6, nvidia/...) and lone libraries."""
    internal = app / "_internal"
    items: list[tuple[int, str]] = []
    for entry in internal.iterdir():
        if entry.is_dir() and entry.name in ("nvidia", "torch"):
            items += [(size_of(sub), f"{entry.name}/{sub.name}") for sub in entry.iterdir()]
        else:
            items.append((size_of(entry), entry.name))
    return sorted(items, reverse=True)[:n]


def clean_env() -> dict[str, str]:
    """What a desktop session hands a program: no Python variables, no virtual environment on PATH."""
    keep = ("HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = "/usr/bin:/bin"
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "2")
    return env


def timed(label: str, argv: list[str], env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
    print(f"{label:<34} exit {done.returncode:>3}  {seconds:7.1f} s  {last[:110]}", flush=True)
    return done


def smoke(app: Path) -> None:
    exe = app / "studio"
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="studio-bundle-") as tmp:
        env.update(STUDIO_HOME=f"{tmp}/home", XDG_CACHE_HOME=f"{tmp}/cache")
        timed("studio --help", [str(exe), "--help"], env)
        timed("studio doctor", [str(exe), "doctor", "--project", f"{tmp}/project"], env)
        for attempt in (1, 2):  # the first start also fills the OS file cache
            timed(f"window start offscreen (#{attempt})", [str(exe)],
                  dict(env, QT_QPA_PLATFORM="offscreen", STUDIO_SMOKE_START="1"))
        timed("no display at all", [str(exe)], {k: v for k, v in env.items() if k not in ("DISPLAY",
                                                                                         "WAYLAND_DISPLAY")})
        timed("studio sample", [str(exe), "sample", f"{tmp}/sample", "--per-class", "30"], env)
        timed("studio train (sample, custom CNN)", [str(exe), "train", "--data", f"{tmp}/sample", "--epochs", "3",
                                                    "--project", f"{tmp}/project", "--quiet"], env)
        timed("studio train (sample, Lite0)", [str(exe), "train", "--data", f"{tmp}/sample", "--epochs", "1",
                                               "--arch", "efficientnet_lite0", "--pretrained", "imagenet",
                                               "--image-size", "96", "--project", f"{tmp}/project", "--quiet"], env)
        runs = sorted((Path(tmp) / "project" / "runs").glob("*"))
        if not runs:
            print("no run was written; predict and export skipped")
            return
        timed("studio predict", [str(exe), "predict", f"{tmp}/sample", "--model", str(runs[-1]), "--top-k", "1"], env)
        timed("studio export --format package", [str(exe), "export", str(runs[-1]), "--format", "package",
                                                 "--out", f"{tmp}/package"], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="measure the existing bundle only")
    parser.add_argument("--with-gpu-extras", action="store_true",
                        help="keep the GPU libraries torch loads on demand (default: leave them out)")
    args = parser.parse_args()
    app = WORK / "dist" / APP_NAME
    if not args.no_build:
        if shutil.which("objdump") is None and sys.platform.startswith("linux"):
            print("note: PyInstaller needs objdump (binutils) on Linux", file=sys.stderr)
        seconds = build(cpu_only=not args.with_gpu_extras)
        print(f"build time: {seconds / 60:.1f} min", flush=True)
    if not (app / "studio").is_file():
        print(f"no bundle at {app}; build it first", file=sys.stderr)
        return 1
    total = size_of(app)
    print(f"bundle: {app}  {total / 2**30:.2f} GiB, {sum(1 for _ in app.rglob('*'))} files")
    for size, name in biggest(app):
        print(f"  {size / 2**20:8.0f} MiB  {100 * size / total:4.1f}%  {name}")
    smoke(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
