"""Compiling the training step (torch.compile with its default inductor backend), or saying why not.

Compilation turns the network into fused native kernels: fewer passes over memory per
step, at the price of compile time before the first one (tens of seconds on a small CPU).
Only the training forward at the run's batch size is compiled: validation and a shorter
last batch run the same weights eagerly, so a run pays for one compilation, not one per
shape and mode. Whatever goes wrong (no C compiler, an unsupported layer) leaves the run
training eagerly with one line saying so: the setting can only cost time, never a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import torch
from torch import nn

UNAVAILABLE = "Compiling the network is not possible here ({}); training runs without it."


def toolchain_problem() -> str:
    """"" when inductor can build CPU kernels here, else a short reason in plain words."""
    if not hasattr(torch, "compile"):
        return "this PyTorch cannot compile"
    if not any(shutil.which(name) for name in ("g++", "c++", "clang++")):
        return "no C++ compiler is installed"
    try:
        probe = torch.compile(lambda a: torch.sin(a) * 2, dynamic=False)
        probe(torch.ones(4))
    except Exception as exc:  # noqa: BLE001 - any failure means: train eagerly
        return f"a test compilation failed: {_first_line(exc)}"
    return ""


class CompiledStep(nn.Module):
    """The network, its training forward compiled; everything else (eval, other batch sizes) eager.

    Holds the eager module as its only child, so parameters, modes and state dicts are the
    network's own: checkpoints and the optimizer never see a compiled wrapper.
    """

    def __init__(self, net: nn.Module, on_status: Callable[[str], None] = lambda message: None) -> None:
        super().__init__()
        self.net = net
        # Not registered as a child: it wraps `net` itself, and would list every weight twice.
        object.__setattr__(self, "_compiled", torch.compile(net))
        self._batch: int | None = None  # the batch size the compiled graph is for
        self._on_status = on_status
        self.failed = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.failed or not self.training:
            return self.net(x)
        if self._batch is None:
            self._batch = len(x)
        if len(x) != self._batch:
            return self.net(x)
        try:
            return self._compiled(x)
        except Exception as exc:  # noqa: BLE001 - the run goes on eagerly, with one line saying why
            self.failed = _first_line(exc)
            self._on_status(UNAVAILABLE.format(f"compiling the network failed: {self.failed}"))
            return self.net(x)


def compiled(net: nn.Module, on_status: Callable[[str], None] = lambda message: None) -> tuple[nn.Module, str]:
    """(the network with its training step compiled, "") or (the network itself, why not)."""
    problem = toolchain_problem()
    if problem:
        on_status(UNAVAILABLE.format(problem))
        return net, problem
    return CompiledStep(net, on_status), ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
