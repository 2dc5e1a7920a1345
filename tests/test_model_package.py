"""The model package: a folder a lab can use with onnxruntime, Pillow and numpy, answering like the studio."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio import cli
from studio.core.export import ExportError
from studio.core.images import load_for_model, to_tensor
from studio.core.package import export_package
from studio.core.predict import Predictor
from tests.test_evaluate_export import _one_thread, run, val_pixels  # noqa: F401 - shared fixtures
from tests.test_export_parity import SAME_PIXELS_ATOL, raw_images

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Runs predict.py the way a lab would, but with torch and the studio made unimportable, so that a
# hidden dependency on either fails here rather than on their machine.
NO_TORCH = ("import runpy, sys\n"
            "for name in ('torch', 'torchvision', 'studio'): sys.modules[name] = None\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")


@pytest.fixture(scope="module")
def package(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return export_package(run, tmp_path_factory.mktemp("pkg") / "package").path


@pytest.fixture(scope="module")
def awkward(run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    _, pixels, _ = val_pixels(run)
    return raw_images(tmp_path_factory.mktemp("awkward"), pixels[0].permute(1, 2, 0).numpy())


def load_script(package: Path):
    spec = importlib.util.spec_from_file_location("package_predict", package / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_predict(package: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", NO_TORCH, str(package / "predict.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=package)


def test_package_holds_the_four_files(package: Path) -> None:
    assert sorted(p.name for p in package.iterdir()) == ["README.md", "model.json", "model.onnx", "predict.py"]
    info = json.loads((package / "model.json").read_text())
    assert info["classes"] == ["blue", "green", "red"] and info["model_file"] == "model.onnx"
    assert info["preprocessing"]["image_size"] == 24 and "EXIF" in info["preprocessing"]["before_the_graph"]
    assert info["thresholds"]["temperature"] > 0 and info["studio_version"]
    assert not [p for p in package.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_model_card_says_what_it_learned_from_and_how_well_it_did(package: Path, run: Path) -> None:  # noqa: F811
    card = (package / "README.md").read_text()
    for needle in ("blue, green, red", "| class | training | validation |", "| red | 8 | 2 |", "Images listed: 20",
                   "model saved: 20", "| class | precision | recall | F1 | images |", "validation images",
                   "## Intended use and limits", "Classification Studio 0."):
        assert needle in card, needle
    assert "| **all** | 24 | 6 |" in card  # 30 images: training and validation, as split.csv says


@pytest.mark.parametrize("name", ["wide_larger", "tall_smaller", "odd_margin", "large_jpeg", "exif_rotated",
                                  "transparent_png"])
def test_package_preprocessing_gives_the_studios_pixels(name: str, package: Path, awkward: dict[str, Path]) -> None:
    """EXIF, alpha, JPEG scale and the resize happen in predict.py; byte for byte what the studio feeds its model."""
    script = load_script(package)
    studio = to_tensor(load_for_model(awkward[name], 24)).numpy()
    assert np.array_equal(script.prepare(awkward[name], 24), studio)


def test_predict_py_without_torch_prints_what_studio_predict_prints(package: Path, run: Path, awkward,  # noqa: F811
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in awkward.values()]
    assert cli.main(["predict", *files, "--model", str(run), "--top-k", "2"]) == 0
    studio = capsys.readouterr().out
    done = run_predict(package, *files, "--top-k", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == studio
    done = run_predict(package, *files, "--json")
    got = {r["path"]: dict(r["top"]) for r in json.loads(done.stdout)}
    predictor = Predictor(run)
    for p in predictor.predict_paths(files, top_k=3):
        assert got[p.path].keys() == dict(p.top).keys()
        assert max(abs(got[p.path][c] - v) for c, v in p.top) < SAME_PIXELS_ATOL


@pytest.fixture(scope="module")
def reference_run(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The run with its verdict measured in the reference space, the default for every model."""
    import shutil

    from studio.core.trust_fit import refit_run

    copy = tmp_path_factory.mktemp("refproj") / "runs" / "ref"
    shutil.copytree(run, copy)
    assert refit_run(copy, space="reference").familiarity.space == "reference"
    return copy


def test_predict_py_gives_the_studios_unfamiliarity_score_and_verdict(reference_run: Path, awkward,
                                                                        tmp_path: Path) -> None:
    """The verdict looks through the reference network: predict.py reads each file a second time at that
    network's size, as the studio does, so the score is the studio's to float rounding, large photos included."""
    from tests.test_trust import stripes

    package = export_package(reference_run, tmp_path / "package").path
    info = json.loads((package / "model.json").read_text())
    # The run's small training images were embedded near their own size; the package reads files the same way.
    assert info["familiarity"]["space"] == "reference"
    assert info["reference_input"]["image_size"] == Predictor(reference_run).reference_size == 64
    root = Path(json.loads((reference_run / "config.json").read_text())["data"]["root"])
    own = [root / p for p in val_pixels(reference_run)[0][:4]]
    files = [str(p) for p in [*own, *awkward.values(), *sorted(stripes(tmp_path / "odd", n=3, size=300).glob("*.png"))]]
    done = run_predict(package, *files, "--json")
    assert done.returncode == 0, done.stderr
    got = {r["path"]: r for r in json.loads(done.stdout)}
    studio = list(Predictor(reference_run).predict_paths(files))
    assert any(p.unfamiliar for p in studio) and not all(p.unfamiliar for p in studio)
    for p in studio:
        assert got[p.path]["unfamiliar"] == p.unfamiliar, p.path
        assert got[p.path]["compared_with"] == p.compared_with == "reference"
        assert abs(got[p.path]["unfamiliar_score"] - p.score) <= 1e-4 * max(1.0, p.score), p.path


def test_a_plain_onnx_file_carries_the_reference_verdict_too(reference_run: Path, tmp_path: Path) -> None:
    """One input there: the reference network resizes the given pixels itself, so the score is close, not equal."""
    import onnxruntime as ort

    from studio.core.export import export_onnx
    from tests.test_trust import stripes

    session = ort.InferenceSession(str(export_onnx(reference_run, tmp_path / "m.onnx").path),
                                   providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    odd = sorted(stripes(tmp_path / "odd", n=2).glob("*.png"))
    pixels = np.stack([to_tensor(load_for_model(f, 24)).numpy() for f in odd])
    _, score = session.run(None, {"images": pixels})
    assert (score > 1).all() and [p.unfamiliar for p in Predictor(reference_run).predict_paths(odd)] == [True] * 2


def test_predict_py_names_an_unreadable_file_and_goes_on(package: Path, tmp_path: Path, awkward) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    done = run_predict(package, str(bad), str(awkward["wide_larger"]))
    assert done.returncode == 0
    first, second = done.stdout.splitlines()
    assert first.startswith(f"{bad}: unusable — ") and second.startswith(f"{awkward['wide_larger']}: ")


def test_cli_writes_a_package_and_replaces_it_whole(run: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "pkg"
    assert cli.main(["export", str(run), "--format", "package", "--out", str(out)]) == 0
    (out / "model.json").write_text("{}")
    assert cli.main(["export", str(run), "--out", str(out)]) == 0  # the package is the default format
    assert json.loads((out / "model.json").read_text())["classes"] == ["blue", "green", "red"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ExportError, match="holds other files"):
        export_package(run, other)
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]
