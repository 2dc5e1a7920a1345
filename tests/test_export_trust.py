"""Exports carry the calibration and the familiarity verdict: same score, same verdict as the studio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.core.export import export_onnx, export_pt2, export_torchscript
from studio.core.images import load_for_model, to_tensor
from studio.core.predict import Predictor
from tests.test_evaluate_export import _one_thread, load_script, run, val_pixels  # noqa: F401 - shared fixtures
from tests.test_trust import stripes

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def images(run_dir: Path, tmp_path: Path) -> tuple[list[Path], torch.Tensor]:
    """The run's validation images and some it has never seen the like of, at the model's size."""
    paths, _, predictor = val_pixels(run_dir)
    root = Path(json.loads((run_dir / "config.json").read_text())["data"]["root"])
    files = [root / p for p in paths[:6]] + sorted(stripes(tmp_path / "odd", n=4).glob("*.png"))
    return files, torch.stack([to_tensor(load_for_model(f, predictor.image_size)) for f in files])


def test_onnx_returns_the_studios_score_and_verdict(run: Path, tmp_path: Path) -> None:  # noqa: F811
    files, pixels = images(run, tmp_path)
    studio = list(Predictor(run).predict_paths(files))
    exported = export_onnx(run, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", "unfamiliar_score"]
    probs, score = session.run(None, {"images": pixels.numpy()})
    expected = np.array([p.score for p in studio])
    assert np.allclose(score, expected, rtol=1e-3, atol=1e-3)
    side = json.loads(exported.sidecar.read_text())
    limit = side["familiarity"]["threshold"]
    assert list(score > limit) == [p.unfamiliar for p in studio]
    assert any(p.unfamiliar for p in studio) and not all(p.unfamiliar for p in studio)
    assert side["outputs"] == ["probabilities", "unfamiliar_score"] and side["temperature"] > 0
    assert np.allclose(probs.max(1), [p.confidence for p in studio], atol=1e-4)  # calibrated, as in the studio


def test_pt2_and_torchscript_carry_the_same_score(run: Path, tmp_path: Path) -> None:  # noqa: F811
    files, pixels = images(run, tmp_path)
    expected = torch.tensor([p.score for p in Predictor(run).predict_paths(files)])
    module = torch.export.load(str(export_pt2(run, tmp_path / "model.pt2").path)).module()
    _, score = module(pixels)
    assert torch.allclose(score, expected, rtol=1e-3, atol=1e-3)
    scripted = load_script(export_torchscript(run, tmp_path / "model.pt").path).module
    assert torch.allclose(scripted(pixels)[1], expected, rtol=1e-3, atol=1e-3)
