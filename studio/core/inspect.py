"""Looking inside a model: activations, learned filters and class-activation maps.

Activations come from one forward pass with hooks that exist only inside a
context manager, so a model is never left carrying hooks (which would keep
every activation alive and slow each later call). The `Inspection` of an image
runs that pass once and then answers layer queries from memory, which is what
lets a layer list switch instantly. The model is always called as `model(x)`:
calling `forward` directly would bypass the hooks.

Nothing here assumes an architecture: layers are found by running the model,
so the custom CNN and every registry backbone are inspected the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studio.core.layers import (  # noqa: F401 - the walk lived here before; importable here as before
    _HIDDEN,
    ActivationRecorder,
    LayerInfo,
    _eval_mode,
    _first_tensor,
    _layer_infos,
    _layers_for,
    list_layers,
)

if TYPE_CHECKING:
    from PIL import Image

    from studio.core.predict import Predictor

SORTS = ("index", "mean")


# ---------------------------------------------------------------- feature maps and filters


class FeatureMaps(NamedTuple):
    """maps[i] is channel order[i]; all maps share one scale (low → 0, high → 1) so strengths compare."""

    maps: np.ndarray  # float32 [C, H, W] in 0..1, in display order
    order: np.ndarray  # int64 [C]: original channel index of each map
    means: np.ndarray  # float32 [C]: mean activation per original channel index
    low: float
    high: float


def feature_maps(activation: Tensor | np.ndarray, sort: str = "index") -> FeatureMaps:
    """A layer's output for one image as drawable maps; sort="mean" puts the most active channel first.

    Accepts [C,H,W] or [1,C,H,W]; a vector [F] (after pooling or a Linear) becomes F maps of 1×1.
    Zero is always on the scale, so a map that is black means "nothing here" in every channel.
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
    a = activation.detach().float().cpu().numpy() if isinstance(activation, Tensor) else np.asarray(activation)
    a = a.astype(np.float32, copy=False)
    if a.ndim in (2, 4) and a.shape[0] == 1:  # a batch of one
        a = a[0]
    a = a[:, None, None] if a.ndim == 1 else a
    if a.ndim != 3:
        raise ValueError(f"expected an activation of shape [C, H, W], got {list(a.shape)}")
    means = a.mean(axis=(1, 2))
    order = np.argsort(-means, kind="stable") if sort == "mean" else np.arange(a.shape[0])
    low, high = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    span = high - low
    maps = (a[order] - low) * (1.0 / span) if span > 0 else np.zeros_like(a)
    return FeatureMaps(maps.astype(np.float32, copy=False), order.astype(np.int64), means, low, high)


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the Conv2d modules, in registration order (the first is the one that sees pixels)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def learned_filters(model: nn.Module, layer: str | None = None, *, scale: str = "filter") -> np.ndarray:
    """A conv layer's weights [out, in, k, k] in 0..1 with zero at 0.5, so sign reads as dark/light.

    layer None means the first conv, whose [out, 3, k, k] filters are drawn as RGB patches; a
    block's name means the first conv inside it. scale="filter" stretches each filter on its own
    (shapes visible), "layer" uses one scale (strengths comparable).
    """
    modules = dict(model.named_modules())
    if layer is None:
        names = conv_layers(model)
        if not names:
            raise ValueError("this model has no convolution layer")
        layer = names[0]
    if layer not in modules:
        raise ValueError(f"no layer named {layer!r} in this model")
    conv = modules[layer]
    if not isinstance(conv, nn.Conv2d):
        inner = [m for m in conv.modules() if isinstance(m, nn.Conv2d)]
        if not inner:
            raise ValueError(f"layer {layer!r} ({type(conv).__name__}) holds no convolution filters")
        conv = inner[0]
    w = conv.weight.detach().float().cpu().numpy()
    if scale == "filter":
        peak = np.abs(w).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1, 1)
    elif scale == "layer":
        peak = np.full((1, 1, 1, 1), np.abs(w).max())
    else:
        raise ValueError(f"unknown scale {scale!r}; choose filter or layer")
    return (0.5 + 0.5 * w / np.maximum(peak, 1e-12)).astype(np.float32)


# ---------------------------------------------------------------- Grad-CAM


def default_cam_layer(layers: list[LayerInfo]) -> str:
    """The last feature map before global pooling: the last backbone module to finish with [C, H>1, W>1].

    Found from the layer list (no architecture names), it is ResNet's layer4, the custom CNN's
    last block, EfficientNet's features: coarse enough to mean something, fine enough to locate.
    """
    spatial = [r for r in layers if r.name.startswith("backbone.") and r.has_maps
               and r.output_shape[1] > 1 and r.output_shape[2] > 1]
    if not spatial:
        raise ValueError("no layer of this model keeps a spatial map larger than 1×1 at this image size")
    return max(spatial, key=lambda r: r.finish).name


def grad_cam(model: nn.Module, x: Tensor, target_class: int | None = None, layer: str | None = None
             ) -> tuple[np.ndarray, int]:
    """Grad-CAM heat map (H×W in 0..1, at the input's size) for target_class, or the predicted class.

    The hooked layer's output is replaced by a leaf copy that requires grad, so gradients exist
    even for a frozen backbone under any outer no-grad setting, and in-place ops after the layer
    cannot disturb it. `torch.autograd.grad` returns the gradient without writing any `.grad`,
    so the model's parameters are left exactly as they were.
    """
    if x.ndim == 3:
        x = x[None]
    if layer is None:
        layer = default_cam_layer(_layers_for(model, x))
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise ValueError(f"no layer named {layer!r} in this model")
    captured: list[Tensor] = []
    thread = threading.get_ident()

    def hook(mod: nn.Module, inputs: object, output: object) -> object:
        tensor = _first_tensor(output)
        if tensor is None or threading.get_ident() != thread:
            return None
        leaf = tensor.detach().requires_grad_(True)
        captured[:] = [leaf]
        replaced = leaf.clone()
        return replaced if isinstance(output, Tensor) else (replaced, *output[1:])

    handle = module.register_forward_hook(hook)
    try:
        with _eval_mode(model), torch.enable_grad():
            logits = model(x)
            cls = int(logits[0].argmax()) if target_class is None else int(target_class)
            if not 0 <= cls < logits.shape[1]:
                raise ValueError(f"class index {cls} is out of range (0..{logits.shape[1] - 1})")
            if not captured or captured[0].ndim != 4:
                raise ValueError(f"layer {layer!r} has no spatial maps to weigh")
            (grads,) = torch.autograd.grad(logits[0, cls], captured[0])
    finally:
        handle.remove()
    act = captured[0].detach()[0].float()
    weights = grads[0].float().mean(dim=(1, 2))
    cam = F.relu((weights[:, None, None] * act).sum(0))
    cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    heat = (cam / peak).clamp_(0, 1) if peak > 0 else torch.zeros_like(cam)
    return heat.cpu().numpy().astype(np.float32), cls


def overlay_heatmap(pixels: Tensor | np.ndarray, heat: np.ndarray, alpha: float = 0.45,
                    cmap: str = "jet") -> np.ndarray:
    """uint8 H×W×3: the heat map coloured and blended over the image (uint8 [3,H,W] or H×W×3)."""
    from matplotlib import colormaps

    img = pixels.cpu().numpy() if isinstance(pixels, Tensor) else np.asarray(pixels)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)
    if img.shape[:2] != heat.shape:
        resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(heat))[None, None], size=img.shape[:2],
                                mode="bilinear", align_corners=False)
        heat = resized[0, 0].numpy()
    colour = colormaps[cmap](np.clip(heat, 0, 1))[..., :3] * 255.0
    return np.clip((1 - alpha) * img.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- one image, many questions


class Inspection:
    """One image through one model: a single recorded pass, then instant answers per layer.

    Activations are kept as CPU copies (batch dimension dropped); Grad-CAM needs a backward pass
    and is computed on first request per (class, layer), then cached.
    """

    def __init__(self, model: nn.Module, x: Tensor, classes: list[str] | None = None,
                 pixels: Tensor | None = None, layers: Iterable[str] | None = None) -> None:
        if x.ndim == 3:
            x = x[None]
        if x.shape[0] != 1:
            raise ValueError(f"an inspection is of one image, got a batch of {x.shape[0]}")
        self.model = model
        self.x = x
        self.pixels = pixels
        with _eval_mode(model), torch.no_grad(), ActivationRecorder(model, layers) as rec:
            logits = model(x)
        self.probabilities = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
        self.classes = list(classes) if classes is not None else [str(i) for i in range(len(self.probabilities))]
        self.layers = _layer_infos(model, rec)
        self.activations = {name: t[0] for name, t in rec.activations.items()}
        self._cams: dict[tuple[int, str], np.ndarray] = {}
        self._cam_layer: str | None = None

    @classmethod
    def of_image(cls, predictor: Predictor, image: Image.Image | str | Path) -> Inspection:
        """Same pixels and normalization as the predictor (and so as evaluation)."""
        from studio.core.augment import normalize_batch
        from studio.core.images import load_for_model, to_tensor

        if isinstance(image, (str, Path)):
            pixels = to_tensor(load_for_model(image, predictor.image_size))
        else:
            pixels = predictor.pixels(image)
        x = normalize_batch(pixels[None].to(predictor.device), predictor.mean, predictor.std)
        return cls(predictor.model, x, predictor.classes, pixels=pixels)

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def layer(self, name: str) -> LayerInfo:
        for row in self.layers:
            if row.name == name:
                return row
        raise ValueError(f"no recorded layer named {name!r}")

    def maps(self, layer: str, sort: str = "index") -> FeatureMaps:
        if layer not in self.activations:
            raise ValueError(f"no recorded activation for layer {layer!r}")
        return feature_maps(self.activations[layer], sort)

    def filters(self, layer: str | None = None, *, scale: str = "filter") -> np.ndarray:
        return learned_filters(self.model, layer, scale=scale)

    @property
    def cam_layer(self) -> str:
        if self._cam_layer is None:
            self._cam_layer = default_cam_layer(self.layers)
        return self._cam_layer

    def grad_cam(self, target_class: int | str | None = None, layer: str | None = None) -> np.ndarray:
        """Heat map at the input size for a class index or name (default: the predicted class)."""
        cls = self.predicted if target_class is None else (
            self.classes.index(target_class) if isinstance(target_class, str) else int(target_class))
        key = (cls, layer or self.cam_layer)
        if key not in self._cams:
            self._cams[key] = grad_cam(self.model, self.x, cls, key[1])[0]
        return self._cams[key]
