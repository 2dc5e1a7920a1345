"""The studio's CUDA path, proven on a machine that has a GPU.

Trains resnet18 (ImageNet weights from a file when one is given, else from
scratch: a GPU machine here has no internet) on a few thousand drawn images with
mixed precision through the studio's own Trainer, and prints:

- training images/second against the model-only rate (the same network, batch
  and precision on random tensors already on the GPU): how well the input side
  keeps the GPU fed;
- GPU utilisation sampled with nvidia-smi during the epochs (target >= 80 %);
- validation accuracy with bf16 and fp16 autocast against fp32 on the same split;
- the DDP path through torchrun: two processes when two GPUs exist, one otherwise.

    python benchmarks/gpu_path.py                  # on the GPU machine
    python benchmarks/gpu_path.py --smoke          # a tiny CPU run: checks the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.core.callbacks import Callback  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.models import build_model  # noqa: E402
from studio.core.sample import make_sample_dataset  # noqa: E402
from studio.core.train import Trainer  # noqa: E402


class Rates(Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []
        self.val: list[float | None] = []

    def on_epoch_end(self, info) -> None:  # noqa: ANN001 - an EpochEnd
        self.rates.append(info.images_per_second)
        self.val.append(info.val_acc)


class GpuSampler:
    """nvidia-smi every half second in a thread: utilisation as the driver sees it."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5)
                self.samples.append(int(out.stdout.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            self._stop.wait(0.5)

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def busy_share(self) -> float | None:
        """Median utilisation over the samples after warm-up (the first two seconds are start-up)."""
        later = sorted(self.samples[4:] or self.samples)
        return later[len(later) // 2] / 100 if later else None


def config(data: Path, args: argparse.Namespace, precision: str) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.model.arch = "resnet18"
    cfg.model.pretrained = args.weights or "none"
    cfg.model.mode = "full"
    cfg.model.image_size = args.size
    cfg.train.epochs = args.epochs
    cfg.train.batch_size = args.batch_size
    cfg.train.precision = precision
    cfg.train.device = "cpu" if args.smoke else "cuda"
    return cfg.validate()


def model_only_rate(args: argparse.Namespace, precision: str, device: torch.device) -> float:
    """Forward + backward + step on random tensors already on the device: the ceiling for the loop."""
    cfg = config(Path("."), args, precision).model
    cfg.pretrained = "none"
    model = build_model(cfg, 4, load_weights=False).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (args.batch_size,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps = 3 if args.smoke else 30
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * args.batch_size / (time.perf_counter() - start)


def train(data: Path, project: Path, args: argparse.Namespace, precision: str) -> dict[str, float | None]:
    rates = Rates()
    with GpuSampler() as gpu:
        started = time.perf_counter()
        result = Trainer(config(data, args, precision), project=project, callbacks=[rates]).run()
        wall = time.perf_counter() - started
    later = rates.rates[1:] or rates.rates
    return {"images_per_second": sum(later) / len(later), "best_val_acc": result.best_val_acc,
            "gpu_busy": gpu.busy_share(), "wall_seconds": wall}


def ddp(data: Path, project: Path, args: argparse.Namespace) -> str:
    procs = max(1, min(2, torch.cuda.device_count()))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "-m", "studio.cli", "train",
           "--data", str(data), "--project", str(project), "--arch", "resnet18", "--pretrained", "none",
           "--mode", "full", "--image-size", str(args.size), "--epochs", "2", "--json", "--quiet"]
    if args.smoke:
        cmd += ["--device", "cpu"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                         cwd=Path(__file__).resolve().parent.parent)
    took = time.perf_counter() - started
    try:
        done = json.loads(out.stdout[out.stdout.index("{"):])
        summary = f"status {done.get('status')}, best val acc {done.get('best_val_acc')}"
    except ValueError:
        summary = (out.stderr or out.stdout).strip()[-300:]
    return f"{procs} process(es), exit {out.returncode}, {took:.0f} s: {summary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="drawn images in all (4 classes)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--weights", help="resnet18 ImageNet weights file (resnet18-f37072fd.pth), if at hand")
    parser.add_argument("--smoke", action="store_true", help="tiny run on the CPU to check the script")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.size, args.epochs, args.batch_size = 80, 32, 2, 16
    elif not torch.cuda.is_available():
        sys.exit("No CUDA device here: run on a GPU machine, or pass --smoke to check the script on the CPU.")
    device = torch.device("cpu" if args.smoke else "cuda")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (smoke)"
    print(f"device {name}, torch {torch.__version__}, {args.images} images at {args.size} px, "
          f"{args.epochs} epochs, batch {args.batch_size}, weights {args.weights or 'none (from scratch)'}")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_sample_dataset(Path(tmp) / "shapes", per_class=args.images // 4, size=max(64, args.size))
        figures = {}
        precisions = ["fp32", "bf16", "fp16"] if device.type == "cuda" else ["fp32"]
        for precision in precisions:
            run = train(data, Path(tmp) / f"p-{precision}", args, precision)
            run["model_only"] = model_only_rate(args, precision, device)
            figures[precision] = run
            busy = run["gpu_busy"]
            print(f"{precision:5s} loop {run['images_per_second']:8.0f} img/s | model only {run['model_only']:8.0f} "
                  f"img/s | fed {run['images_per_second'] / run['model_only']:.0%} | GPU busy "
                  f"{'n/a' if busy is None else f'{busy:.0%}'} | val acc {100 * (run['best_val_acc'] or 0):.1f}% | "
                  f"{run['wall_seconds']:.0f} s")
        base = figures["fp32"]["best_val_acc"] or 0.0
        for precision in precisions[1:]:
            delta = 100 * ((figures[precision]["best_val_acc"] or 0.0) - base)
            print(f"{precision} accuracy minus fp32: {delta:+.1f} points")
        print("DDP:", ddp(data, Path(tmp) / "p-ddp", args))
        out = os.environ.get("OUT")
        if out:
            Path(out, "gpu_path.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
