"""Exported models that cannot be fed wrongly: resizing, scaling, normalization and softmax inside.

The file takes what any image library hands out — an RGB image tensor
[N, 3, H, W] with values 0..255, any N, H and W — and returns class probabilities.
Inside, it does what the studio does before every prediction: the shorter side
scaled to the model's size with antialiased bilinear filtering, the centre
square kept, the result rounded to 8 bits like a decoded image, then /255 and
the checkpoint's mean and std. A sidecar JSON names the classes in output order.

Formats, all made through `torch.export` (one traced graph, dynamic batch/height/width):
- ONNX via `torch.onnx.export(..., dynamo=True)` (needs onnx and onnxscript);
- `.pt2`, PyTorch's own format: `torch.export.load(path).module()(images)`;
- TorchScript, legacy: torch has deprecated it, so it is offered only while torch still ships
  `torch.jit`, for programs that cannot move yet.

What a graph cannot do — EXIF orientation, transparency, decoding — is done before it by
whoever decodes the file: the studio's `images` module, or the model package's `predict.py`.
The studio crops in the source image and lets PIL resample only the crop (8-bit, two passes);
the graph crops whole pixels and resizes in float. They agree exactly when the image already
has the model's size (which is what `predict.py` hands over) and within a few grey levels otherwise.
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

from studio.core.atomic import commit_temp, unique_temp, write_text
from studio.core.checkpoint import load_checkpoint, model_from_checkpoint
from studio.core.errors import ExportError
from studio.core.export_trust import SCORE_NAME, describe, judged_network
from studio.core.trust import stored_familiarity

FORMATS = ("package", "onnx", "pt2", "torchscript")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "package": ""}
LEGACY_FORMATS = ("torchscript",)
ONNX_OPSET = 18  # Resize with antialiasing appeared in opset 18
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
REFERENCE_INPUT_NAME = "reference_images"  # the model package's second input, for a reference-space verdict


class Preprocess(nn.Module):
    """Any-size 0..255 RGB batch → the model's normalized square input, in tensor ops only.

    The crop is written with symbolic sizes (`sym_min`, `narrow`) so that `torch.export` keeps
    height and width as variables instead of baking in the example's size.
    """

    def __init__(self, image_size: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32)
        h, w = x.shape[2], x.shape[3]
        side = torch.sym_min(h, w)
        # Indices rather than slices: a slice lets the exporter pick one branch (wide or tall) and
        # guard on it; gathering rows and columns is one graph for every shape.
        rows = torch.arange(side, device=x.device) + (h - side) // 2
        cols = torch.arange(side, device=x.device) + (w - side) // 2
        x = x.index_select(2, rows).index_select(3, cols)
        # The exporter cannot prove a crop of a variable size is non-empty; an image always is.
        torch._check(x.shape[2] > 0)
        torch._check(x.shape[3] > 0)
        return self._finish(x)

    def _finish(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=[self.image_size, self.image_size], mode="bilinear", align_corners=False,
                          antialias=True)
        x = torch.round(x).clamp(0.0, 255.0)  # a decoded image holds whole numbers 0..255
        return (x / 255.0 - self.mean) / self.std


class _ScriptPreprocess(Preprocess):
    """The same steps in the subset of Python that TorchScript compiles (legacy format only)."""

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32)
        h, w = x.shape[2], x.shape[3]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return self._finish(x[:, :, top:top + side, left:left + side])


class PackagedClassifier(nn.Module):
    """Preprocess → network → softmax at the run's temperature [, familiarity score]: one way to call it.

    `network` is a `JudgedNetwork` (export_trust): it returns the probabilities alone for a model
    without familiarity statistics, and (probabilities, unfamiliar_score) for one with them.
    """

    def __init__(self, preprocess: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network

    def forward(self, images: Tensor):  # noqa: ANN201 - one tensor, or two with the familiarity score
        return self.network(self.preprocess(images), images)


class TwoInputClassifier(PackagedClassifier):
    """As `PackagedClassifier`, with the reference network's picture given apart (the model package).

    The studio reads each file a second time at the reference network's size for the verdict; a
    graph that resized the model-size input instead would judge a different picture (a 64 px
    input blown up to 160 px). Given the file read at that size (160 px; small images' doubled own
    size, as the run recorded) as the studio reads it, the graph's score is the studio's to float
    rounding.
    """

    def forward(self, images: Tensor, reference_images: Tensor):  # noqa: ANN201 - (probabilities, score)
        return self.network(self.preprocess(images), reference_images)


def takes_reference_input(data: dict[str, Any]) -> bool:
    """True when the verdict is measured in the reference space: the package graph then takes two inputs."""
    familiarity = stored_familiarity(data)
    return familiarity is not None and familiarity.space == "reference"


def reference_input_size(data: dict[str, Any]) -> int:
    """The size of the reference picture the verdict looks at (the training images were embedded at it)."""
    familiarity = stored_familiarity(data)
    return familiarity.reference_size if familiarity is not None else 160


@dataclass
class Exported:
    path: Path
    sidecar: Path
    format: str


def load_source(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    return source if isinstance(source, dict) else load_checkpoint(source)


def default_output(source: str | Path, fmt: str) -> Path:
    """Beside the checkpoint: RUN_DIR/model.onnx, model.pt2, model.pt, or the folder RUN_DIR/model-package."""
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    return folder / ("model-package" if fmt == "package" else f"model{SUFFIX[fmt]}")


def sidecar_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".json")


def model_description(data: dict[str, Any], fmt: str, model_file: str, dtype: str) -> dict[str, Any]:
    """What a program needs to call the exported file: classes, input, outputs, what happens inside."""
    pre = data["preprocessing"]
    scripted = fmt == "torchscript"
    return {
        "format": fmt,
        "model_file": model_file,
        "classes": list(data["classes"]),
        "input": {
            "name": INPUT_NAME,
            "shape": "[N, 3, H, W]: any batch size N, any height H and width W",
            "dtype": dtype,
            "range": "0..255 (do not scale or normalize: the model does it)",
            "channels": "RGB",
        },
        "output": {"name": OUTPUT_NAME, "shape": f"[N, {len(data['classes'])}]",
                   "meaning": "calibrated softmax probabilities (logits divided by 'temperature'), "
                              "in the order of 'classes'"},
        "outputs": [OUTPUT_NAME] + ([SCORE_NAME] if len(names := output_names(data, scripted=scripted)) > 1
                                    else []),
        **describe(data, carried=len(names) > 1),
        "inside": {
            "resize": "shorter side to image_size, antialiased bilinear, centre crop, rounded to 0..255",
            "image_size": int(pre["image_size"]),
            "mean": list(pre["mean"]),
            "std": list(pre["std"]),
        },
        "source": {"checkpoint": data.get("path", ""), "architecture": data["arch"].get("arch", ""),
                   "metrics": data.get("metrics", {})},
    }


def _write_sidecar(data: dict[str, Any], out: Path, fmt: str, dtype: str) -> Path:
    path = sidecar_path(out)
    write_text(path, json.dumps(model_description(data, fmt, out.name, dtype), indent=2) + "\n")
    return path


def _network(data: dict[str, Any]) -> nn.Module:
    model = model_from_checkpoint(data).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def packaged_model(data: dict[str, Any], *, scripted: bool = False,
                   reference_input: bool = False) -> PackagedClassifier:
    """The whole graph an export holds, in eval mode: what every format is made from.

    `reference_input`: a reference-space verdict reads its own input (`TwoInputClassifier`).
    """
    pre = data["preprocessing"]
    kind = _ScriptPreprocess if scripted else Preprocess
    network = judged_network(data, _network(data), kind, allow_reference=not scripted)
    two = reference_input and not scripted and takes_reference_input(data)
    return (TwoInputClassifier if two else PackagedClassifier)(kind(pre["image_size"], pre["mean"], pre["std"]),
                                                               network).eval()


def output_names(data: dict[str, Any], *, scripted: bool = False) -> list[str]:
    familiarity = stored_familiarity(data)
    carried = familiarity is not None and (familiarity.space == "network" or not scripted)
    return [OUTPUT_NAME, SCORE_NAME] if carried else [OUTPUT_NAME]


def _example(data: dict[str, Any], dtype: str = "uint8") -> Tensor:
    """Two non-square images: a square or single example would let a size-specific shortcut hide."""
    size = int(data["preprocessing"]["image_size"])
    example = torch.randint(0, 256, (2, 3, size, size + 3), dtype=torch.uint8)
    return example if dtype == "uint8" else example.float()


def _dynamic_shapes() -> dict[str, dict[int, Any]]:
    return {INPUT_NAME: {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
                         3: torch.export.Dim("width", min=1)}}


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


def _failed(data: dict[str, Any], fmt: str, exc: BaseException) -> ExportError:
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return ExportError(f"{fmt} export of {data['arch'].get('arch', 'this model')} failed: {first}")


def _export_program(data: dict[str, Any], dtype: str = "uint8",
                    reference_input: bool = False) -> torch.export.ExportedProgram:
    model = packaged_model(data, reference_input=reference_input)
    example, shapes = (_example(data, dtype),), _dynamic_shapes()
    if isinstance(model, TwoInputClassifier):
        size = reference_input_size(data)
        batch = shapes[INPUT_NAME][0]
        reference = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
        example += (reference if dtype == "uint8" else reference.float(),)
        shapes[REFERENCE_INPUT_NAME] = {0: batch}
    with torch.no_grad():
        return torch.export.export(model, example, dynamic_shapes=shapes, strict=False)


def export_pt2(source: str | Path | dict[str, Any], out: str | Path | None = None) -> Exported:
    """A `torch.export` program: `torch.export.load(path).module()(images)` with uint8 0..255 images."""
    data = load_source(source)
    path = _target(source, out, "pt2")
    tmp = unique_temp(path, ".tmp.pt2")  # torch.export.save wants the .pt2 ending
    try:
        torch.export.save(_export_program(data), str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise _failed(data, "PyTorch (.pt2)", exc) from exc
    commit_temp(tmp, path)
    return Exported(path, _write_sidecar(data, path, "pt2", "uint8"), "pt2")


def _onnx_modules() -> Any:
    try:
        import onnx  # the exporter needs both; say so plainly rather than deep in torch
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx and onnxscript packages: "
                          "pip install 'classification-studio[export]' (or: pip install onnx onnxscript)") from None
    return onnx


def write_onnx(data: dict[str, Any], path: Path, input_dtype: str = "uint8", *, reference_input: bool = False) -> Path:
    """The ONNX graph alone, written whole or not at all (the package and export_onnx share it).

    `reference_input` (the package): a reference-space verdict gets its picture as a second input.
    """
    onnx = _onnx_modules()
    if input_dtype not in ("uint8", "float32"):
        raise ExportError(f"input dtype {input_dtype!r}: choose uint8 or float32")
    tmp = unique_temp(path)
    try:
        program = _export_program(data, input_dtype, reference_input)
        two = reference_input and takes_reference_input(data)
        onnx_program = torch.onnx.export(program, dynamo=True, opset_version=ONNX_OPSET, verbose=False,
                                         input_names=[INPUT_NAME] + ([REFERENCE_INPUT_NAME] if two else []),
                                         output_names=output_names(data))
        onnx_program.save(str(tmp), external_data=False)
        onnx.checker.check_model(str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise _failed(data, "ONNX", exc) from exc
    commit_temp(tmp, path)
    return path


def export_onnx(source: str | Path | dict[str, Any], out: str | Path | None = None, *,
                input_dtype: str = "uint8") -> Exported:
    """An ONNX file (opset 18) with dynamic batch, height and width; input dtype uint8 by default.

    uint8 is the default because it is what decoders produce and it cannot be confused with
    0..1 floats; input_dtype="float32" takes floats in 0..255 instead. The weights are kept
    inside the one file (no .onnx.data beside it): a Lite0 is far below ONNX's 2 GB limit.
    """
    _onnx_modules()
    if input_dtype not in ("uint8", "float32"):
        raise ExportError(f"input dtype {input_dtype!r}: choose uint8 or float32")
    data = load_source(source)
    path = write_onnx(data, _target(source, out, "onnx"), input_dtype)
    return Exported(path, _write_sidecar(data, path, "onnx", input_dtype), "onnx")


def torchscript_available() -> bool:
    """TorchScript is deprecated; a torch without `torch.jit.script` no longer offers the format."""
    return callable(getattr(getattr(torch, "jit", None), "script", None))


@contextmanager
def _fixed_size_trace():
    """Hide the tracer's notes about sizes it turns into constants, and only those, only here.

    Backbones with TensorFlow-style "same" padding work the padding out from the input size,
    and the tracer warns (TracerWarning) that it records the result as a constant. The traced
    network only ever sees the one size the preprocessing produces, so the constant is right.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def export_torchscript(source: str | Path | dict[str, Any], out: str | Path | None = None) -> Exported:
    """Legacy: a TorchScript file, `torch.jit.load(path)(images)` with uint8 or float 0..255 images.

    The network is traced at its one input size (the preprocessing guarantees that size),
    the preprocessing is scripted so that any H and W work.
    """
    if not torchscript_available():
        raise ExportError("this torch no longer ships TorchScript; export as ONNX or PyTorch (.pt2) instead")
    data = load_source(source)
    path = _target(source, out, "torchscript")
    packaged = packaged_model(data, scripted=True)
    size = int(data["preprocessing"]["image_size"])
    tmp = unique_temp(path)
    try:
        with _fixed_size_trace(), torch.no_grad():
            images = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)
            traced = torch.jit.trace(packaged.network, (packaged.preprocess(images), images), check_trace=False)
            torch.jit.script(PackagedClassifier(packaged.preprocess, traced)).save(str(tmp))
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise _failed(data, "TorchScript", exc) from exc
    commit_temp(tmp, path)
    return Exported(path, _write_sidecar(data, path, "torchscript", "uint8 or float32"), "torchscript")
