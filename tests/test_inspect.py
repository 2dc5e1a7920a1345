"""Looking inside: one recorded pass, hooks that leave, filters, and a Grad-CAM that points at the evidence."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.config import ModelConfig
from studio.core.inspect import (
    ActivationRecorder,
    Inspection,
    conv_layers,
    default_cam_layer,
    feature_maps,
    grad_cam,
    learned_filters,
    list_layers,
    overlay_heatmap,
)
from studio.core.models import build_model, list_architectures


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine every op would wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def custom(image_size: int = 24, **kw) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="custom", image_size=image_size, width=kw.pop("width", 8), blocks=kw.pop("blocks", 3), **kw)
    return build_model(cfg, 3, load_weights=False).eval()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


class CallCounter:
    """Counts calls of the whole model, from outside the code under test."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(lambda *a: setattr(self, "calls", self.calls + 1))


@pytest.mark.parametrize("arch,size", [("custom", 32), ("resnet18", 64)])
def test_one_pass_records_every_conv_layer_and_removes_its_hooks(arch: str, size: int) -> None:
    model = build_model(ModelConfig(arch=arch, image_size=size), 3, load_weights=False).eval()
    x = torch.randn(1, 3, size, size)
    counter = CallCounter(model)
    ins = Inspection(model, x, ["a", "b", "c"])
    counter.handle.remove()
    assert counter.calls == 1
    assert hook_count(model) == 0
    convs = conv_layers(model)
    assert convs and all(name in ins.activations for name in convs)
    rows = {r.name: r for r in ins.layers}
    for name in convs:
        assert rows[name].kind == "Conv2d" and rows[name].has_maps
        assert tuple(ins.activations[name].shape) == rows[name].output_shape
    # Values are the real ones: the first conv's output recomputed by hand.
    first = dict(model.named_modules())[convs[0]]
    with torch.no_grad():
        assert torch.allclose(ins.activations[convs[0]], first(x)[0], atol=1e-5)
    assert ins.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert list_layers(model, size) == ins.layers  # the same rows from a pass with zeros


def test_stored_activation_survives_a_later_in_place_relu() -> None:
    model = custom(24)
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad(), ActivationRecorder(model) as rec:
        model(x)
        expected_bn = model.backbone.block1.bn(model.backbone.block1.conv(x))
    bn = rec.activations["backbone.block1.bn"]
    assert (bn < 0).any(), "the BatchNorm output was overwritten by the in-place ReLU after it"
    assert torch.allclose(bn, expected_bn, atol=1e-5)
    assert (rec.activations["backbone.block1.relu"] >= 0).all()
    # A container passes on its last child's tensor: one copy, shared.
    assert rec.activations["backbone.block1"] is rec.activations["backbone.block1.pool"]


def test_hooks_are_removed_when_the_pass_raises() -> None:
    model = custom(24)
    with pytest.raises(RuntimeError), ActivationRecorder(model):
        model(torch.randn(1, 5, 24, 24))  # wrong channel count
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        ActivationRecorder(model, ["nope"])


def test_recorder_ignores_calls_from_other_threads() -> None:
    model = custom(24)
    with torch.no_grad(), ActivationRecorder(model) as rec:
        other = threading.Thread(target=lambda: model(torch.randn(2, 3, 24, 24)))
        other.start()
        other.join()
        assert not rec.activations, "a prediction in another thread was recorded"
        model(torch.randn(1, 3, 24, 24))
    assert rec.activations["backbone.block1.conv"].shape[0] == 1


def test_memory_stays_flat_over_100_inspections() -> None:
    resource = pytest.importorskip("resource")
    model = custom(64)
    x = torch.randn(1, 3, 64, 64)  # about 0.5 MB of activations per pass: a leak would show in RSS

    def once() -> None:
        with ActivationRecorder(model) as rec:
            model(x)
        ins = Inspection(model, x)
        ins.maps("backbone.block2.conv", sort="mean")
        ins.grad_cam(1)
        assert rec.activations

    for _ in range(5):
        once()
    gc.collect()
    objects = len(gc.get_objects())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(100):
        once()
    gc.collect()
    assert hook_count(model) == 0
    assert len(gc.get_objects()) - objects < 100
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 25, f"peak memory grew by {grown_mb:.0f} MB over 100 inspections"
    ins = Inspection(model, x)
    ref = weakref.ref(ins.activations["backbone.block1.conv"])
    del ins
    gc.collect()
    assert ref() is None, "an inspection's activations outlived it"


def test_feature_maps_share_a_scale_and_sort_by_mean() -> None:
    act = torch.zeros(4, 2, 2)
    act[1] = 3.0
    act[2] = -1.0
    act[3, 0, 0] = 1.0
    by_index = feature_maps(act)
    assert by_index.order.tolist() == [0, 1, 2, 3]
    assert by_index.low == -1.0 and by_index.high == 3.0
    assert by_index.maps[1].max() == 1.0 and by_index.maps[2].max() == 0.0
    assert by_index.maps[0, 0, 0] == pytest.approx(0.25)  # zero on the shared -1..3 scale
    by_mean = feature_maps(act[None], sort="mean")
    assert by_mean.order.tolist() == [1, 3, 0, 2]
    assert np.array_equal(by_mean.maps[0], by_index.maps[1])
    assert feature_maps(torch.arange(5.0)).maps.shape == (5, 1, 1)
    with pytest.raises(ValueError, match="sort"):
        feature_maps(act, sort="max")


def test_learned_filters_shapes_and_scale() -> None:
    model = custom(24, width=8, kernel_size=5)
    first = learned_filters(model)
    assert first.shape == (8, 3, 5, 5)
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert np.allclose(np.abs(first - 0.5).reshape(8, -1).max(axis=1), 0.5)  # each filter stretched to full range
    assert learned_filters(model, "backbone.block2").shape == (16, 8, 5, 5)  # a block: its conv
    with torch.no_grad():
        model.backbone.block1.conv.weight.zero_()
    assert np.allclose(learned_filters(model, "backbone.block1.conv"), 0.5)  # zero is mid-grey
    resnet = build_model(ModelConfig(arch="resnet18"), 2, load_weights=False)
    assert learned_filters(resnet).shape == (64, 3, 7, 7)
    assert learned_filters(resnet, "backbone.layer1.0.conv1", scale="layer").shape == (64, 64, 3, 3)
    with pytest.raises(ValueError, match="no convolution"):
        learned_filters(model, "backbone.pool")


@pytest.mark.parametrize("arch", [a for a in list_architectures() if a != "custom"])
def test_every_registry_backbone_lists_layers_and_gives_a_cam(arch: str) -> None:
    model = build_model(ModelConfig(arch=arch, image_size=64), 2, load_weights=False).eval()
    ins = Inspection(model, torch.randn(1, 3, 64, 64))
    assert hook_count(model) == 0
    assert sum(r.kind.startswith("Conv") and r.has_maps for r in ins.layers) >= 5
    assert all(r.parent == "" or r.parent in {p.name for p in ins.layers} for r in ins.layers)
    layer = ins.layer(ins.cam_layer)
    assert layer.name.startswith("backbone.") and layer.output_shape[1] > 1
    heat = ins.grad_cam(0)
    assert heat.shape == (64, 64) and np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
    assert learned_filters(model).shape[1] == 3


def test_default_cam_layer_is_the_last_spatial_map_before_pooling() -> None:
    resnet = build_model(ModelConfig(arch="resnet18"), 2, load_weights=False)
    assert default_cam_layer(list_layers(resnet, 64)) == "backbone.layer4"
    assert default_cam_layer(list_layers(custom(32), 32)) == "backbone.block3"


# ---------------------------------------------------------------- Grad-CAM finds the patch

PATCH = 8


def patch_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grey noise with one coloured patch at a random place; its colour (red or green) is the class."""
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.1 * torch.randn(n, 3, size, size, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    corners = torch.randint(0, size - PATCH + 1, (n, 2), generator=g)
    for i in range(n):
        r, c = corners[i].tolist()
        x[i, :, r:r + PATCH, c:c + PATCH] = 0.1
        x[i, int(labels[i]), r:r + PATCH, c:c + PATCH] = 1.0
    return (x - 0.45) / 0.25, labels, corners


def test_grad_cam_peak_falls_inside_the_deciding_patch() -> None:
    size = 32
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="custom", image_size=size, blocks=2, width=16, dropout=0.0), 2,
                        load_weights=False)
    x, y, _ = patch_images(256, size, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(6):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():  # Grad-CAM must not need trainable weights
        p.requires_grad_(False)
        p.grad = None
    tx, ty, corners = patch_images(40, size, seed=2)
    with torch.no_grad():
        assert (model(tx).argmax(1) == ty).float().mean() >= 0.9, "the tiny CNN did not learn the task"
    inside = 0
    with torch.no_grad():  # an outer no-grad must not matter either
        for i in range(len(tx)):
            heat, cls = grad_cam(model, tx[i:i + 1], int(ty[i]))
            assert heat.shape == (size, size) and cls == int(ty[i])
            r, c = np.unravel_index(int(heat.argmax()), heat.shape)
            top, left = corners[i].tolist()
            inside += top <= r < top + PATCH and left <= c < left + PATCH
    assert inside >= 0.8 * len(tx), f"CAM peak inside the patch for only {inside}/{len(tx)} images"
    assert all(p.grad is None for p in model.parameters())
    assert hook_count(model) == 0


def test_inspection_answers_layer_queries_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    model = custom(24)
    pixels = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    ins = Inspection(model, (pixels[None].float() / 255 - 0.5) / 0.25, ["red", "green", "blue"], pixels=pixels)
    counter = CallCounter(model)
    started = time.perf_counter()
    for row in ins.layers:
        if row.has_maps:
            ins.maps(row.name, sort="mean")
    assert counter.calls == 0, "a layer query ran the model again"
    assert time.perf_counter() - started < 1.0
    heat = ins.grad_cam("blue")
    assert counter.calls == 1 and ins.grad_cam(2) is heat  # computed once per class, then cached
    counter.handle.remove()
    assert ins.top(2)[0][0] == ins.classes[ins.predicted]
    blended = overlay_heatmap(pixels, heat)
    assert blended.shape == (24, 24, 3) and blended.dtype == np.uint8
    with pytest.raises(ValueError, match="no recorded activation"):
        ins.maps("backbone.nope")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc")
def test_resident_memory_is_flat_over_200_feature_map_and_grad_cam_passes() -> None:
    """What the Inspect page does per image, 200 times: every layer's maps, then a Grad-CAM per class."""
    model = custom(64)
    images = [torch.randn(1, 3, 64, 64) for _ in range(4)]

    def once(i: int) -> None:
        ins = Inspection(model, images[i % 4], classes=["a", "b", "c"])
        for layer in ins.layers:
            if layer.has_maps:
                ins.maps(layer.name, sort="mean")
        ins.grad_cam(i % 3)

    for i in range(20):  # allocator pools and caches reach their working size first
        once(i)
    gc.collect()
    before = _rss_mb()
    for i in range(200):
        once(i)
    gc.collect()
    grown = _rss_mb() - before
    assert hook_count(model) == 0
    assert grown < 20, f"resident memory grew by {grown:.1f} MB over 200 passes"
