"""The image-feature pass: EfficientNet-Lite0 at 160 px in ONNX Runtime against PyTorch eager, side by side.

Alternates the two engines batch by batch on the same random images, so a busy machine slows both
alike, and prints images per second for each, their ratio, and the largest difference in features.

    python benchmarks/feature_engine.py [--batches 6] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.core import feature_engine  # noqa: E402
from studio.core.features import INPUT_SIZE, identity  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx512_bf16", "amx_bf16", "avx512f", "avx2"})
    print(f"CPU flags: {' '.join(flags)}; torch threads {torch.get_num_threads()}")
    started = time.perf_counter()
    fast, name = feature_engine.engine(identity(), INPUT_SIZE)
    print(f"engine: {name} (first use, graph export included: {time.perf_counter() - started:.1f} s)")
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch_size, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    feature_engine.torch_engine(x[:2])
    rates: dict[str, list[float]] = {"pytorch": [], name: []}
    for _ in range(args.batches):
        for label, run in (("pytorch", feature_engine.torch_engine), (name, fast)):
            start = time.perf_counter()
            run(x)
            rates[label].append(args.batch_size / (time.perf_counter() - start))
    for label, values in rates.items():
        print(f"{label:12s} median {statistics.median(values):6.1f} images/s  (min {min(values):.1f}, "
              f"max {max(values):.1f})")
    print(f"ratio {statistics.median(rates[name]) / statistics.median(rates['pytorch']):.2f}x; largest feature "
          f"difference {np.abs(fast(x) - feature_engine.torch_engine(x)).max():.1e}")


if __name__ == "__main__":
    main()
