"""The 3x goal: wall time from pressing Train to a model at the plain loop's held-out accuracy.

On the handwritten digits (every 4th image held out) and on photo crops (train and held-out crops
from disjoint parts of each photo), never seen by either side, side by side in one process tree:

- the tutorial loop of `trust_vs_plain.plain_loop` (fp32, 15 epochs), run as its own script;
- `studio train --data DIR` with no flags (the automatic recipe; on a CPU it trains in fp32), run to
  the end, twice on the same project (the first run pays for the image features that the split and
  the recipe compute once per project);
- the same command on a fresh project, stopped as a user stops it (Ctrl-C, the window's Stop) once its
  live validation figure reaches the plain loop's held-out accuracy. The run then keeps its best
  epoch and still calibrates, measures familiarity and scores its test share before it exits. Its
  line also gives the moment that epoch's line was printed: its weights are saved by then (the
  time-to-accuracy of training benchmarks), before the work that makes the run trustworthy.

Every side is timed from process start to exit, interpreter and imports included. Prints held-out
accuracy and wall seconds of each, how the studio's seconds divide into epochs and the rest, and the
ratio plain / studio: above 1 means the studio got there sooner (it counts only when its held-out
accuracy is not lower).

    python3 benchmarks/time_to_accuracy.py [--work DIR] [--only digits|photos]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trust_vs_plain import (  # noqa: E402
    ROOT,
    plain_process,
    studio_heldout,
    studio_run,
    write_digits,
    write_photo_crops,
)

EPOCH_LINE = re.compile(r"validation loss [0-9.]+, accuracy ([0-9.]+)%")


def studio_line(label: str, train: Path, heldout: Path, home: Path) -> tuple[float, float]:
    result, wall = studio_run(train, home)
    truth = studio_heldout(result["run_dir"], heldout)
    epochs = sum(row.get("seconds", 0.0) for row in result.get("history", []))
    print(f"studio, {label:<22} held-out {100 * truth:5.1f}%  wall {wall:6.1f} s  "
          f"(epochs {epochs:5.1f} s over {len(result.get('history', []))} epoch(s), the rest {wall - epochs:5.1f} s)",
          flush=True)
    return truth, wall


def stopped_run(train: Path, heldout: Path, home: Path, target: float) -> tuple[float, float, int, float]:
    """A first run that its user stops once the live validation accuracy reaches `target`:
    (held-out accuracy, wall seconds, epochs done, seconds until the epoch that reached it was saved)."""
    env = dict(os.environ, STUDIO_HOME=str(home), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--data", str(train)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    run_dir, epochs, reached = "", 0, float("nan")
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("Run folder: "):
            run_dir = line.removeprefix("Run folder: ").strip()
        seen = EPOCH_LINE.search(line)
        if seen:
            epochs += 1
            if float(seen.group(1)) >= 100 * target and child.poll() is None:
                reached = time.perf_counter() - start  # the epoch is saved before its line is printed
                child.send_signal(signal.SIGINT)
    child.wait()
    wall = time.perf_counter() - start
    if not run_dir:
        sys.exit(f"studio train on {train} printed no run folder")
    return studio_heldout(run_dir, heldout), wall, epochs, reached


def race(name: str, train: Path, heldout: Path, size: int, work: Path) -> None:
    print(f"\n== {name}: {sum(1 for _ in train.rglob('*.png'))} training images, "
          f"{sum(1 for _ in heldout.rglob('*.png'))} held out", flush=True)
    acc, loop_s, plain_wall = plain_process(train, heldout, size)
    print(f"plain loop, fp32, 15 epochs:          held-out {100 * acc:5.1f}%  wall {plain_wall:6.1f} s "
          f"(its loop alone {loop_s:.1f} s)", flush=True)
    home = work / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    runs = {"first run": studio_line("first run (no flags)", train, heldout, home),
            "second run": studio_line("second run, same project", train, heldout, home)}
    stopped_home = work / f"home-{name}-stopped"
    shutil.rmtree(stopped_home, ignore_errors=True)
    truth, wall, epochs, reached = stopped_run(train, heldout, stopped_home, acc)
    print(f"studio, first run stopped at {100 * acc:.1f}% held-out {100 * truth:5.1f}%  wall {wall:6.1f} s "
          f"(after {epochs} epoch(s); that epoch saved at {reached:.1f} s, plain/studio {plain_wall / reached:.2f})",
          flush=True)
    runs["first run, stopped at the plain loop's accuracy"] = (truth, wall)
    for label, (got, took) in runs.items():
        verdict = "reaches" if got >= acc else "does NOT reach"
        print(f"{label}: studio {verdict} the plain loop's accuracy; plain/studio wall ratio {plain_wall / took:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/time-to-accuracy")
    parser.add_argument("--only", choices=("digits", "photos"))
    args = parser.parse_args()
    work = Path(args.work)
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx512_bf16", "amx_bf16", "avx512f", "avx2"})
    print(f"CPU flags: {' '.join(flags)}; torch threads {torch.get_num_threads()}; cores {os.cpu_count()}")
    if args.only in (None, "digits"):
        race("digits", *write_digits(work / "digits"), 32, work)
    if args.only in (None, "photos"):
        race("photos", *write_photo_crops(work / "photos"), 64, work)


if __name__ == "__main__":
    main()
