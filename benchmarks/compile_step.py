"""Is compiling the training step (torch.compile, inductor) worth it on this CPU?

Times the studio's default network at the digits' shape (32 px, 10 classes, batch 64) for a
number of training steps, eager against compiled, and prints the compile time, the steady
per-step times and the break-even point: how many steps a run must take before the compile
time is paid back. A run on the digits takes about 18 steps per epoch (1,150 training images).

    python3 benchmarks/compile_step.py [--size 32] [--batch 64] [--steps 30] [--arch custom]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build(arch: str, size: int, classes: int) -> torch.nn.Module:
    from studio.core.config import ModelConfig
    from studio.core.models import build_model

    cfg = ModelConfig(arch=arch, pretrained="none" if arch == "custom" else "imagenet", mode="full",
                      image_size=size, blocks=3 if size <= 48 else 4)
    torch.manual_seed(0)
    return build_model(cfg, classes, load_weights=False)


def step_times(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="custom")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from studio.core.compiling import compiled

    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    eager = step_times(build(args.arch, args.size, 10).to(memory_format=torch.channels_last), x, y, args.steps)
    model = build(args.arch, args.size, 10).to(memory_format=torch.channels_last)
    net, why = compiled(model)
    if why:
        print(f"compile unavailable: {why}")
        return
    fast = step_times(net, x, y, args.steps)
    e, c = statistics.median(eager[3:]), statistics.median(fast[3:])
    compile_s = fast[0] - c
    print(f"threads {torch.get_num_threads()}, {args.arch} at {args.size} px, batch {args.batch}")
    print(f"eager step      {e * 1000:8.1f} ms (first {eager[0] * 1000:.0f} ms)")
    print(f"compiled step   {c * 1000:8.1f} ms (first {fast[0]:.1f} s: compile {compile_s:.1f} s)")
    print(f"speed-up per step x{e / c:.2f}")
    if c < e:
        print(f"break-even after {compile_s / (e - c):.0f} steps "
              f"(~{compile_s / (e - c) / 18:.0f} digits epochs; eval-mode and last-batch shapes compile again)")
    else:
        print("compiled steps are not faster: never pays back")


if __name__ == "__main__":
    main()
