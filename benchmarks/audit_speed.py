"""Where the audit's time goes, and how it grows with ten times more images.

    python3 benchmarks/audit_speed.py WORK_DIR [--images 1500] [--scale 10] [--project DIR]

First the real thing: scikit-learn's digits as 32 px PNG class folders (the first --images files),
audited with a fresh project, stage by stage: reading and hashing the files, the backbone's
features (the only stage whose cost is per image and large), the k-fold label check, near
copies, outliers and the map. Then the stages after the features once more on --scale times as
many images. Computing real features for those would take many CPU-minutes on a shared machine,
so their rows are made from the real ones: each a random blend of two images of one class
(features and thumbnails alike), i.e. distinct pictures with the class structure of the real set.
The feature stage at that size is the per-image cost measured here, multiplied. --project reuses a
project whose features are stored (then the feature stage measures reading them, not computing them).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import write_digits  # noqa: E402

from studio.core import audit, neardup  # noqa: E402
from studio.core.dataset import scan  # noqa: E402
from studio.core.features import FeatureStore  # noqa: E402


def timed(what: str, fn: Callable[[], object], times: dict[str, float]) -> object:
    started = time.perf_counter()
    value = fn()
    times[what] = time.perf_counter() - started
    return value


def stages(feats: np.ndarray, thumbs: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """The audit's stages after the features, as run_audit runs them (one BLAS thread)."""
    times: dict[str, float] = {}
    files = [str(i) for i in range(len(feats))]
    with threadpool_limits(limits=1, user_api="blas"):
        timed("k-fold label check", lambda: audit.out_of_fold_log_probabilities(feats, labels, n_classes), times)
        timed("near copies", lambda: neardup.near_duplicate_groups(feats, thumbnails=thumbs), times)
        timed("outliers", lambda: audit.find_outliers(feats, files), times)
        timed("map", lambda: audit.dataset_map(feats), times)
    return times


def blended(feats: np.ndarray, thumbs: np.ndarray, labels: np.ndarray, n: int, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out_labels = rng.choice(labels, size=n)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    a = np.array([rng.choice(by_class[c]) for c in out_labels])
    b = np.array([rng.choice(by_class[c]) for c in out_labels])
    w = rng.uniform(0.3, 0.7, size=n).astype(np.float32)
    f = w[:, None] * feats[a] + (1 - w[:, None]) * feats[b]
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    t = w[:, None, None] * thumbs[a] + (1 - w[:, None, None]) * thumbs[b]
    return f.astype(np.float32), t.astype(np.float32), out_labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--project", type=Path, help="reuse this project's stored features")
    args = parser.parse_args(argv)
    source = write_digits(args.work / "digits")
    project = args.project or args.work / "speed-project"
    if args.project is None:
        shutil.rmtree(project, ignore_errors=True)
    times: dict[str, float] = {}
    report = scan(source, check_pixels=False)
    report = dataclasses.replace(report, records=list(report.good[: args.images]))
    paths = [report.abspath(r) for r in report.good]
    store = FeatureStore(project)
    timed("reading and hashing files", lambda: store.hashes(paths), times)
    cpu = time.process_time()
    feats = timed("features (backbone)", lambda: store.embed_files(paths), times)
    feature_cpu = time.process_time() - cpu
    thumbs = store.thumbnails(paths)
    labels = np.array([report.classes.index(r.class_name) for r in report.good])
    times.update(stages(feats, thumbs, labels, len(report.classes)))
    started = time.perf_counter()
    result = audit.run_audit(report, project)
    whole = time.perf_counter() - started
    n = len(paths)
    print(f"{n} images ({len(report.classes)} classes), {'stored' if args.project else 'fresh'} project:")
    for what, seconds in times.items():
        print(f"  {what:28s} {seconds:7.1f} s")
    per_image = 1000 * times["features (backbone)"] / n
    print(f"  first audit, all stages      {sum(times.values()):7.1f} s   (features: {per_image:.1f} ms wall, "
          f"{1000 * feature_cpu / n:.1f} ms CPU per image)")
    print(f"  audit again, features stored {whole:7.1f} s   ({len(result.suspected_labels)} suspects)")
    big = n * args.scale
    f, t, y = blended(feats, thumbs, labels, big)
    scaled = stages(f, t, y, len(report.classes))
    print(f"{big} images (blended from the real ones; features estimated at the measured per-image cost):")
    estimate = times["features (backbone)"] * args.scale
    print(f"  {'features (backbone), est.':28s} {estimate:7.1f} s   (x{args.scale})")
    for what, seconds in scaled.items():
        print(f"  {what:28s} {seconds:7.1f} s   (x{seconds / max(times[what], 1e-3):.1f})")
    print(f"  audit again, features stored {sum(scaled.values()):7.1f} s;  first audit about "
          f"{estimate + sum(scaled.values()) + times['reading and hashing files'] * args.scale:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
