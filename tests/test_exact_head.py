"""The exact solve of a frozen network's last layer: it reaches the optimum, and is refused where it cannot work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.config import RunConfig
from studio.core.errors import ConfigError
from studio.core.exact_head import make_solver, set_standardiser, solve_epoch

pytestmark = pytest.mark.timeout(60)


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping classes on features of very different scales, as stage statistics have them."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 8, generator=g) + nn.functional.one_hot(labels, 8)[:, :8].float()
    return x * torch.tensor([1, 100, 0.01, 1, 5, 1, 1, 1]) + 7, labels


def test_the_solve_reaches_the_penalised_optimum_and_standardises_exactly() -> None:
    x, y = _problem()
    head = nn.Sequential(nn.BatchNorm1d(8, affine=False), nn.Dropout(0.5), nn.Linear(8, 3))
    set_standardiser(head, x)
    norm = head[0]
    assert torch.allclose(norm.running_mean, x.mean(0), rtol=1e-4)
    assert torch.allclose(norm.running_var, x.var(0), rtol=1e-3)
    solver, l2 = make_solver(head), 0.05
    for _ in range(5):
        stats = solve_epoch(head, x, y, solver, nn.CrossEntropyLoss(), l2)
    # At the optimum the penalised objective's gradient vanishes (dropout is off: eval mode).
    head.zero_grad()
    z = (x - norm.running_mean) / (norm.running_var + norm.eps).sqrt()
    objective = nn.functional.cross_entropy(head[2](z), y) + 0.5 * l2 * head[2].weight.pow(2).sum()
    objective.backward()
    assert head[2].weight.grad.abs().max() < 1e-3 and head[2].bias.grad.abs().max() < 1e-3
    assert 0.5 < stats.accuracy < 1.0 and stats.images == 300  # overlapping classes: not memorised


def test_a_stronger_penalty_gives_smaller_weights() -> None:
    x, y = _problem(1)
    sizes = []
    for l2 in (0.001, 1.0):
        head = nn.Sequential(nn.BatchNorm1d(8, affine=False), nn.Linear(8, 3))
        set_standardiser(head, x)
        solver = make_solver(head)
        for _ in range(3):
            solve_epoch(head, x, y, solver, nn.CrossEntropyLoss(), l2)
        sizes.append(float(head[1].weight.norm()))
    assert sizes[1] < 0.5 * sizes[0]


@pytest.mark.parametrize("mode, preset, sampler", [("full", "none", False), ("head", "natural", False),
                                                  ("head", "none", True)])
def test_the_solve_is_refused_where_pixels_or_the_backbone_change(mode: str, preset: str, sampler: bool) -> None:
    from studio.core.config import AugmentConfig

    cfg = RunConfig()
    cfg.data.root = "x"
    cfg.model.arch, cfg.model.pretrained, cfg.model.mode = "efficientnet_lite0", "imagenet", mode
    cfg.augment = AugmentConfig.from_preset(preset)
    cfg.train.optimizer = "lbfgs"
    if sampler:  # every image at once: classes cannot be sampled equally often
        cfg.train.imbalance = "balanced-sampler"
    with pytest.raises(ConfigError, match="train.imbalance" if sampler else "train.optimizer"):
        cfg.validate()


def test_the_refit_uses_validation_images_but_their_logits_come_from_solves_that_never_saw_them() -> None:
    """A mislabelled validation image: the refit (which saw it) learns its wrong label; its cross-fitted
    logits, which the temperature and the validation figure use, still say what the other images teach."""
    from studio.core.exact_head import refit_with_validation

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(2, 200, generator=g) * 3
    train_y = torch.arange(40) % 2
    train_x = centres[train_y] + torch.randn(40, 200, generator=g)
    val_y = torch.arange(20) % 2
    val_x = centres[val_y] + torch.randn(20, 200, generator=g)
    val_y[0] = 1 - val_y[0]  # filed under the wrong class
    head = nn.Sequential(nn.BatchNorm1d(200, affine=False), nn.Linear(200, 2))
    set_standardiser(head, train_x)
    loss = nn.CrossEntropyLoss()
    stats, val, held = refit_with_validation(head, (train_x, train_y), (val_x, val_y), loss, loss, 1e-4)
    with torch.no_grad():
        refit = head(val_x).argmax(1)
    assert refit[0] == val_y[0]  # memorised: 200 features are enough to fit one odd image
    assert held.argmax(1)[0] != val_y[0]  # never seen by the solve that scored it
    assert torch.equal(held.argmax(1)[1:], val_y[1:])
    assert stats.images == 60 and val.images == 20 and val.accuracy == pytest.approx(19 / 20)
