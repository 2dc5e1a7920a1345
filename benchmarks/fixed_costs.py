"""Fixed costs around training on the handwritten digits: scan, decode, end-of-run evaluation.

Prints seconds for a header-only scan against a full-decode scan, the one decode that fills
the cache, and the end-of-run evaluation (report.md section + confusion.png) of a finished
run, so the cost a run pays besides its epochs is visible. Run on an otherwise idle machine,
or quote ratios from one run.

    python3 benchmarks/fixed_costs.py [--work DIR] [--size 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    print(f"{label:<48} {time.perf_counter() - start:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/studio-fixed-costs")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    from digits import write_digits

    from studio.core.cache import build_cache
    from studio.core.config import RunConfig
    from studio.core.dataset import scan
    from studio.core.evaluate import evaluate_run
    from studio.core.evaluation_report import write_evaluation
    from studio.core.train import Trainer

    work = Path(args.work)
    data = write_digits(work / "digits", args.size)
    full = timed("scan, every image decoded (before)", lambda: scan(data))
    headers = timed("scan, headers only (a run's own scan now)", lambda: scan(data, check_pixels=False))
    assert [r.path for r in full.good] == [r.path for r in headers.good]
    paths = [r.path for r in full.good]
    timed("one decode into the cache", lambda: build_cache(data, paths, args.size))
    cfg = RunConfig()
    cfg.data.root, cfg.model.image_size, cfg.train.epochs = str(data), args.size, args.epochs
    result = timed(f"whole run, {args.epochs} epoch(s)", lambda: Trainer(cfg, project=work / "project").run())
    evaluation = timed("end-of-run evaluation: predict the val split again",
                       lambda: evaluate_run(result.run_dir, "val"))
    timed("end-of-run evaluation: report.md + confusion.png", lambda: write_evaluation(evaluation))


if __name__ == "__main__":
    main()
