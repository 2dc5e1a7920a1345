"""A model package: what a lab needs to use a trained model without the studio or torch.

    DIR/model.onnx   the graph: resize, normalization and softmax inside
    DIR/model.json   classes, preprocessing, thresholds, where it came from
    DIR/README.md    the model card: what it learned from, how well it did on images it never saw, limits
    DIR/predict.py   a short script needing only onnxruntime, Pillow and numpy

The folder appears whole or not at all: it is assembled beside the target and renamed into place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from studio.core.atomic import write_text
from studio.core.export import (
    FORMATS,
    Exported,
    ExportError,
    default_output,
    export_onnx,
    export_pt2,
    export_torchscript,
    load_source,
    model_description,
    takes_reference_input,
    write_onnx,
)
from studio.core.package_card import model_card
from studio.core.predict import UNFAMILIAR_MESSAGE

DECODING = ("EXIF orientation applied; transparency composited on white; 16-bit and float images scaled to "
            "0..255; JPEGs decoded at a reduced scale (1/2, 1/4 or 1/8) that keeps the shorter side at least "
            "twice image_size; then the shorter side resized to image_size with PIL's bilinear filter and the "
            "centre square kept. predict.py does exactly this.")


def _studio_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("classification-studio")
    except PackageNotFoundError:
        return "unknown"


def _run_folder(source: str | Path | dict[str, Any], data: dict[str, Any]) -> Path | None:
    path = Path(data.get("path", "")) if isinstance(source, dict) else Path(source)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / "split.csv").is_file() else None


def package_info(data: dict[str, Any]) -> dict[str, Any]:
    """model.json: the sidecar's description plus what predict.py and a reviewer need."""
    info = model_description(data, "package", "model.onnx", "uint8")
    pre = data["preprocessing"]
    info["preprocessing"] = {"image_size": int(pre["image_size"]), "resize": pre.get("resize", ""),
                             "mean": list(pre["mean"]), "std": list(pre["std"]), "before_the_graph": DECODING}
    # The numbers the answers are judged by: calibration's temperature and the familiarity limit.
    familiarity = info.get("familiarity")
    info["thresholds"] = {"temperature": info.get("temperature")}
    if familiarity and familiarity.get("output"):
        info["thresholds"]["unfamiliar_score"] = familiarity["threshold"]
    if takes_reference_input(data):
        from studio.core.export import REFERENCE_INPUT_NAME, reference_input_size

        # The verdict compares the picture with the training images as the bundled ImageNet network sees them,
        # read from the file a second time at that network's size, exactly as the studio reads it.
        size = reference_input_size(data)
        info["reference_input"] = {
            "name": REFERENCE_INPUT_NAME, "image_size": size, "dtype": "uint8",
            "shape": f"[N, 3, {size}, {size}]",
            "meaning": f"the same image prepared as for '{info['input']['name']}' but at {size} px: "
                       "the picture the familiarity check looks at"}
    info["unfamiliar_message"] = UNFAMILIAR_MESSAGE
    info["studio_version"] = _studio_version()
    return info


def export_package(source: str | Path | dict[str, Any], out: str | Path | None = None) -> Exported:
    """Write the package folder at `out` (default RUN_DIR/model-package), replacing an older one whole."""
    data = load_source(source)
    target = Path(out) if out is not None else default_output(data.get("path", ".") if isinstance(source, dict)
                                                               else source, "package")
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target}: a file is in the way; the package is a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / "model.json").is_file():
        raise ExportError(f"{target}: this folder holds other files; choose an empty or new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_onnx(data, staging / "model.onnx", reference_input=True)
        info = package_info(data)
        write_text(staging / "model.json", json.dumps(info, indent=2) + "\n")
        write_text(staging / "README.md", model_card(data, info, _run_folder(source, data)))
        script = resources.files("studio").joinpath("resources/package/predict.py").read_text(encoding="utf-8")
        write_text(staging / "predict.py", script)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(target, target / "model.json", "package")


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames only: a reader sees the old package or the new one.

    The package is made to be handed on, so it gets the usual readable modes rather than the
    private ones of temporary files.
    """
    for file in staging.iterdir():
        file.chmod(0o644)
    staging.chmod(0o755)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(source: str | Path | dict[str, Any], fmt: str, out: str | Path | None = None) -> Exported:
    """Any export format by name: the one entry the CLI and the window call (here, above every format)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "package":
        return export_package(source, out)
    return {"onnx": export_onnx, "pt2": export_pt2, "torchscript": export_torchscript}[fmt](source, out)
