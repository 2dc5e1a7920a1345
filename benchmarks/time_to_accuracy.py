"""The 3x goal: wall time from pressing Train to a model at the plain loop's held-out accuracy.

On the handwritten digits (every 4th image held out, never seen by either side), side by side in
one process tree: `studio train --data DIR` with no flags (the automatic recipe; on a CPU it
trains in fp32), twice on the same project (the first run pays for the image features the
split and the recipe compute once per project), and the tutorial loop of
`trust_vs_plain.plain_loop` (fp32, 15 epochs), run as its own script as the studio is (both timed
from process start to exit, interpreter and imports included). Prints held-out accuracy and wall seconds of each,
how the studio's seconds divide into epochs and the rest, and the ratio plain / studio: above 1
means the studio got there sooner (it counts only when its held-out accuracy is not lower).

    python3 benchmarks/time_to_accuracy.py [--work DIR] [--order studio-first|plain-first]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trust_vs_plain import plain_process, studio_heldout, studio_run, write_digits  # noqa: E402


def studio_line(label: str, train: Path, heldout: Path, home: Path) -> tuple[float, float]:
    result, wall = studio_run(train, home)
    truth = studio_heldout(result["run_dir"], heldout)
    epochs = sum(row.get("seconds", 0.0) for row in result.get("history", []))
    print(f"studio, {label:<22} held-out {100 * truth:5.1f}%  wall {wall:6.1f} s  "
          f"(epochs {epochs:5.1f} s over {len(result.get('history', []))} epoch(s), the rest {wall - epochs:5.1f} s)",
          flush=True)
    return truth, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/time-to-accuracy")
    parser.add_argument("--order", choices=("studio-first", "plain-first"), default="studio-first")
    args = parser.parse_args()
    work = Path(args.work)
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx512_bf16", "amx_bf16", "avx512f", "avx2"})
    print(f"CPU flags: {' '.join(flags)}; torch threads {torch.get_num_threads()}; cores {os.cpu_count()}")
    train, heldout = write_digits(work / "digits")
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    runs: dict[str, tuple[float, float]] = {}
    order = ["studio", "plain"] if args.order == "studio-first" else ["plain", "studio"]
    for side in order:
        if side == "plain":
            acc, loop_s, wall = plain_process(train, heldout, 32)
            print(f"plain loop, fp32, 15 epochs:    held-out {100 * acc:5.1f}%  wall {wall:6.1f} s "
                  f"(its loop alone {loop_s:.1f} s)", flush=True)
            runs["plain"] = (acc, wall)
        else:
            runs["first"] = studio_line("first run (no flags)", train, heldout, home)
            runs["again"] = studio_line("second run, same project", train, heldout, home)
    plain_acc, plain_wall = runs["plain"]
    for key, label in (("first", "first run"), ("again", "second run")):
        acc, wall = runs[key]
        verdict = "reaches" if acc >= plain_acc else "does NOT reach"
        print(f"{label}: studio {verdict} the plain loop's accuracy; plain/studio wall ratio {plain_wall / wall:.2f}")


if __name__ == "__main__":
    main()
