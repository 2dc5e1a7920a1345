"""A run's own random numbers, so nothing else in the program can change its results.

PyTorch's default generator is one per process. In the window the Augment
preview and the Model page draw from it while a run trains on another thread,
so a run that used it would differ from the same run started again. A run
therefore owns its generators: sampling order (in `loop`), augmentation and
dropout draw from them, re-seeded from (seed, epoch) at every epoch so a
resumed run continues exactly as an uninterrupted one. The network's first
weights still come from the process generator (PyTorch's initializers take
none); that step happens under `global_rng_lock` with a fixed seed, and other
users of the process generator take the same lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

# Held by every code path that seeds or draws from PyTorch's process-wide generator.
global_rng_lock = threading.RLock()


@contextlib.contextmanager
def seeded_global(seed: int) -> Iterator[None]:
    """Draw from the process generator at `seed`, without disturbing (or being disturbed by) other users."""
    with global_rng_lock, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class RunRandom:
    """The generators of one run: augmentation (CPU, where pixels are augmented) and dropout (on the device)."""

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.seed = int(seed)
        self.augment = torch.Generator()
        try:
            self.dropout = torch.Generator(device=torch.device(device))
        except RuntimeError:  # a device without its own generators: masks are drawn on the CPU
            self.dropout = torch.Generator()
        self.start_epoch(1)

    def start_epoch(self, epoch: int) -> None:
        """Every epoch starts from its own seed: resuming at epoch k draws what an unbroken run drew."""
        self.augment.manual_seed((self.seed * 1_000_003 + epoch * 7919) % (2**63))
        self.dropout.manual_seed((self.seed * 998_244_353 + epoch * 104_729 + 1) % (2**63))


class GeneratorDropout(nn.Module):
    """nn.Dropout with masks drawn from a given generator; no weights, so checkpoints are unchanged."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.generator = float(p), generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape, device=self.generator.device).bernoulli_(keep, generator=self.generator)
        return x * mask.to(device=x.device, dtype=x.dtype) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GeneratorStochasticDepth(nn.Module):
    """torchvision's StochasticDepth (skip a residual branch per image, or per batch) from a given generator."""

    def __init__(self, p: float, mode: str, generator: torch.Generator) -> None:
        super().__init__()
        self.p, self.mode, self.generator = float(p), mode, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(shape, device=self.generator.device).bernoulli_(keep, generator=self.generator)
        noise = noise.to(device=x.device, dtype=x.dtype)
        return x * (noise / keep if keep > 0 else noise)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


def private_dropout(model: nn.Module, generator: torch.Generator) -> int:
    """Swap every dropout and stochastic-depth layer of `model` for one drawing from `generator`.

    Returns how many were swapped. (EfficientNet-Lite0's drop-connect is a function call inside its
    blocks, not a layer; it still draws from the process generator when its backbone trains.)
    """
    from torchvision.ops import StochasticDepth

    swapped = 0
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, child_name, GeneratorDropout(child.p, generator))
            elif type(child) is StochasticDepth:
                setattr(module, child_name, GeneratorStochasticDepth(child.p, child.mode, generator))
            else:
                continue
            swapped += 1
    return swapped
