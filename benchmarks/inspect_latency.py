"""How fast one image gets its answer, and how fast the inspect view can switch layers.

For the custom CNN at 64 px and ResNet-18 at 224 px (random weights: speed does not
depend on them), prints median and worst times over repeated runs of:

- image → top-k: a decoded PIL photo through `Predictor.predict_image` (resize, normalize,
  forward, softmax, top-k), and the same from a JPEG file on disk (decode included);
- the one recorded pass of an `Inspection` (every module's output kept);
- fetching one layer's feature maps from that stored pass (`Inspection.maps`, sorted by mean),
  over every layer that has maps;
- a Grad-CAM for the predicted class (one forward and backward).

Targets: image → top-k under 150 ms for ResNet-18, a layer's maps under 50 ms.

    python benchmarks/inspect_latency.py [--repeat 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.core.checkpoint import make_checkpoint  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.inspect import Inspection  # noqa: E402
from studio.core.models import architecture_info, build_model  # noqa: E402
from studio.core.predict import Predictor  # noqa: E402


def timed(fn: Callable[[], object], repeat: int, warmup: int = 2) -> tuple[float, float]:
    """(median, worst) milliseconds, after warm-up calls (first calls pay for oneDNN kernel setup)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def predictor_for(arch: str, size: int, classes: int = 10) -> Predictor:
    cfg = RunConfig()
    cfg.model.arch, cfg.model.image_size = arch, size
    torch.manual_seed(0)
    model = build_model(cfg.model, classes, load_weights=False)
    info = architecture_info(arch)
    data = make_checkpoint(model=model, config=cfg, classes=[f"class {i}" for i in range(classes)],
                           mean=info.mean, std=info.std, metrics={})
    return Predictor(data)


def row(label: str, median: float, worst: float, target: float | None = None) -> str:
    verdict = "" if target is None else ("  ok" if median < target else f"  OVER the {target:.0f} ms target")
    return f"  {label:<44} median {median:8.2f} ms   worst {worst:8.2f} ms{verdict}"


def bench(arch: str, size: int, repeat: int, photo: Image.Image, jpeg: Path) -> None:
    predictor = predictor_for(arch, size)
    print(f"{arch} at {size} px")
    target = 150.0 if arch == "resnet18" else None
    print(row("image -> top-5 (PIL image in hand)", *timed(lambda: predictor.predict_image(photo, 5), repeat),
              target))
    print(row("file -> top-5 (JPEG decode included)",
              *timed(lambda: list(predictor.predict_paths([jpeg], 5)), repeat), target))
    print(row("inspection: one recorded pass", *timed(lambda: Inspection.of_image(predictor, photo), repeat)))
    ins = Inspection.of_image(predictor, photo)
    kept = {id(t): t for t in ins.activations.values()}
    megabytes = sum(t.numel() * t.element_size() for t in kept.values()) / 1e6
    layers = [r.name for r in ins.layers if r.has_maps]
    per_layer = [timed(lambda n=name: ins.maps(n, sort="mean"), max(3, repeat // 4), warmup=1) for name in layers]
    medians = [m for m, _ in per_layer]
    slowest = layers[int(np.argmax(medians))]
    print(row(f"a layer's maps ({len(layers)} layers, median of layers)", statistics.median(medians),
              max(w for _, w in per_layer), 50.0))
    print(f"  {'':<44} slowest layer {slowest} {ins.layer(slowest).output_shape}: {max(medians):.1f} ms")
    print(f"  {'':<44} stored activations: {megabytes:.1f} MB for {len(ins.activations)} modules")
    print(row(f"Grad-CAM at {ins.cam_layer}",
              *timed(lambda: ins._cams.clear() or ins.grad_cam(), max(3, repeat // 2))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads\n")
    rng = np.random.default_rng(0)
    # A 640x480 "photo": smooth gradients plus noise, so JPEG decoding costs what a real one does.
    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([xx / 640 * 255, yy / 480 * 255, (xx + yy) / 1120 * 255], axis=-1)
    photo = Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = Path(tmp) / "photo.jpg"
        photo.save(jpeg, quality=90)
        for arch, size in (("custom", 64), ("resnet18", 224)):
            bench(arch, size, args.repeat, photo, jpeg)
            print()


if __name__ == "__main__":
    main()
