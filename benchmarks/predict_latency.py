"""What the verdict costs: drop → answer time with and without calibration and the familiarity check.

For the custom CNN at 64 px and ResNet-18 at 224 px (random weights: speed does not depend on
them), times one JPEG file through `Predictor.predict_paths` (decode, resize, forward, softmax,
top-k) — the path a dropped file takes in the window and in `studio predict`:

- before: a checkpoint without the new fields (no temperature, no verdict);
- after, network space: temperature and class Gaussians on the network's own features, the same
  forward pass (used when a run asks for it);
- after, reference space: the bundled EfficientNet-Lite0 embeds the picture too, at 160 px (what every
  run uses by default), when the feature store is installed.

Target: ResNet-18 at 224 px under 150 ms on two cores, after as before.

    python benchmarks/predict_latency.py [--repeat 20] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.inspect_latency import timed  # noqa: E402
from studio.core.checkpoint import make_checkpoint  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.familiarity import Familiarity  # noqa: E402
from studio.core.models import architecture_info, build_model  # noqa: E402
from studio.core.predict import Predictor  # noqa: E402


def checkpoint(arch: str, size: int, classes: int = 10) -> dict:
    cfg = RunConfig()
    cfg.model.arch, cfg.model.image_size = arch, size
    torch.manual_seed(0)
    model = build_model(cfg.model, classes, load_weights=False)
    info = architecture_info(arch)
    return make_checkpoint(model=model, config=cfg, classes=[f"class {i}" for i in range(classes)],
                           mean=info.mean, std=info.std, metrics={})


def with_verdict(data: dict, dim: int, space: str) -> dict:
    """The fields a finished run adds; random statistics cost the same arithmetic as fitted ones."""
    g = torch.Generator().manual_seed(1)
    classes = len(data["classes"])
    fam = Familiarity(torch.nn.functional.normalize(torch.rand(classes, dim, generator=g), dim=1),
                      torch.eye(dim) * 50.0, threshold=10.0, share=0.95, space=space)
    return {**data, "temperature": 1.5, "familiarity": fam.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from studio.core.reference import reference_available

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([xx / 640 * 255, yy / 480 * 255, (xx + yy) / 1120 * 255], axis=-1)
    photo = Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = Path(tmp) / "photo.jpg"
        photo.save(jpeg, quality=90)
        for arch, size in (("custom", 64), ("resnet18", 224)):
            data = checkpoint(arch, size)
            dim = build_model(RunConfig().model if arch == "custom" else _cfg(arch, size), 10,
                              load_weights=False).feature_dim
            cases = [("before (no verdict)", Predictor(data)),
                     ("after, network space", Predictor(with_verdict(data, dim, "network")))]
            if reference_available():
                cases.append(("after, reference (default)", Predictor(with_verdict(data, 1280, "reference"))))
            print(f"{arch} at {size} px, file -> top-5 and verdict")
            for label, predictor in cases:
                median, worst = timed(lambda p=predictor: list(p.predict_paths([jpeg], 5)), args.repeat)
                target = "" if arch != "resnet18" else ("  ok" if median < 150 else "  OVER the 150 ms target")
                print(f"  {label:<28} median {median:8.2f} ms   worst {worst:8.2f} ms{target}")


def _cfg(arch: str, size: int):
    cfg = RunConfig().model
    cfg.arch, cfg.image_size = arch, size
    return cfg


if __name__ == "__main__":
    main()
