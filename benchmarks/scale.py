"""How the studio's costs grow with the number of images: scan, decode, epochs, memory, disk.

Draws N procedural 64 px images (the built-in shapes, 4 classes) once per size,
then for each size runs `studio scan` and a 2-epoch `studio train` of a small CNN
in a fresh process, and prints per size: scan seconds, first-epoch and
later-epoch seconds, microseconds per image for each, the peak resident memory of
the training process, and the size of the decode cache on disk. Cost per image
should stay flat as N grows, and memory should stay bounded by the cache budget
(`--cache-mb`, the run's data.cache_memory_mb) once the pixels spill to disk.

The runs use the settings as given, without the per-image feature pass of the bundled
ImageNet network (near-duplicate grouping, the recipe's quick classifier, familiarity in its
space): that pass costs the same per image at every size and is timed once on its own
(`features µs/img`), so a run with it costs N times that much more.

    python benchmarks/scale.py --sizes 5000 20000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.sample import make_sample_dataset  # noqa: E402
from studio.core.userdirs import APP_NAME  # noqa: E402


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str, int]:
    """Wall seconds, stdout, and this child's own peak resident memory in kB (wait4's rusage)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        took = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {stderr.strip()[-400:]}")
    return took, stdout, usage.ru_maxrss


def measure(n: int, work: Path, args: argparse.Namespace) -> dict[str, float]:
    data = make_sample_dataset(work / f"shapes-{n}", per_class=n // 4, size=64, seed=1)
    project = work / f"project-{n}"
    cache_home = work / f"cache-{n}"
    env = {**os.environ, "STUDIO_HOME": str(project), "XDG_CACHE_HOME": str(cache_home)}
    scan_s, _, _ = run([sys.executable, "-m", "studio.cli", "scan", str(data), "--json"], env)
    train_cmd = [sys.executable, "-m", "studio.cli", "train", "--data", str(data), "--project", str(project),
                 "--arch", "custom", "--blocks", "3", "--image-size", "64", "--epochs", "2", "--json", "--quiet",
                 "--manual", "--no-near-duplicates", "--familiarity-space", "network"]
    if args.width:
        train_cmd += ["--width", str(args.width)]
    config = work / f"config-{n}.json"
    config.write_text(json.dumps({"data": {"cache_memory_mb": args.cache_mb}}))
    train_s, stdout, peak_kb = run(train_cmd + ["--config", str(config)], env)
    result = json.loads(stdout[stdout.index("{"):])
    history = result.get("history", [])
    first = history[0]["seconds"] if history else float("nan")
    later = history[-1]["seconds"] if len(history) > 1 else float("nan")
    decode_cache = cache_home / APP_NAME  # the studio's user cache folder under XDG_CACHE_HOME (platformdirs)
    cache_bytes = folder_bytes(decode_cache) if decode_cache.is_dir() else 0
    return {"images": n, "scan_s": scan_s, "train_wall_s": train_s, "first_epoch_s": first, "later_epoch_s": later,
            "peak_mb": peak_kb / 1024, "cache_mb": cache_bytes / 2**20}


def feature_cost(work: Path, n: int = 256) -> float:
    """Seconds per image of the bundled network's feature pass (what near-duplicate grouping computes)."""
    from studio.core.features import FeatureStore

    data = make_sample_dataset(work / "features-sample", per_class=n // 4, size=64, seed=2)
    files = sorted(str(p) for p in data.rglob("*.png"))
    store = FeatureStore(work / "features-project")
    store.embed_files(files[:8])  # the network's load, not counted
    started = time.perf_counter()
    store.embed_files(files[8:])
    return (time.perf_counter() - started) / max(1, len(files) - 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--cache-mb", type=int, default=512, help="memory budget for decoded pixels")
    parser.add_argument("--work", help="folder for the images and projects (default: a temporary folder)")
    parser.add_argument("--width", type=int, help="a narrower network, for a quicker table: the engine's "
                        "costs per image (scan, decode, cache, memory) do not depend on it")
    parser.add_argument("--no-features", action="store_true", help="skip timing the feature pass")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        print(f"{'images':>8} {'scan s':>8} {'µs/img':>7} {'epoch1 s':>9} {'µs/img':>7} {'epochN s':>9} "
              f"{'µs/img':>7} {'run s':>7} {'peak MB':>8} {'cache MB':>9}")
        for n in args.sizes:
            m = measure(n, work, args)
            per = 1e6 / n
            print(f"{n:8d} {m['scan_s']:8.1f} {m['scan_s'] * per:7.0f} {m['first_epoch_s']:9.1f} "
                  f"{m['first_epoch_s'] * per:7.0f} {m['later_epoch_s']:9.1f} {m['later_epoch_s'] * per:7.0f} "
                  f"{m['train_wall_s']:7.0f} {m['peak_mb']:8.0f} {m['cache_mb']:9.0f}", flush=True)
        if not args.no_features:
            print(f"features µs/img (bundled network, once per image per project): {feature_cost(work) * 1e6:.0f}")


if __name__ == "__main__":
    main()
