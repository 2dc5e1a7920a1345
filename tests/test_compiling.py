"""The compile setting: a compiled step learns as the eager one does; without a toolchain a run trains eagerly."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from studio.core import compiling
from studio.core.callbacks import Callback
from studio.core.config import ModelConfig
from studio.core.models import build_model
from studio.core.train import Trainer
from tests.conftest import make_colour_folder
from tests.test_train import tiny_config


class Lines(Callback):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_status(self, message: str) -> None:
        self.lines.append(message)


def _losses(net: torch.nn.Module, params, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> list[float]:
    opt = torch.optim.SGD(params, lr=0.05)
    net.train()
    out = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(float(loss))
    return out


@pytest.mark.slow
def test_a_compiled_step_gives_the_eager_loss_on_tiny_data() -> None:
    if compiling.toolchain_problem():
        pytest.skip("no compiler toolchain here")
    torch.manual_seed(0)
    cfg = ModelConfig(arch="custom", pretrained="none", image_size=16, width=8, blocks=2, dropout=0.0)
    eager = build_model(cfg, 3, load_weights=False)
    twin = copy.deepcopy(eager)
    x, y = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    step = compiling.CompiledStep(twin)
    expected = _losses(eager, eager.parameters(), x, y)
    got = _losses(step, step.parameters(), x, y)
    assert not step.failed
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert expected[-1] < expected[0]  # the steps did learn, so equal losses mean equal updates
    assert len(list(step.parameters())) == len(list(eager.parameters()))


def test_without_a_toolchain_a_compiled_run_trains_eagerly_and_says_so_once(tmp_path: Path, monkeypatch) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=8, size=16)
    plain = Trainer(tiny_config(data, epochs=2), project=tmp_path / "p1").run()
    monkeypatch.setattr(compiling, "toolchain_problem", lambda: "no C++ compiler is installed")
    lines = Lines()
    asked = Trainer(tiny_config(data, epochs=2, compile=True), project=tmp_path / "p2", callbacks=[lines]).run()
    assert asked.status == "finished"
    said = [line for line in lines.lines if "not possible here" in line]
    assert said == ["Compiling the network is not possible here (no C++ compiler is installed); training runs "
                    "without it."]
    assert [r["train_loss"] for r in asked.history] == [r["train_loss"] for r in plain.history]


def test_a_failing_compilation_falls_back_to_the_eager_network(monkeypatch) -> None:
    def broken(net, **kwargs):
        def run(x):
            raise RuntimeError("inductor: cannot build kernel\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    said: list[str] = []
    step = compiling.CompiledStep(net, said.append)
    x = torch.randn(4, 3, 2, 2)
    assert torch.equal(step(x), net(x)) and torch.equal(step(x), net(x))
    assert step.failed == "inductor: cannot build kernel"
    assert len(said) == 1 and "not possible here" in said[0]
