"""Layers in words: every architecture as numbered blocks grouped in stages, with no PyTorch names."""

from __future__ import annotations

import pytest

from studio.core.config import ModelConfig
from studio.core.layer_words import layers_in_words
from studio.core.models import build_model, count_parameters


def test_custom_cnn_reads_as_blocks_that_halve_the_picture() -> None:
    model = build_model(ModelConfig(arch="custom", blocks=3, width=8, image_size=32), 4, load_weights=False)
    rows = layers_in_words(model, 32)
    assert [r.line for r in rows[:3]] == [
        "Block 1 — 8 pattern detectors, each looking at 16 × 16 positions",
        "Block 2 — 16 pattern detectors, each looking at 8 × 8 positions",
        "Block 3 — 32 pattern detectors, each looking at 4 × 4 positions",
    ]
    assert rows[-1].line == "Decision — weighs those numbers into 4 class scores"
    assert not any(r.is_stage for r in rows)  # one block per map size: no stages to group
    assert sum(r.params for r in rows) == count_parameters(model)[0]


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "resnet18"])
def test_registry_backbones_are_grouped_into_stages_by_map_size(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, pretrained="none", image_size=64), 3, load_weights=False)
    rows = layers_in_words(model, 64)
    stages = [r for r in rows if r.is_stage]
    assert len(stages) >= 4
    for stage in stages:
        blocks = [r for r in rows if r.stage == stage.stage and not r.is_stage]
        assert blocks and len({b.shape[1:] for b in blocks}) == 1
        assert stage.params == sum(b.params for b in blocks)
    assert sum(r.params for r in rows if not r.is_stage) == count_parameters(model)[0]
    names = dict(model.named_modules())
    assert all(r.layer in names for r in rows if not r.is_stage)
