"""Trust and defaults: `studio train --data DIR` with no flags against a plain PyTorch loop.

Two data sets, each with a held-out folder that neither side ever sees while training:
- handwritten digits (scikit-learn `load_digits`, 32 px PNG class folders; every 4th image held out);
- crops of 12 scikit-image photographs, one class per photo; training crops come from the left
  70 % of each photo and held-out crops from the right 30 %, so no held-out pixel was ever trained on
  (training crops overlap one another: near-duplicates, as a real collection has them).

For each it prints the held-out accuracy of the studio and of the plain loop, the accuracy the
studio itself reports (test if it held one out, else validation) and the wall times with their
ratio; then what `studio evaluate RUN --data HELDOUT` (a user's own test on new images) finds and
says. The plain loop is what a tutorial writes: ImageFolder, PIL per sample, flips / rotation /
colour jitter, a 3-block CNN, 15 epochs, AdamW. Both run as their own processes and are timed from
start to exit; the plain loop's own seconds (no interpreter start, no imports) are printed too.

    python benchmarks/trust_vs_plain.py [--only digits|photos|sample] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import datasets, transforms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "hubble_deep_field",
          "immunohistochemistry", "retina", "brick", "gravel")


def write_digits(folder: Path) -> tuple[Path, Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        part = "heldout" if i % 4 == 3 else "train"
        cls = folder / part / f"digit_{label}"
        cls.mkdir(parents=True, exist_ok=True)
        grey = (np.asarray(pixels) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        Image.fromarray(grey).resize((32, 32), Image.BICUBIC).save(cls / f"{i:04d}.png")
    return folder / "train", folder / "heldout"


def write_photo_crops(folder: Path, train_per_class: int = 60, test_per_class: int = 20, size: int = 64,
                      seed: int = 0) -> tuple[Path, Path]:
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        img = np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]
        h, w = img.shape[:2]
        cut = int(w * 0.7)
        for part, count, (lo, hi) in (("train", train_per_class, (0, cut)), ("heldout", test_per_class, (cut, w))):
            (folder / part / name).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                side = int(min(rng.integers(size, 2 * size + 1), hi - lo, h))
                x = int(rng.integers(lo, hi - side + 1))
                y = int(rng.integers(0, h - side + 1))
                crop = Image.fromarray(np.ascontiguousarray(img[y:y + side, x:x + side]).astype(np.uint8))
                crop.resize((size, size), Image.BILINEAR).save(folder / part / name / f"{name}_{k:03d}.png")
    return folder / "train", folder / "heldout"


def write_sample(folder: Path) -> tuple[Path, Path]:
    from studio.core.sample import make_sample_dataset

    return make_sample_dataset(folder / "train", per_class=200), make_sample_dataset(folder / "heldout",
                                                                                   per_class=50, seed=99)


def studio_run(train: Path, home: Path) -> tuple[dict, float]:
    """`studio train --data DIR --json`, nothing else: the defaults a new user gets."""
    env = dict(os.environ, STUDIO_HOME=str(home), PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "studio.cli", "train", "--data", str(train), "--json"],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"studio train failed on {train}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout), time.perf_counter() - start


def studio_heldout(run_dir: str, heldout: Path) -> float:
    from studio.core.predict import Predictor, expand_inputs

    files = expand_inputs([str(heldout)])
    predictor = Predictor(run_dir)
    right = sum(p.top[0][0] == Path(p.path).parent.name for p in predictor.predict_paths(files, top_k=1))
    return right / len(files)


def plain_loop(train: Path, heldout: Path, size: int, epochs: int = 15) -> tuple[float, float]:
    """The tutorial loop; returns held-out accuracy and wall seconds (training and scoring)."""
    start = time.perf_counter()
    norm = transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train_tf = transforms.Compose([
        transforms.Resize((size, size)), transforms.RandomHorizontalFlip(), transforms.RandomRotation(10),
        transforms.ColorJitter(0.2, 0.2, 0.2), transforms.ToTensor(), norm])
    test_tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), norm])
    train_set = datasets.ImageFolder(str(train), transform=train_tf)
    test_set = datasets.ImageFolder(str(heldout), transform=test_tf)
    loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    model = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(128, len(train_set.classes)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    model.eval()
    right = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(test_set, batch_size=256):
            right += int((model(x).argmax(1) == y).sum())
    return right / len(test_set), time.perf_counter() - start


def plain_process(train: Path, heldout: Path, size: int) -> tuple[float, float, float]:
    """The tutorial loop run as its own script, as its user runs it: (held-out accuracy, the loop's own
    seconds, the process's wall seconds from start to exit, interpreter and imports included, as the
    studio's are)."""
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from trust_vs_plain import plain_loop; "
            "print(json.dumps(plain_loop(__import__('pathlib').Path(sys.argv[2]), "
            "__import__('pathlib').Path(sys.argv[3]), int(sys.argv[4]))))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(train), str(heldout),
                          str(size)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    acc, loop_s = json.loads(out.stdout.strip().splitlines()[-1])
    return acc, loop_s, wall


def compare(name: str, train: Path, heldout: Path, size: int, work: Path, plain: bool = True) -> None:
    result, studio_s = studio_run(train, work / f"home-{name}")
    truth = studio_heldout(result["run_dir"], heldout)
    reported = result["test_acc"] if result["test_acc"] is not None else result["best_val_acc"]
    which = "test" if result["test_acc"] is not None else "validation"
    notes = (Path(result["run_dir"]) / "report.md").read_text().split("## Notes", 1)[-1].split("##")[0].strip()
    print(f"\n== {name}: {sum(1 for _ in train.rglob('*.png'))} training images, "
          f"{sum(1 for _ in heldout.rglob('*.png'))} held out")
    print(notes)
    print(f"studio (no flags):  held-out {100 * truth:5.1f}%   reports {which} {100 * reported:5.1f}% "
          f"(off by {100 * abs(reported - truth):.1f} points)   wall {studio_s:6.1f} s")
    from studio.core.new_images import evaluate_folder

    own_test = evaluate_folder(result["run_dir"], heldout)  # `studio evaluate RUN --data HELDOUT`
    said = [d.title for d in own_test.diagnostics if d.severity == "warning"]
    print(f"the user's own test (studio evaluate --data): {100 * own_test.metrics.accuracy:5.1f}%   "
          f"warns: {'; '.join(said) or 'nothing'}")
    if plain:
        acc, loop_s, plain_s = plain_process(train, heldout, size)
        print(f"plain PyTorch loop: held-out {100 * acc:5.1f}%   wall {plain_s:6.1f} s (its loop {loop_s:.1f} s)   "
              f"studio/plain wall ratio {studio_s / plain_s:.2f} (against the loop alone {studio_s / loop_s:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("digits", "photos", "sample"))
    parser.add_argument("--work", default="/tmp/trust-vs-plain")
    args = parser.parse_args()
    work = Path(args.work)
    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx512_bf16", "amx_bf16", "avx512f", "avx2"}) \
        if Path("/proc/cpuinfo").exists() else []
    print(f"CPU flags: {' '.join(flags) or 'none of avx2/avx512'}; torch threads {torch.get_num_threads()}; "
          f"cores {os.cpu_count()}")
    if args.only in (None, "digits"):
        compare("digits", *write_digits(work / "digits"), 32, work)
    if args.only in (None, "photos"):
        compare("photos", *write_photo_crops(work / "photos"), 64, work)
    if args.only in (None, "sample"):
        compare("sample", *write_sample(work / "sample"), 64, work, plain=False)


if __name__ == "__main__":
    main()
