"""Is compiling the training step, or prediction (torch.compile, inductor), worth it on this CPU?

Times the studio's default network at the digits' shape (32 px, 10 classes, batch 64) for a
number of training steps, eager against compiled, and prints the compile time, the steady
per-step times and the break-even point: how many steps a run must take before the compile
time is paid back. A run on the digits takes about 18 steps per epoch (1,150 training images).

With --predict it times prediction instead: the network in eval mode without gradients, on one
picture (a picture dropped in the window) and on a batch (`studio predict` over a folder), and
prints the break-even point in pictures.

    python3 benchmarks/compile_step.py [--size 32] [--batch 64] [--steps 30] [--arch custom] [--predict]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(arch: str, size: int, classes: int) -> torch.nn.Module:
    from studio.core.config import ModelConfig
    from studio.core.models import build_model

    cfg = ModelConfig(arch=arch, pretrained="none" if arch == "custom" else "imagenet", mode="full",
                      image_size=size, blocks=3 if size <= 48 else 4)
    torch.manual_seed(0)
    return build_model(cfg, classes, load_weights=False)


class Stepper:
    """One model and its optimizer; `step()` times one training step."""

    def __init__(self, net: torch.nn.Module, params, x: torch.Tensor, y: torch.Tensor) -> None:
        self.net, self.x, self.y = net, x, y
        self.opt = torch.optim.AdamW(params, lr=1e-3)
        net.train()

    def step(self) -> float:
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(self.net(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start


class Predicting:
    """One model in eval mode; `step()` times one forward pass without gradients."""

    def __init__(self, net: torch.nn.Module, x: torch.Tensor) -> None:
        self.net, self.x = net.eval(), x

    def step(self) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            self.net(self.x)
        return time.perf_counter() - start


def timed(a, b, steps: int) -> tuple[list[float], list[float]]:
    eager, fast = [a.step()], [b.step()]
    for _ in range(steps):  # alternating, so both see the same load on a shared machine
        eager.append(a.step())
        fast.append(b.step())
    return eager, fast


def predict(args: argparse.Namespace) -> None:
    """The whole network compiled for eval (the studio's CompiledStep compiles only the training forward)."""
    from studio.core.compiling import toolchain_problem

    why = toolchain_problem()
    if why:
        print(f"compile unavailable: {why}")
        return
    print(f"threads {torch.get_num_threads()}, {args.arch} at {args.size} px, prediction")
    for batch in (1, args.batch):
        x = torch.randn(batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
        plain = build(args.arch, args.size, 10).to(memory_format=torch.channels_last)
        net = torch.compile(build(args.arch, args.size, 10).to(memory_format=torch.channels_last).eval(),
                            dynamic=False)
        eager, fast = timed(Predicting(plain, x), Predicting(net, x), args.steps)
        e, c = statistics.median(eager[3:]), statistics.median(fast[3:])
        compile_s = fast[0] - c
        line = (f"batch {batch:3d}: eager {e * 1000:7.2f} ms, compiled {c * 1000:7.2f} ms "
                f"(compile {compile_s:.1f} s), speed-up x{e / c:.2f}")
        if c < e:
            line += f"; pays back after {compile_s / (e - c) * batch:,.0f} pictures"
        else:
            line += "; never pays back"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="custom")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--predict", action="store_true", help="time prediction instead of training steps")
    args = parser.parse_args()
    from studio.core.compiling import compiled

    # A fresh compile cache, so the compile time is what a first run pays.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="studio-compile-")
    if args.predict:
        predict(args)
        return
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    plain = build(args.arch, args.size, 10).to(memory_format=torch.channels_last)
    net, why = compiled(build(args.arch, args.size, 10).to(memory_format=torch.channels_last))
    if why:
        print(f"compile unavailable: {why}")
        return
    eager, fast = timed(Stepper(plain, plain.parameters(), x, y), Stepper(net, net.parameters(), x, y), args.steps)
    e, c = statistics.median(eager[3:]), statistics.median(fast[3:])
    compile_s = fast[0] - c
    print(f"threads {torch.get_num_threads()}, {args.arch} at {args.size} px, batch {args.batch}")
    print(f"eager step      {e * 1000:8.1f} ms (first {eager[0] * 1000:.0f} ms)")
    print(f"compiled step   {c * 1000:8.1f} ms (first {fast[0]:.1f} s: compile {compile_s:.1f} s)")
    print(f"speed-up per step x{e / c:.2f}")
    if c < e:
        print(f"break-even after {compile_s / (e - c):.0f} steps "
              f"(~{compile_s / (e - c) / 18:.0f} digits epochs; validation and a shorter last batch run eagerly)")
    else:
        print("compiled steps are not faster: never pays back")


if __name__ == "__main__":
    main()
