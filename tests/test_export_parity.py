"""Exported graphs (ONNX through torch.export, .pt2, legacy TorchScript) answer like `studio predict`.

Two kinds of agreement, with different tolerances:

- Same pixels in, same probabilities out. When the graph receives the image at the model's
  size (what the model package's predict.py hands it), its resize is the identity and the only
  difference from the Predictor is float32 arithmetic done in another order by another runtime
  (ONNX Runtime fuses convolution and batch norm, sums in other orders). Through a few layers
  that moves a probability by about 1e-7; 1e-5 leaves two orders of margin and still fails for
  any real preprocessing difference (one grey level moves these probabilities by ~1e-3).
- Raw images of any size in. The graph resizes in float with a whole-pixel centre crop; the
  studio resizes with PIL in 8 bits (two passes, each rounded) from a crop box that may sit on
  half a pixel, and decodes big JPEGs at a reduced scale. Pixels then differ by a few grey
  levels; the class must not change and probabilities stay within 0.03 of each other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.export import ExportError, export_onnx, export_pt2, export_torchscript
from studio.core.images import load_rgb, to_tensor
from studio.core.predict import Predictor
from tests.test_evaluate_export import (  # noqa: F401 - shared fixtures
    FirstOutput,
    _one_thread,
    load_script,
    run,
    val_pixels,
)

SAME_PIXELS_ATOL = 1e-5
RAW_IMAGE_ATOL = 0.03

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exports(run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    out = tmp_path_factory.mktemp("exports")
    return {"onnx": export_onnx(run, out / "model.onnx").path, "pt2": export_pt2(run, out / "model.pt2").path}


def _onnx(path: Path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {"images": pixels.numpy()})[0]


def _pt2(path: Path):
    module = FirstOutput(torch.export.load(str(path)).module())
    return lambda pixels: module(pixels).detach().numpy()


def raw_images(folder: Path, source: np.ndarray) -> dict[str, Path]:
    """The awkward cases, drawn from one training image so the model has an opinion about each."""
    folder.mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(source)
    made = {
        "wide_larger": base.resize((97, 61), Image.Resampling.BICUBIC),
        "tall_smaller": base.resize((11, 19), Image.Resampling.BICUBIC),
        "odd_margin": base.resize((40, 25), Image.Resampling.BICUBIC),
    }
    paths = {}
    for name, img in made.items():
        paths[name] = folder / f"{name}.png"
        img.save(paths[name])
    big = base.resize((2400, 1600), Image.Resampling.BICUBIC)
    paths["large_jpeg"] = folder / "large.jpg"
    big.save(paths["large_jpeg"], quality=95)
    # Stored on its side with the camera's "rotate 90° clockwise to view" tag.
    exif = Image.Exif()
    exif[0x0112] = 6
    paths["exif_rotated"] = folder / "rotated.jpg"
    base.resize((60, 36)).rotate(90, expand=True).save(paths["exif_rotated"], exif=exif, quality=95)
    rgba = np.dstack([np.asarray(base.resize((48, 30))), np.full((30, 48), 255, np.uint8)])
    rgba[:, :12, 3] = 0  # a transparent strip: the studio shows it on white
    rgba[:, :12, :3] = 0  # ...whose hidden colour is black, so ignoring alpha would change the answer
    paths["transparent_png"] = folder / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(paths["transparent_png"])
    return paths


@pytest.fixture(scope="module")
def awkward(run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    _, pixels, _ = val_pixels(run)
    return raw_images(tmp_path_factory.mktemp("awkward"), pixels[0].permute(1, 2, 0).numpy())


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_same_pixels_give_the_predictors_probabilities(fmt: str, run: Path, exports: dict[str, Path]) -> None:  # noqa: F811
    model = (_onnx if fmt == "onnx" else _pt2)(exports[fmt])
    _, pixels, predictor = val_pixels(run)
    expected = predictor.probabilities(pixels).numpy()
    assert np.abs(model(pixels) - expected).max() < SAME_PIXELS_ATOL
    assert not np.allclose(expected[0], expected[-1], atol=1e-3)  # the images differ, so agreement means something


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_any_batch_height_and_width(fmt: str, exports: dict[str, Path]) -> None:
    model = (_onnx if fmt == "onnx" else _pt2)(exports[fmt])
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 24, 24), (3, 3, 40, 31), (1, 3, 17, 90), (2, 3, 5, 7), (1, 3, 300, 41)]:
        out = model(torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)))
        assert out.shape == (shape[0], 3) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_onnx_graph_is_current_and_dynamic(exports: dict[str, Path]) -> None:
    import onnx

    model = onnx.load(str(exports["onnx"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # batch, 3, height, width
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert {"Resize", "Softmax"} <= {node.op_type for node in model.graph.node}  # preprocessing inside
    assert not (exports["onnx"].parent / "model.onnx.data").exists()  # one file, weights inside


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_raw_images_of_any_size_agree_with_studio_predict(fmt: str, run: Path, exports: dict[str, Path],  # noqa: F811
                                                          awkward: dict[str, Path]) -> None:
    """The file decoded as the studio decodes it (upright, alpha on white), then handed over whole."""
    model = (_onnx if fmt == "onnx" else _pt2)(exports[fmt])
    predictor = Predictor(run)
    studio = {p.path: p for p in predictor.predict_paths(awkward.values(), top_k=3)}
    for name, path in awkward.items():
        got = model(to_tensor(load_rgb(path))[None])[0]
        want = np.array([dict(studio[str(path)].top)[c] for c in predictor.classes])
        assert predictor.classes[int(got.argmax())] == studio[str(path)].label, name
        assert np.abs(got - want).max() < RAW_IMAGE_ATOL, name


def test_exif_and_alpha_matter_for_these_images(run: Path, awkward: dict[str, Path]) -> None:  # noqa: F811
    """Guard for the test above: ignoring EXIF or alpha would change the pixels the model sees."""
    rotated = Image.open(awkward["exif_rotated"])
    assert rotated.size == (36, 60) and load_rgb(awkward["exif_rotated"]).size == (60, 36)
    naive = np.asarray(Image.open(awkward["transparent_png"]).convert("RGB"))
    assert naive[:, :12].max() == 0 and np.asarray(load_rgb(awkward["transparent_png"]))[:, :12].min() == 255


def test_torchscript_is_legacy_but_still_agrees(run: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.warns(FutureWarning, match="deprecated"):  # torch's removal notice is not hidden
        exported = export_torchscript(run, tmp_path / "model.pt")
    _, pixels, predictor = val_pixels(run)
    assert torch.allclose(load_script(exported.path)(pixels), predictor.probabilities(pixels), atol=SAME_PIXELS_ATOL)
    assert json.loads(exported.sidecar.read_text())["format"] == "torchscript"


def test_onnx_export_without_onnxscript_says_how_to_install(run: Path, tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match="onnxscript"):
        export_onnx(run, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())
