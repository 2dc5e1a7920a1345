"""The architecture registry, the common wrapper, freezing, and where weights come from.

Models are built at 32 px with three classes so the whole file runs in seconds
on a busy CPU; the one test that needs real ImageNet weights uses the
EfficientNet-Lite0 file that ships with the install, never the network.
"""

from __future__ import annotations

import functools
import importlib.util
import socket
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from studio.core import weights
from studio.core.config import ConfigError, ModelConfig
from studio.core.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    StudioModel,
    architecture_info,
    build_model,
    count_parameters,
    list_architectures,
    summarize,
)
from studio.core.weights import WeightsFileError, WeightsUnavailable

SIZE = 32
REQUIRED = ("resnet18", "resnet50", "efficientnet_b0", "efficientnet_b2", "mobilenet_v3_small",
            "mobilenet_v3_large", "convnext_tiny")
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None


@functools.cache
def cached_model(arch: str) -> StudioModel:
    """One random model per architecture for the read-mostly tests; each test sets the freezing it needs."""
    return build_model(ModelConfig(arch=arch, width=8), 3, load_weights=False)


def param_names(model: nn.Module, trainable: bool) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad == trainable}


# ---------------------------------------------------------------- registry


def test_registry_lists_custom_then_lite0_then_the_torchvision_backbones():
    names = list_architectures()
    assert names[:2] == ["custom", "efficientnet_lite0"]
    assert set(REQUIRED) <= set(names)
    assert [n for n in names if architecture_info(n).bundled] == ["efficientnet_lite0"]
    assert {n for n in names if architecture_info(n).recommended} == {"custom", "efficientnet_lite0"}
    assert not architecture_info("custom").imagenet and architecture_info("custom").default_image_size == 64
    assert architecture_info("resnet18").default_image_size == 224
    assert architecture_info("resnet18").mean == IMAGENET_MEAN and architecture_info("resnet18").std == IMAGENET_STD
    lite = architecture_info("efficientnet_lite0")
    assert (lite.mean, lite.std) == (LITE_MEAN, LITE_STD)
    for name in names:
        assert architecture_info(name).description and "\n" not in architecture_info(name).description
        ModelConfig(arch=name).validate()


def test_unknown_architecture_names_it_and_lists_the_valid_ones():
    with pytest.raises(ValueError, match="vgg99") as err:
        architecture_info("vgg99")
    assert "resnet18" in str(err.value) and "custom" in str(err.value)
    with pytest.raises(ConfigError, match="model.arch"):
        ModelConfig(arch="vgg99").validate()


@pytest.mark.parametrize("arch", list_architectures())
def test_every_architecture_classifies_and_summarizes(arch):
    model = cached_model(arch)
    model.set_trainable("all")
    model.eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(2, 3, SIZE, SIZE))
        logits = model.head(features)
    assert features.shape == (2, model.feature_dim)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == 3

    rows = summarize(model, SIZE)
    total, trainable = count_parameters(model)
    assert total == trainable > 0
    assert sum(row.params for row in rows) == total  # every parameter sits on exactly one row
    by_name = {row.name: row for row in rows}
    assert by_name["backbone"].output_shape == (model.feature_dim,)
    assert by_name["head"].output_shape == (3,)


def test_custom_cnn_layout_and_summary_shapes():
    model = build_model(ModelConfig(arch="custom", blocks=5, width=4, kernel_size=5, image_size=64), 3)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 32]  # doubling, capped at 8 x width
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert isinstance(model.head[0], nn.Dropout) and model.head[0].p == pytest.approx(0.2)
    rows = summarize(build_model(ModelConfig(arch="custom", blocks=3, width=8), 3), SIZE)
    last_conv = [row for row in rows if row.kind == "Conv2d"][-1]
    assert last_conv.name == "backbone.block3.conv"
    assert last_conv.output_shape == (32, 8, 8)  # 4 x width channels; 32 px halved twice before block 3
    assert last_conv.params == 16 * 32 * 3 * 3
    assert [row.name for row in rows if row.kind == "MaxPool2d"][-1] == "backbone.block3.pool"


def test_custom_cnn_too_small_an_image_is_refused_by_name():
    with pytest.raises(ValueError, match="model.image_size") as err:
        build_model(ModelConfig(arch="custom", image_size=8, blocks=5), 3)
    assert "model.blocks" in str(err.value) and "32" in str(err.value)


@pytest.mark.parametrize("side", [8, 45, 100])
def test_custom_cnn_takes_any_size_from_the_minimum_up(side):
    model = build_model(ModelConfig(arch="custom", blocks=3, width=4, image_size=SIZE), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side + 3)).shape == (1, 3)


# ---------------------------------------------------------------- freezing and groups


def test_head_mode_freezes_the_backbone_and_its_batchnorm_statistics():
    model = build_model(ModelConfig(arch="custom", width=8), 3)
    model.set_trainable("head")
    assert param_names(model, True) == {"head.1.weight", "head.1.bias"}
    assert all(not p.requires_grad for p in model.backbone.parameters())
    model.train()
    norms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.training and model.head.training
    before = [m.running_mean.clone() for m in norms]
    model(torch.randn(4, 3, SIZE, SIZE) * 5 + 3)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    model.eval().train()  # switching modes again must not wake the frozen part
    assert not any(m.training for m in norms)


def test_frozen_backbone_gives_the_same_features_twice_in_train_mode():
    """Stochastic depth inside a frozen backbone would make cached features wrong."""
    model = cached_model("efficientnet_b0")
    model.set_trainable("head")
    model.train()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(model.backbone(x), model.backbone(x))


@pytest.mark.parametrize(
    ("arch", "block"), [("resnet18", "backbone.layer4."), ("custom", f"backbone.block{ModelConfig().blocks}.")]
)
def test_last_block_mode_trains_exactly_the_last_block_and_the_head(arch, block):
    model = cached_model(arch)
    model.set_trainable("last-block")
    expected = {n for n, _ in model.named_parameters() if n.startswith((block, "head."))}
    assert param_names(model, True) == expected
    model.train()
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.training == name.startswith(block)


@pytest.mark.parametrize("arch", list_architectures())
def test_last_block_mode_is_a_proper_part_of_every_backbone(arch):
    model = cached_model(arch)
    model.set_trainable("last-block")
    trainable, frozen = param_names(model, True), param_names(model, False)
    assert {n for n, _ in model.named_parameters() if n.startswith("head.")} < trainable
    assert any(n.startswith("backbone.") for n in trainable) and frozen
    assert next(iter(model.backbone.parameters())).requires_grad is False  # the stem stays as it was learned
    for prefix in model.last_block:
        assert all(p.requires_grad for p in model.get_submodule(prefix).parameters())
    model.set_trainable("all")
    assert not param_names(model, False) and model.frozen_modules == []
    model.train()
    assert all(m.training for m in model.modules())


def test_unknown_part_is_refused():
    with pytest.raises(ValueError, match="last-block"):
        cached_model("custom").set_trainable("middle")


def test_param_groups_scale_a_pretrained_backbone_and_spare_biases_and_norms():
    # pretrained="imagenet" with load_weights=False: the groups of a pretrained run, without any download.
    model = build_model(ModelConfig(arch="resnet18", pretrained="imagenet"), 3, load_weights=False)
    model.set_trainable("last-block")
    groups = model.param_groups(lr=1e-3, backbone_lr_scale=0.1, weight_decay=0.05)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
    assert by_name["head"]["lr"] == by_name["head_no_decay"]["lr"] == pytest.approx(1e-3)
    assert by_name["backbone"]["lr"] == by_name["backbone_no_decay"]["lr"] == pytest.approx(1e-4)
    assert by_name["head"]["weight_decay"] == by_name["backbone"]["weight_decay"] == 0.05
    ids = {id(p): name for name, p in model.named_parameters()}
    for group in groups:
        names = [ids[id(p)] for p in group["params"]]
        no_decay = group["name"].endswith("no_decay")
        assert group["weight_decay"] == (0.0 if no_decay else 0.05)
        assert all((n.endswith(".bias") or "bn" in n or "downsample.1" in n) == no_decay for n in names)
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) == len(param_names(model, True))
    assert all(p.requires_grad for p in grouped)


def test_param_groups_of_a_model_learned_from_scratch_use_one_lr():
    model = cached_model("custom")
    model.set_trainable("all")
    groups = model.param_groups(lr=0.01, backbone_lr_scale=0.1, weight_decay=0.0)
    assert {g["lr"] for g in groups} == {0.01}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # an optimizer accepts them as they are (the "name" key is carried along for logging)
    torch.optim.AdamW(groups, lr=0.01)


def test_summarize_leaves_no_hooks_and_restores_each_modules_mode():
    model = build_model(ModelConfig(arch="custom", width=4), 3)
    model.set_trainable("head")
    model.train()
    modes = {name: m.training for name, m in model.named_modules()}
    summarize(model, SIZE)
    assert modes == {name: m.training for name, m in model.named_modules()}
    assert not any(m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------- bundled ImageNet weights


def _imagenet_input(picture: np.ndarray, mean, std) -> torch.Tensor:
    """torchvision's evaluation recipe: shorter side to 256, centre 224, normalize."""
    image = Image.fromarray(picture).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    x = torch.from_numpy(np.asarray(image.crop((left, top, left + 224, top + 224))).copy())
    x = x.permute(2, 0, 1).float() / 255
    return ((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])[None]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was consulted")

    monkeypatch.setattr(weights, "host_reachable", refuse)


@pytest.mark.skipif(not HAS_SKIMAGE, reason="scikit-image provides the test photographs")
def test_bundled_lite0_recognizes_a_cat_and_an_espresso_offline(no_network):
    from skimage import data

    model = build_model(ModelConfig(arch="efficientnet_lite0", pretrained="imagenet"), 1000)
    state = weights.imagenet_state_dict("efficientnet_lite0")
    backbone = model.backbone.state_dict()
    assert set(backbone) == {k for k in state if not k.startswith("_fc.")}  # strict: every tensor, no leftovers
    assert all(torch.equal(backbone[k], state[k]) for k in backbone)
    model.head[-1].load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    model.eval()
    info = architecture_info("efficientnet_lite0")
    classes = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    with torch.no_grad():
        cat = model(_imagenet_input(data.chelsea(), info.mean, info.std)).argmax().item()
        coffee = model(_imagenet_input(data.coffee(), info.mean, info.std)).argmax().item()
    assert classes[cat] in {"Egyptian cat", "tabby", "tiger cat"}
    assert classes[coffee] in {"espresso", "cup"}


@pytest.mark.skipif(not HAS_SKIMAGE, reason="scikit-image provides the test photographs")
def test_lite0_expects_half_mean_half_std_not_imagenet_statistics():
    """The first BatchNorm remembers the inputs it was trained on; (x - 0.5) / 0.5 matches them, ImageNet's doesn't."""
    from skimage import data

    state = weights.imagenet_state_dict("efficientnet_lite0")
    stem, var = state["_conv_stem.weight"], state["_bn0.running_var"]
    live = var > 1e-4

    def mismatch(m, s) -> float:
        x = torch.cat([_imagenet_input(p, m, s) for p in (data.chelsea(), data.coffee(), data.astronaut())])
        y = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), stem, stride=2)
        return (y.var((0, 2, 3))[live] / var[live]).log().abs().mean().item()

    assert mismatch(LITE_MEAN, LITE_STD) < 0.6 * mismatch(IMAGENET_MEAN, IMAGENET_STD)


# ---------------------------------------------------------------- torchvision weights offline


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def test_offline_imagenet_weights_explain_what_to_fetch_then_load_from_the_cache(hub_dir, monkeypatch):
    monkeypatch.setattr(weights, "host_reachable", lambda *args, **kwargs: False)
    cfg = ModelConfig(arch="resnet18", pretrained="imagenet", mode="head")

    def no_download(self, *args, **kwargs):
        raise AssertionError("offline, no download may even be tried")

    with monkeypatch.context() as patch:
        patch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_download)
        with pytest.raises(WeightsUnavailable) as err:
            build_model(cfg, 3)
    message = str(err.value)
    for part in ("resnet18-f37072fd.pth", str(hub_dir), "https://download.pytorch.org/models/resnet18-f37072fd.pth",
                 "--pretrained PATH", "From file", "EfficientNet-Lite0"):
        assert part in message
    assert "Traceback" not in message and err.value.filename == "resnet18-f37072fd.pth"

    fake = torchvision.models.resnet18().state_dict()
    hub_dir.mkdir(parents=True)
    torch.save(fake, hub_dir / "resnet18-f37072fd.pth")
    model = build_model(cfg, 3)
    assert torch.equal(model.backbone.conv1.weight, fake["conv1.weight"])
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, fake["layer4.1.bn2.running_var"])
    assert model.head[-1].out_features == 3 and model.pretrained


def test_failed_download_explains_itself_and_cannot_stall(hub_dir, monkeypatch):
    seen = []

    def fail(self, *args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("connection reset")

    monkeypatch.setattr(weights, "host_reachable", lambda *args, **kwargs: True)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fail)
    with pytest.raises(WeightsUnavailable, match="downloading them failed") as err:
        weights.imagenet_state_dict("mobilenet_v3_small")
    assert err.value.filename in str(err.value) and str(hub_dir) in str(err.value)
    assert seen == [weights.DOWNLOAD_STALL_S] and socket.getdefaulttimeout() is None


def test_reachability_check_gives_up_within_its_timeout(monkeypatch):
    """A name lookup that stalls ignores socket timeouts; the check must still answer on time."""

    release, finished = threading.Event(), threading.Event()

    def stall(*args, **kwargs):
        release.wait(20)  # far longer than the timeout: a check that waited for it would come back late
        finished.set()
        raise OSError("too late")

    monkeypatch.setattr(weights.socket, "create_connection", stall)
    assert weights.host_reachable("download.pytorch.org", 443, timeout=0.3) is False
    assert not finished.is_set(), "the answer waited for the stalled lookup"
    release.set()


def test_reachability_check_reports_a_closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert weights.host_reachable("127.0.0.1", port, timeout=1.0) is False


def test_custom_cnn_has_no_imagenet_weights():
    with pytest.raises(ConfigError, match="model.pretrained"):
        build_model(ModelConfig(arch="custom", pretrained="imagenet"), 3)


# ---------------------------------------------------------------- weights from a file


def test_weights_file_from_a_1000_class_network_fills_the_backbone_and_keeps_a_fresh_head(tmp_path):
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18-mine.pth"
    torch.save(source.state_dict(), path)
    model = build_model(ModelConfig(arch="resnet18", pretrained=str(path)), 3)
    assert torch.equal(model.backbone.conv1.weight, source.conv1.weight)
    assert torch.equal(model.backbone.layer3[0].downsample[1].running_mean, source.layer3[0].downsample[1].running_mean)
    assert model.head[-1].weight.shape == (3, 512)
    assert "resnet18-mine.pth" in model.weights_note


def test_weights_file_in_common_wrappers_and_studio_checkpoints(tmp_path):
    cfg = ModelConfig(arch="custom", width=4)
    trained = build_model(cfg, 3)
    ddp = tmp_path / "ddp.pt"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in trained.state_dict().items()}}, ddp)
    checkpoint = tmp_path / "best.pt"
    torch.save({"format": "classification-studio-checkpoint", "classes": ["a", "b", "c"],
                "state_dict": trained.state_dict()}, checkpoint)
    for path in (ddp, checkpoint):
        model = build_model(ModelConfig(arch="custom", width=4, pretrained=str(path)), 3)
        mine, theirs = model.state_dict(), trained.state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)  # head included: same classes


class Payload:
    """Stands for anything pickled that is not a tensor: loading it could run code."""


def test_weights_file_with_python_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "extra": Payload()}, path)
    with pytest.raises(WeightsFileError, match="refused") as err:
        build_model(ModelConfig(arch="resnet18", pretrained=str(path)), 3)
    assert "Python objects other than tensors" in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, WeightsUnavailable)


def test_weights_file_problems_are_named(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsFileError, match="nowhere.pth"):
        weights.state_dict_from_file(missing)
    garbage = tmp_path / "notes.pth"
    garbage.write_bytes(b"not a tensor file at all")
    with pytest.raises(WeightsFileError, match="Cannot read"):
        weights.state_dict_from_file(garbage)
    other = tmp_path / "custom.pth"
    torch.save(build_model(ModelConfig(arch="custom", width=4), 3).state_dict(), other)
    with pytest.raises(ValueError, match=r"none of the \d+ tensors in .*custom.pth match resnet18"):
        build_model(ModelConfig(arch="resnet18", pretrained=str(other)), 3)


def test_load_into_counts_and_skips_prefixes():
    model = build_model(ModelConfig(arch="custom", width=4), 3)
    state = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    loaded, total = weights.load_into(model, state, skip_prefixes=("head.",))
    assert total == len(state) and loaded == total - 2
    assert not torch.equal(model.head[1].weight, torch.ones_like(model.head[1].weight))
    assert torch.equal(model.backbone.block1.conv.weight, torch.ones_like(model.backbone.block1.conv.weight))


def test_build_without_weights_touches_neither_network_nor_files(no_network, tmp_path):
    cfg = ModelConfig(arch="resnet18", pretrained=str(Path(tmp_path) / "gone.pth"), mode="head")
    model = build_model(cfg, 3, load_weights=False)
    assert isinstance(model, StudioModel) and model.pretrained
