"""How well the audit finds moved images and planted near-duplicates, and how long it takes.

    python3 benchmarks/audit_quality.py WORK_DIR [--photos-per-class 60] [--project DIR] [--seeds 0 1 2]

For scikit-learn's digits (32 px PNG class folders) and crops of scikit-image photos: copy the set,
move a random 5 % of the images into a wrong class folder, plant 20 near-duplicates (resized,
re-encoded or shifted copies, in the same or another class), run the audit, and print
recall of the moved images in the top 2N suspects, precision at N, the share of planted pairs
found, whether the copy stayed byte-identical, and the audit time with and without stored features.

Half of the near copies are filed under another class than their original: by construction those are
wrong labels too (a label conflict), so precision and recall are also given against all wrongly filed
images (moved ones and those copies), with N their number.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import write_digits  # noqa: E402
from photo_classes import write_photo_classes  # noqa: E402

from studio.core.audit import run_audit  # noqa: E402
from studio.core.dataset import scan  # noqa: E402


def folder_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _near_copy(img: Image.Image, kind: int) -> Image.Image:
    w, h = img.size
    if kind == 0:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=70)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == 1:
        return img.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC)
    shift = max(1, round(w * 0.05))
    return img.crop((shift, 0, w, h - shift)).resize((w, h), Image.Resampling.BILINEAR)


def plant(source: Path, out: Path, seed: int = 0, moved_share: float = 0.05, copies: int = 20
          ) -> tuple[set[str], list[tuple[str, str]]]:
    """Copy `source` to `out` with moved images and near copies; returns (moved files, planted pairs)."""
    rng = np.random.default_rng(seed)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    classes = sorted(p.name for p in out.iterdir() if p.is_dir())
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg"))
    picks = rng.permutation(len(files))
    moved: set[str] = set()
    for i in picks[: round(len(files) * moved_share)]:
        path = files[i]
        wrong = rng.choice([c for c in classes if c != path.parent.name])
        target = out / wrong / path.name
        path.rename(target)
        moved.add(target.relative_to(out).as_posix())
    pairs = []
    for k, i in enumerate(picks[-copies:]):
        path = files[i]
        cls = path.parent.name if k % 2 == 0 else rng.choice([c for c in classes if c != path.parent.name])
        target = out / cls / f"near-copy-{k}.png"
        _near_copy(Image.open(path).convert("RGB"), k % 3).save(target)
        pairs.append((path.relative_to(out).as_posix(), target.relative_to(out).as_posix()))
    return moved, pairs


def measure(name: str, source: Path, work: Path, project: Path, seed: int = 0) -> None:
    data = work / f"{name}-audited"
    moved, pairs = plant(source, data, seed=seed)
    before = folder_hash(data)
    report = scan(data)
    started, cpu = time.perf_counter(), time.process_time()
    result = run_audit(report, project)
    first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    run_audit(report, project)
    again, again_cpu = time.perf_counter() - started, time.process_time() - cpu
    ranked = [s.file for s in result.suspected_labels]
    n = len(moved)
    recall = len(moved & set(ranked[: 2 * n])) / n
    precision = len(moved & set(ranked[:n])) / n
    # A near copy filed under another class is a wrong label too (a label conflict), by construction.
    conflicts = {b for a, b in pairs if a.split("/")[0] != b.split("/")[0]}
    wrong = moved | conflicts
    precision_all = len(wrong & set(ranked[:len(wrong)])) / len(wrong)
    recall_all = len(wrong & set(ranked[:2 * len(wrong)])) / len(wrong)
    group_of = {f: i for i, g in enumerate(result.duplicates) for f in g.files}
    found = sum(1 for a, b in pairs if a in group_of and group_of.get(a) == group_of.get(b))
    sizes = sorted((len(g.files) for g in result.duplicates), reverse=True)
    print(f"{name} (seed {seed}): {len(result.files)} images, {n} moved, {len(pairs)} near copies planted")
    print(f"  moved images in top 2N suspects: {recall:.0%}   precision at N: {precision:.0%}"
          f"   ({len(ranked)} suspects in all)")
    print(f"  counting the {len(conflicts)} copies planted in another class as the wrong labels they are "
          f"(N = {len(wrong)}): in top 2N {recall_all:.0%}, precision at N {precision_all:.0%}")
    print(f"  planted near-duplicate pairs found: {found}/{len(pairs)} ({found / len(pairs):.0%});"
          f" {len(result.duplicates)} groups, largest {sizes[:5]}")
    print(f"  outliers: {len(result.outliers)}; source byte-identical: {folder_hash(data) == before}")
    print(f"  audit time: {first:.1f} s wall / {first_cpu:.1f} s CPU (features as stored before), "
          f"{again:.1f} s wall / {again_cpu:.1f} s CPU with every feature stored", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--photos-per-class", type=int, default=60)
    parser.add_argument("--project", type=Path, help="project folder (default WORK/project; reused features)")
    parser.add_argument("--only", choices=("digits", "photos"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="which images are moved and copied")
    args = parser.parse_args(argv)
    project = args.project or args.work / "project"
    for seed in args.seeds:
        if args.only in (None, "digits"):
            measure("digits", write_digits(args.work / "digits"), args.work, project, seed)
        if args.only in (None, "photos"):
            photos, _ = write_photo_classes(args.work / "photos", per_class=args.photos_per_class, size=96)
            measure("photos", photos, args.work, project, seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
