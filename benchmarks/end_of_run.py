"""Seconds a run spends after its last epoch, on the handwritten digits.

From the end of the last epoch to the run's end: loading the best weights, the pass that fits
the temperature and the familiarity check, the test accuracy, report.md, confusion.png and
reliability.png. Prints wall seconds and this process's CPU seconds (steadier than wall time on a
shared machine) per repeat and their medians, so two checkouts can be compared:

    PYTHONPATH=/path/to/checkout python3 benchmarks/end_of_run.py [--space network|reference] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one_run(data: Path, project: Path, epochs: int, space: str) -> tuple[float, float, float]:
    """(wall seconds after the last epoch, CPU seconds after it, whole run wall seconds)."""
    from studio.core.callbacks import Callback
    from studio.core.config import RunConfig
    from studio.core.train import Trainer

    marks: dict[str, float] = {}

    class Clock(Callback):
        def on_epoch_end(self, info) -> None:
            marks["last_epoch"], marks["last_epoch_cpu"] = time.perf_counter(), time.process_time()

        def on_finished(self, result) -> None:
            marks["finished"], marks["finished_cpu"] = time.perf_counter(), time.process_time()

    cfg = RunConfig()
    cfg.data.root, cfg.model.image_size, cfg.train.epochs = str(data), 32, epochs
    cfg.data.near_duplicates = False  # the split's feature pass is not what this measures
    cfg.train.familiarity_space = space
    start = time.perf_counter()
    result = Trainer(cfg, project=project, callbacks=[Clock()]).run()
    assert result.status == "finished", result.message
    return (marks["finished"] - marks["last_epoch"], marks["finished_cpu"] - marks["last_epoch_cpu"],
            marks["finished"] - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/studio-end-of-run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--space", default="network", choices=("network", "reference", "auto"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from digits import write_digits

    import studio

    work = Path(args.work)
    data = write_digits(work / "digits", 32)
    print(f"code: {Path(studio.__file__).parent.parent}  familiarity space: {args.space}")
    walls, cpus = [], []
    for i in range(args.repeats):
        wall, cpu, whole = one_run(data, work / "project", args.epochs, args.space)
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: {wall:6.2f} s wall, {cpu:6.2f} s CPU after the last epoch; {whole:6.2f} s in all")
    print(f"median after the last epoch: {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU")


if __name__ == "__main__":
    main()
