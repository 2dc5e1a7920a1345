"""Does a model know when an image is unlike its training images? And does its confidence mean what it says?

Two real data sets, each a stranger to the other:
- photo crops: non-overlapping 64 px tiles of six scikit-image photographs (class = the photograph),
  every third column of tiles held out (disjoint regions spread over each photo);
- digits: scikit-learn's handwritten digits as 32 px PNGs, every fifth image held out.

For each direction (photo model shown digits, digits model shown photo crops) and each model (the
custom CNN from scratch with today's default settings given as explicit flags, and the bundled
EfficientNet-Lite0 pretrained with its backbone frozen) it prints:
- the share of foreign images flagged unfamiliar (target >= 90 %),
- the share of the model's own held-out images flagged (target <= 10 %),
- AUROC of the familiarity score (foreign vs own held-out),
- for photo models, the calibration error (ECE) on the held-out crops before and after temperature scaling
  (target <= 0.05 after),
in each feature space the verdict can use: the network's own ("network") and the bundled ImageNet
network's ("reference", when the feature store is installed). The space a run picks by itself is marked.

    python benchmarks/unfamiliar.py [--work DIR] [--quick] [--only custom|pretrained]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.digits import write_digits  # noqa: E402
from studio.core.calibration import expected_calibration_error  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.images import load_for_model, to_tensor  # noqa: E402
from studio.core.predict import Predictor, expand_inputs  # noqa: E402
from studio.core.train import Trainer  # noqa: E402
from studio.core.trust import choose_space  # noqa: E402
from studio.core.trust_fit import refit_run  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def write_photo_crops(folder: Path, tile: int = 64, side: int = 960) -> tuple[Path, Path]:
    """Non-overlapping 64 px tiles of each photo scaled to `side` px; every third column of tiles held out.

    960 px gives 1,080 tiles (360 held out). At 640 px there were 138 held-out tiles, too few to measure a
    calibration error of 0.05: a perfectly calibrated model shows 0.04-0.06 on so few by chance alone.
    Tiles rather than random crops: random crops overlap each other, so the run's own validation
    images (drawn from the training crops) would be near-copies of training images and say nothing
    about new ones. Columns rather than one side: one side of a photograph can show things the other
    does not (the astronaut's flag), and a tile of something never trained on is rightly unfamiliar.
    """
    import skimage.data

    train_dir, test_dir = folder / f"tiles{side}_train", folder / f"tiles{side}_test"
    if (folder / f".tiles{side}-complete").exists():
        return train_dir, test_dir
    for name in PHOTOS:
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        scale = side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        for out in (train_dir, test_dir):
            (out / name).mkdir(parents=True, exist_ok=True)
        for col, x in enumerate(range(0, image.width - tile + 1, tile)):
            out = test_dir if col % 3 == 2 else train_dir
            for y in range(0, image.height - tile + 1, tile):
                image.crop((x, y, x + tile, y + tile)).save(out / name / f"{name}_{x:03d}_{y:03d}.png")
    (folder / f".tiles{side}-complete").write_text("ok")
    return train_dir, test_dir


def split_digits(folder: Path) -> tuple[Path, Path]:
    """Every fifth digit held out, the rest to train on."""
    all_dir = write_digits(folder / "digits_all", size=32)
    train_dir, test_dir = folder / "digits_train", folder / "digits_test"
    if not (folder / ".digits-complete").exists():
        for path in sorted(all_dir.rglob("*.png")):
            out = test_dir if int(path.stem) % 5 == 0 else train_dir
            (out / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, out / path.parent.name / path.name)
        (folder / ".digits-complete").write_text("ok")
    return train_dir, test_dir


def train(data: Path, project: Path, kind: str, epochs: int, reuse: bool = False) -> Path:
    if reuse:  # a run of an earlier invocation, e.g. to measure a feature space installed since
        done = sorted((project / "runs").glob(f"*-{data.name}-{kind}"))
        if done and (done[-1] / "best.pt").is_file():
            print(f"  reusing {done[-1].name}", flush=True)
            return done[-1]
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.name = f"{data.name}-{kind}"
    if kind == "custom":  # today's defaults, spelled out: custom CNN, 64 px, 15 epochs, AdamW 1e-3, no augmentation
        cfg.model.arch, cfg.model.pretrained, cfg.model.mode, cfg.model.image_size = "custom", "none", "full", 64
        cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = epochs, 64, 1e-3
    else:  # the bundled ImageNet network, backbone frozen: its features are computed once
        cfg.model.arch, cfg.model.pretrained, cfg.model.mode, cfg.model.image_size = \
            "efficientnet_lite0", "imagenet", "head", 224
        cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = max(epochs // 2, 3), 64, 1e-3
    start = time.perf_counter()
    result = Trainer(cfg, project=project).run()
    print(f"  trained {cfg.name}: {result.status}, best val acc {result.best_val_acc:.3f}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return Path(result.run_dir)


def auroc(familiar: np.ndarray, foreign: np.ndarray) -> float:
    """Probability that a foreign image scores higher than a familiar one (ties count half)."""
    both = np.concatenate([familiar, foreign])
    ranks = np.empty(len(both))
    order = np.argsort(both, kind="mergesort")
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks of ties
        tie = both == value
        ranks[tie] = ranks[tie].mean()
    n1, n2 = len(familiar), len(foreign)
    return float((ranks[n1:].sum() - n2 * (n2 + 1) / 2) / (n1 * n2))


def scores(predictor: Predictor, files: list[Path]) -> np.ndarray:
    return np.array([p.score for p in predictor.predict_paths(files) if not p.error], dtype=np.float64)


def chance_ece(probabilities: np.ndarray, draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences shows on this many images, by chance alone.

    Labels are drawn so that each top answer is right with exactly its stated probability; the mean ECE
    over the draws is the floor below which a measured figure says nothing.
    """
    rng = np.random.default_rng(0)
    conf, top = probabilities.max(1), probabilities.argmax(1)
    wrong = (top + 1) % probabilities.shape[1]
    return float(np.mean([expected_calibration_error(probabilities, np.where(rng.random(len(conf)) < conf, top, wrong))
                          for _ in range(draws)]))


def calibration(predictor: Predictor, folder: Path) -> str:
    """Held-out accuracy against validation's, and ECE before/after the temperature (15 equal-width bins)."""
    files = expand_inputs([folder])
    pixels = torch.stack([to_tensor(load_for_model(f, predictor.image_size)) for f in files])
    labels = np.array([predictor.classes.index(f.parent.name) for f in files])
    logits = torch.cat([predictor.logits(pixels[i:i + 64]) for i in range(0, len(pixels), 64)]).double()
    before = torch.softmax(logits, 1).numpy()
    after = torch.softmax(logits / predictor.temperature, 1).numpy()
    fitted, nan = predictor.calibration, float("nan")
    ece_before, ece_after = expected_calibration_error(before, labels), expected_calibration_error(after, labels)
    return (f"\n    calibration: held-out acc {(after.argmax(1) == labels).mean():.3f} on {len(labels)} (val acc "
            f"{predictor.metrics.get('val_acc', nan):.3f} on {fitted.get('images', 0)}); "
            f"T={predictor.temperature:.2f}; ECE held-out {ece_before:.3f} -> {ece_after:.3f} "
            f"(chance floor {chance_ece(after):.3f}); ECE val {fitted.get('ece_before', nan):.3f} -> "
            f"{fitted.get('ece_after', nan):.3f}")


def measure(run_dir: Path, own_test: Path, foreign: list[Path], photos: bool, chosen: str) -> None:
    predictor = Predictor(run_dir)
    space = predictor.space
    own = scores(predictor, expand_inputs([own_test]))
    odd = scores(predictor, foreign)
    line = (f"  space {space:<9}{' (chosen)' if space == chosen else '         '} foreign flagged "
            f"{100 * (odd > 1).mean():5.1f}%   own held-out flagged {100 * (own > 1).mean():5.1f}%   "
            f"AUROC {auroc(own, odd):.3f}")
    if photos:
        line += calibration(predictor, own_test)
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/studio-unfamiliar")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and images (a smoke test)")
    parser.add_argument("--only", choices=("custom", "pretrained"))
    parser.add_argument("--foreign", type=int, default=400, help="foreign images per direction")
    parser.add_argument("--reuse", action="store_true", help="measure the runs of an earlier invocation again")
    parser.add_argument("--refit", action="store_true", help="fit calibration and familiarity again (current code)")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(args.work)
    photo_train, photo_test = write_photo_crops(work / "data")
    digit_train, digit_test = split_digits(work / "data")
    rng = np.random.default_rng(1)
    digits_all = sorted((work / "data" / "digits_all").rglob("*.png"))
    photos_all = sorted(photo_train.rglob("*.png")) + sorted(photo_test.rglob("*.png"))
    digit_sample = [digits_all[i] for i in sorted(rng.choice(len(digits_all), args.foreign, replace=False))]
    photo_sample = [photos_all[i] for i in sorted(rng.choice(len(photos_all), min(args.foreign, len(photos_all)),
                                                              replace=False))]
    epochs = 4 if args.quick else 15
    from studio.core.reference import reference_available

    spaces = ["network", "reference"] if reference_available() else ["network"]
    print(f"feature spaces measured: {', '.join(spaces)}; torch threads {torch.get_num_threads()}", flush=True)
    photo = ("photo model, shown digits", photo_train, photo_test, digit_sample, True)
    digits = ("digits model, shown photo crops", digit_train, digit_test, photo_sample, False)
    # The quickest first: the from-scratch digits model trains longest.
    for kind, (name, data, own_test, foreign, photos) in (("custom", photo), ("pretrained", photo),
                                                          ("pretrained", digits), ("custom", digits)):
        if args.only and kind != args.only:
            continue
        print(f"{name} — {kind}", flush=True)
        run_dir = train(data, work / "project", kind, epochs, args.reuse)
        # What a run trained now would choose by itself (its setting through today's rule).
        setting = json.loads((run_dir / "config.json").read_text())["train"].get("familiarity_space", "auto")
        chosen = choose_space(setting, reference_available())
        for space in sorted(spaces, key=lambda s: s != chosen):  # the run's own choice first
            if space != Predictor(run_dir).space or args.refit:
                refit_run(run_dir, space=space, project_folder=work / "project")
            measure(run_dir, own_test, foreign, photos, chosen)
        if Predictor(run_dir).space != chosen:  # leave the run as training would leave it now
            refit_run(run_dir, space=chosen, project_folder=work / "project")


if __name__ == "__main__":
    main()
