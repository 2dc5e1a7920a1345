"""Exported models that cannot be fed wrongly: resizing, scaling, normalization and softmax inside.

The file takes what any image library hands out — an RGB image tensor
[N, 3, H, W] with values 0..255, any H and W — and returns class probabilities.
Inside, it does what the studio does before every prediction: the shorter side
scaled to the model's size with antialiased bilinear filtering, the centre
square kept, the result rounded to 8 bits like a decoded image, then /255 and
the checkpoint's mean and std. A sidecar JSON names the classes in output order.

The studio crops in the source image and lets PIL resample only the crop; the
exported graph crops first and then resizes, which agrees with it exactly for
square inputs and differs by a few grey levels along the crop edges otherwise.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studio.core.atomic import write_text
from studio.core.checkpoint import load_checkpoint, model_from_checkpoint
from studio.core.errors import ExportError
from studio.core.trust import stored_temperature

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
ONNX_OPSET = 18  # Resize with antialiasing appeared in opset 18


class Preprocess(nn.Module):
    """Any-size 0..255 RGB batch → the model's normalized square input, in tensor ops only."""

    def __init__(self, image_size: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32)
        h, w = x.shape[2], x.shape[3]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        x = x[:, :, top:top + side, left:left + side]
        x = F.interpolate(x, size=[self.image_size, self.image_size], mode="bilinear", align_corners=False,
                          antialias=True)
        x = torch.round(x).clamp(0.0, 255.0)  # a decoded image holds whole numbers 0..255
        return (x / 255.0 - self.mean) / self.std


class PackagedClassifier(nn.Module):
    """Preprocess → network → softmax at the run's temperature: one module, one way to call it."""

    def __init__(self, preprocess: nn.Module, network: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))

    def forward(self, images: Tensor) -> Tensor:
        return torch.softmax(self.network(self.preprocess(images)) / self.temperature, dim=1)


class _OnnxPreprocess(Preprocess):
    """The same steps written with shape tensors, so the ONNX graph keeps H and W dynamic.

    Python ints taken from a traced shape become constants of the graph; shape tensors,
    arange and index_select stay operations on whatever size arrives.
    """

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32)
        shape = torch._shape_as_tensor(x)
        h, w = shape[2], shape[3]
        side = torch.minimum(h, w)
        rows = torch.arange(side) + torch.div(h - side, 2, rounding_mode="floor")
        cols = torch.arange(side) + torch.div(w - side, 2, rounding_mode="floor")
        x = x.index_select(2, rows).index_select(3, cols)
        x = F.interpolate(x, size=[self.image_size, self.image_size], mode="bilinear", align_corners=False,
                          antialias=True)
        x = torch.round(x).clamp(0.0, 255.0)
        return (x / 255.0 - self.mean) / self.std


@dataclass
class Exported:
    path: Path
    sidecar: Path
    format: str


def _load(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    return source if isinstance(source, dict) else load_checkpoint(source)


def default_output(source: str | Path, fmt: str) -> Path:
    """Beside the checkpoint: RUN_DIR/model.pt or RUN_DIR/model.onnx."""
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    return folder / f"model{SUFFIX[fmt]}"


def sidecar_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".json")


def _write_sidecar(data: dict[str, Any], out: Path, fmt: str, dtype: str) -> Path:
    pre = data["preprocessing"]
    info = {
        "format": fmt,
        "model_file": out.name,
        "classes": list(data["classes"]),
        "input": {
            "name": "images",
            "shape": "[N, 3, H, W]: any batch size N, any height H and width W",
            "dtype": dtype,
            "range": "0..255 (do not scale or normalize: the model does it)",
            "channels": "RGB",
        },
        "output": {"name": "probabilities", "shape": f"[N, {len(data['classes'])}]",
                   "meaning": "calibrated softmax probabilities (logits divided by 'temperature'), "
                              "in the order of 'classes'"},
        "temperature": float(data.get("temperature", 1.0)),
        "inside": {
            "resize": "shorter side to image_size, antialiased bilinear, centre crop, rounded to 0..255",
            "image_size": int(pre["image_size"]),
            "mean": list(pre["mean"]),
            "std": list(pre["std"]),
        },
        "source": {"checkpoint": data.get("path", ""), "architecture": data["arch"].get("arch", ""),
                   "metrics": data.get("metrics", {})},
    }
    path = sidecar_path(out)
    write_text(path, json.dumps(info, indent=2) + "\n")
    return path


def _network(data: dict[str, Any]) -> nn.Module:
    model = model_from_checkpoint(data).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _example(data: dict[str, Any], batch: int = 1) -> Tensor:
    size = int(data["preprocessing"]["image_size"])
    return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)


def _target(source: str | Path | dict[str, Any], out: str | Path | None, fmt: str) -> Path:
    if out is not None:
        path = Path(out)
        path = path / f"model{SUFFIX[fmt]}" if path.is_dir() else path
    elif isinstance(source, dict):
        path = default_output(source.get("path", "."), fmt)
    else:
        path = default_output(source, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def export_torchscript(source: str | Path | dict[str, Any], out: str | Path | None = None) -> Exported:
    """A TorchScript file: `torch.jit.load(path)(images)` with uint8 or float 0..255 images.

    The network is traced at its one input size (the preprocessing guarantees that size),
    the preprocessing is scripted so that any H and W work.
    """
    data = _load(source)
    path = _target(source, out, "torchscript")
    pre = data["preprocessing"]
    network = _network(data)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet():
            traced = torch.jit.trace(network, (_normalized(data),), check_trace=False)
            preprocess = Preprocess(pre["image_size"], pre["mean"], pre["std"])
            torch.jit.script(PackagedClassifier(preprocess, traced, stored_temperature(data))).save(str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"TorchScript export of {data['arch'].get('arch', 'this model')} failed: "
                          f"{str(exc).splitlines()[0]}") from exc
    tmp.replace(path)
    return Exported(path, _write_sidecar(data, path, "torchscript", "uint8 or float32"), "torchscript")


def _normalized(data: dict[str, Any]) -> Tensor:
    pre = data["preprocessing"]
    return Preprocess(pre["image_size"], pre["mean"], pre["std"])(_example(data))


def export_onnx(source: str | Path | dict[str, Any], out: str | Path | None = None, *,
                input_dtype: str = "uint8") -> Exported:
    """An ONNX file (opset 18) with dynamic batch, height and width; input dtype uint8 by default.

    uint8 is the default because it is what decoders produce and it cannot be confused with
    0..1 floats; input_dtype="float32" takes floats in 0..255 instead.
    """
    try:
        import onnx  # the exporter needs it; say so plainly rather than deep in torch
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx") from None
    if input_dtype not in ("uint8", "float32"):
        raise ExportError(f"input dtype {input_dtype!r}: choose uint8 or float32")
    data = _load(source)
    path = _target(source, out, "onnx")
    pre = data["preprocessing"]
    packaged = PackagedClassifier(_OnnxPreprocess(pre["image_size"], pre["mean"], pre["std"]), _network(data),
                                  stored_temperature(data)).eval()
    example = _example(data, batch=2)
    example = example if input_dtype == "uint8" else example.float()
    # A non-square example, so nothing size-specific can hide behind a square shortcut.
    example = torch.cat([example, example[..., :3]], dim=3)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with _quiet(), _antialiased_resize_symbolic():
            torch.onnx.export(
                packaged, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                input_names=["images"], output_names=["probabilities"],
                dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "probabilities": {0: "batch"}},
            )
        onnx.checker.check_model(str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export of {data['arch'].get('arch', 'this model')} failed: "
                          f"{str(exc).splitlines()[0]}") from exc
    tmp.replace(path)
    return Exported(path, _write_sidecar(data, path, "onnx", input_dtype), "onnx")


def export_model(source: str | Path | dict[str, Any], fmt: str, out: str | Path | None = None) -> Exported:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return export_torchscript(source, out) if fmt == "torchscript" else export_onnx(source, out)


@contextmanager
def _quiet():
    """torch announces the legacy exporter and TorchScript's future at length; none of it is for the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _antialiased_resize_symbolic():
    """Teach the TorchScript-based ONNX exporter antialiased bilinear resizing, for this export only.

    It has no rule for aten::_upsample_bilinear2d_aa; ONNX Resize (opset 18) has antialias=1, and
    with exclude_outside=1 its border weights match torch's (and PIL's) renormalization.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    name = "aten::_upsample_bilinear2d_aa"

    def symbolic(g, x, output_size, align_corners, scale_factors):  # noqa: ANN001 - exporter's signature
        shape = g.op("Shape", x)
        batch_channels = g.op("Slice", shape, g.op("Constant", value_t=torch.tensor([0])),
                              g.op("Constant", value_t=torch.tensor([2])))
        size = g.op("Constant", value_t=torch.tensor(_ints(output_size), dtype=torch.int64))
        sizes = g.op("Concat", batch_channels, size, axis_i=0)
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, empty, empty, sizes, mode_s="linear", antialias_i=1, exclude_outside_i=1,
                    coordinate_transformation_mode_s="half_pixel")

    register_custom_op_symbolic(name, symbolic, ONNX_OPSET)
    try:
        yield
    finally:
        unregister_custom_op_symbolic(name, ONNX_OPSET)


def _ints(value: Any) -> list[int]:
    """The constant output size the exporter hands over, as a list of ints."""
    node = value.node()
    if node.kind() == "onnx::Constant":
        return [int(v) for v in node.t("value").tolist()]
    if node.kind() == "prim::ListConstruct":
        return [int(inp.node().t("value").item()) for inp in node.inputs()]
    raise ExportError("ONNX export: the resize target must be a fixed size")
