"""Studio engine against a plain PyTorch loop: same model, data, epochs and optimizer.

The plain loop is what a tutorial writes: torchvision `ImageFolder`, PIL decode
and transforms per sample every epoch, a DataLoader, fp32. The engine decodes
once into a cache, batches from memory, and on CPUs with AVX-512 BF16 uses
channels_last + bf16 autocast. Prints training images/second after the first
epoch, validation accuracy and the ratio.

    python benchmarks/engine_vs_plain.py --size 32 --epochs 4
    python benchmarks/engine_vs_plain.py --size 64 --epochs 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits import write_digits  # noqa: E402

from studio.core.callbacks import Callback  # noqa: E402
from studio.core.config import ModelConfig, RunConfig  # noqa: E402
from studio.core.models import build_model  # noqa: E402
from studio.core.runfiles import read_split  # noqa: E402
from studio.core.train import Trainer  # noqa: E402


class Speed(Callback):
    def __init__(self) -> None:
        self.epochs: list[tuple[float, float, float | None]] = []  # (images/s, seconds, val acc)

    def on_epoch_end(self, info) -> None:
        self.epochs.append((info.images_per_second, info.seconds, info.val_acc))


def engine(data: Path, project: Path, size: int, epochs: int, batch: int, precision: str, blocks: int
           ) -> tuple[float, float, Path]:
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.model.image_size = size
    cfg.model.blocks = blocks
    cfg.train.epochs, cfg.train.batch_size, cfg.train.precision = epochs, batch, precision
    cfg.train.channels_last = precision != "fp32"
    cfg.train.warmup_epochs = 0
    speed = Speed()
    result = Trainer(cfg, project=project, callbacks=[speed]).run()
    later = speed.epochs[1:] or speed.epochs
    return sum(s[0] for s in later) / len(later), speed.epochs[-1][2] or 0.0, Path(result.run_dir)


def plain(data: Path, size: int, epochs: int, batch: int, run_dir: Path, blocks: int) -> tuple[float, float]:
    """A tutorial loop, on exactly the train/val images of the engine's run (its split.csv)."""
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                             transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])
    full = datasets.ImageFolder(str(data), transform=tf)
    where = {row[0]: row[2] for row in read_split(run_dir)}
    rel = [Path(p).relative_to(data).as_posix() for p, _ in full.samples]
    train_set = torch.utils.data.Subset(full, [i for i, r in enumerate(rel) if where.get(r) == "train"])
    val_set = torch.utils.data.Subset(full, [i for i, r in enumerate(rel) if where.get(r) == "val"])
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=0)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=batch, num_workers=0)
    cfg = ModelConfig(image_size=size, blocks=blocks)
    model = build_model(cfg, len(full.classes), load_weights=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(train_loader))
    loss_fn = nn.CrossEntropyLoss()
    speeds = []
    acc = 0.0
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for x, y in train_loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
        speeds.append(seen / (time.perf_counter() - start))
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        acc = correct / total
    later = speeds[1:] or speeds
    return sum(later) / len(later), acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=3, help="custom CNN blocks (3: the model of the issue's figures)")
    parser.add_argument("--data", help="image folder (default: scikit-learn digits written as PNGs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else write_digits(Path(tmp) / f"digits{args.size}", args.size)
        print(f"data {data}, {args.size} px, custom CNN {args.blocks} blocks, {args.epochs} epochs, "
              f"batch {args.batch_size}, "
              f"{torch.get_num_threads()} threads")
        e32_speed, e32_acc, run_dir = engine(data, Path(tmp) / "p32", args.size, args.epochs, args.batch_size,
                                             "fp32", args.blocks)
        e_speed, e_acc, _ = engine(data, Path(tmp) / "pa", args.size, args.epochs, args.batch_size, "auto", args.blocks)
        p_speed, p_acc = plain(data, args.size, args.epochs, args.batch_size, run_dir, args.blocks)
        print(f"plain loop (ImageFolder, PIL per sample, fp32): {p_speed:8.0f} img/s  val acc {100 * p_acc:.1f}%")
        print(f"engine, fp32 (cache only):                      {e32_speed:8.0f} img/s  val acc {100 * e32_acc:.1f}%"
              f"  ratio {e32_speed / p_speed:.2f}x")
        print(f"engine, auto precision + channels_last:         {e_speed:8.0f} img/s  val acc {100 * e_acc:.1f}%"
              f"  ratio {e_speed / p_speed:.2f}x")


if __name__ == "__main__":
    main()
