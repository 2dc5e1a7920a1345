"""A run's random draws are its own: dropout and weight initialisation are not moved by other threads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.randomness import GeneratorDropout, RunRandom, private_dropout, seeded_global


def test_private_dropout_draws_from_its_generator_only() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.3), nn.Linear(8, 2)))
    rnd = RunRandom(seed=3)
    assert private_dropout(model, rnd.dropout) == 2
    assert all(type(m) is not nn.Dropout for m in model.modules())
    assert isinstance(model[1], GeneratorDropout) and model[1].p == 0.5
    x = torch.ones(4, 8)
    model.train()
    before = torch.random.get_rng_state()
    first = model[1](x)
    assert torch.equal(torch.random.get_rng_state(), before)
    rnd.start_epoch(1)
    torch.rand(100)  # someone else drawing meanwhile
    assert torch.equal(model[1](x), first)
    model.eval()
    assert torch.equal(model[1](x), x)
    assert set(first.unique().tolist()) <= {0.0, 2.0}


def test_seeded_global_repeats_initialisation_and_restores_the_process_state() -> None:
    torch.manual_seed(123)
    outside = torch.random.get_rng_state()
    with seeded_global(7):
        a = nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(torch.random.get_rng_state(), outside)
    with seeded_global(7):
        b = nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(a, b)


def test_stochastic_depth_of_torchvision_backbones_is_private_too() -> None:
    from torchvision.models import efficientnet_b0
    from torchvision.ops import StochasticDepth

    net = efficientnet_b0()
    before = sum(isinstance(m, StochasticDepth) for m in net.modules())
    rnd = RunRandom(seed=1)
    assert before > 0 and private_dropout(net, rnd.dropout) >= before
    assert not any(isinstance(m, StochasticDepth) for m in net.modules())
    net.train()
    x = torch.randn(2, 3, 32, 32)
    rnd.start_epoch(1)
    first = net(x)
    rnd.start_epoch(1)
    torch.rand(100)
    assert torch.equal(net(x), first)


def test_frozen_backbone_features_are_the_ones_prediction_computes() -> None:
    """The head trains and validates on fp32 features, as `Predictor` computes them, not bf16 ones."""
    from studio.core.config import ModelConfig
    from studio.core.loop import compute_features
    from studio.core.models import build_model

    model = build_model(ModelConfig(image_size=16, width=8, blocks=2), 3, load_weights=False).eval()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.backbone(x)
    assert torch.equal(compute_features(model.backbone, [(x, None)]), expected)


def test_private_init_depends_on_the_seed_alone() -> None:
    from studio.core.config import ModelConfig
    from studio.core.models import build_model
    from studio.core.randomness import private_init

    def fresh(noise: int) -> dict:
        torch.rand(noise)  # other threads drawing before and during the build
        model = build_model(ModelConfig(image_size=16, width=8, blocks=2), 3, load_weights=False)
        assert private_init(model, torch.Generator().manual_seed(4)) == 3
        return model.state_dict()

    a, b = fresh(1), fresh(1000)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_frozen_backbone_run_by_onnx_runtime_gives_its_own_features(monkeypatch) -> None:
    """The faster engine for a frozen backbone's one pass: the same numbers, exported once per set of weights."""
    pytest.importorskip("onnxruntime")
    from studio.core import feature_engine
    from studio.core.config import ModelConfig
    from studio.core.loop import compute_features
    from studio.core.models import build_model

    exports: list[int] = []
    real_export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: (exports.append(1), real_export(*a, **k))[1])
    model = build_model(ModelConfig(image_size=16, width=8, blocks=2), 3, load_weights=False).eval()
    batches = [(torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(k)), None) for k in range(3)]
    engine = feature_engine.frozen_engine(model.backbone, 16)
    assert engine is not None and len(exports) == 1
    fast = compute_features(model.backbone, batches, engine)
    assert torch.allclose(fast, compute_features(model.backbone, batches), atol=1e-4)
    assert feature_engine.frozen_engine(model.backbone, 16) is not None and len(exports) == 1  # kept, not redone
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1.0)
    changed = feature_engine.frozen_engine(model.backbone, 16)
    assert len(exports) == 2  # other weights, another graph
    assert torch.allclose(compute_features(model.backbone, batches, changed),
                          compute_features(model.backbone, batches), atol=1e-4)
