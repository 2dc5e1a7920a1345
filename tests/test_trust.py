"""Calibrated confidence and the familiarity verdict: fitted after training, stored, used everywhere."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.cli import main
from studio.core.calibration import expected_calibration_error, fit_temperature, nll
from studio.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.familiarity import fit_familiarity
from studio.core.predict import Predictor, expand_inputs
from studio.core.train import Trainer
from studio.core.trust import NEIGHBOURS_FILE, nearest
from tests.conftest import make_colour_folder


def stripes(folder: Path, n: int = 8, size: int = 24) -> Path:
    """Grey stripes and checkerboards: nothing like the colour images the models learn."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        step = int(rng.integers(2, 5))
        a[:, ::step] = 255
        if i % 2:
            a[::step, :] = 255 - a[::step, :]
        Image.fromarray((a * rng.uniform(0.4, 1.0)).astype(np.uint8)).save(folder / f"odd_{i}.png")
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("trust")
    data = make_colour_folder(tmp / "data", per_class=20)
    cfg = RunConfig()
    cfg.data.root = str(data)
    cfg.model.image_size, cfg.model.blocks, cfg.model.width = 24, 2, 8
    cfg.train.epochs, cfg.train.batch_size = 4, 16
    cfg.train.familiarity_space = "network"
    result = Trainer(cfg, project=tmp / "proj").run()
    assert result.status == "finished"
    return Path(result.run_dir), tmp


def test_unfamiliar_images_separate_from_familiar_ones(run: tuple[Path, Path]) -> None:
    run_dir, tmp = run
    predictor = Predictor(run_dir)
    familiar = list(predictor.predict_paths(expand_inputs([make_colour_folder(tmp / "new", per_class=6, seed=9)])))
    foreign = list(predictor.predict_paths(expand_inputs([stripes(tmp / "stripes")])))
    assert sum(p.unfamiliar for p in foreign) == len(foreign)
    assert sum(p.unfamiliar for p in familiar) <= 2
    assert max(p.score for p in familiar) < min(p.score for p in foreign)
    assert {p.verdict for p in foreign} == {"unfamiliar"}


def test_threshold_lets_its_share_of_validation_images_pass() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 32, generator=g) * 3

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 32, generator=g), y

    train, train_y = draw(600)
    val, _ = draw(1000)
    for share in (0.8, 0.95):
        model, note = fit_familiarity(train, train_y, val, share=share)
        assert not note
        passed = float((model.score(val) <= 1.0).float().mean())
        assert abs(passed - share) < 0.01
        fresh, _ = draw(2000)
        assert abs(float((model.score(fresh) <= 1.0).float().mean()) - share) < 0.05


def test_cross_fitted_limit_lets_its_share_of_new_images_pass() -> None:
    """With validation labels every image is measured by Gaussians that never saw it: a limit set on
    distances to Gaussians fitted on the same images would flag about twice the share of new ones here."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 64, generator=g) * 3

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 64, generator=g), y

    (train, train_y), (val, val_y), (fresh, _) = draw(120), draw(60), draw(4000)
    model, note = fit_familiarity(train, train_y, val, val_labels=val_y, share=0.95)
    assert not note and model.means.shape == (3, 64)
    assert abs(float((model.score(fresh) <= 1.0).float().mean()) - 0.95) < 0.03


def test_temperature_fitting_lowers_validation_nll() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (300,), generator=g)
    clean = torch.randn(300, 4, generator=g) + 2.0 * torch.nn.functional.one_hot(labels, 4)
    logits = clean * 4  # over-confident: the same ranking, far too sure
    t = fit_temperature(logits, labels)
    assert t > 2
    assert nll(logits, labels, t) < nll(logits, labels) - 0.1
    before = expected_calibration_error(torch.softmax(logits, 1).numpy(), labels.numpy())
    after = expected_calibration_error(torch.softmax(logits / t, 1).numpy(), labels.numpy())
    assert after < before


@pytest.mark.parametrize("scale", [0.15, 6.0])
def test_fitted_temperature_is_the_nll_minimum_on_a_small_mostly_right_validation(scale: float) -> None:
    """63 images, 3 wrong: the case where a gradient search stalled; the fit must be the true minimum."""
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 6, (63,), generator=g)
    logits = (torch.randn(63, 6, generator=g) + 4.0 * torch.nn.functional.one_hot(labels, 6)) * scale
    logits[:3] = logits[:3].roll(1, dims=1)  # three confidently wrong answers
    t = fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.1), np.log(20.0), 2001))
    best = float(grid[np.argmin([nll(logits, labels, float(x)) for x in grid])])
    assert abs(np.log(t) - np.log(best)) < 0.01
    assert nll(logits, labels, t) <= min(nll(logits, labels, best), nll(logits, labels)) + 1e-9


def test_checkpoint_holds_the_fit_as_plain_tensors(run: tuple[Path, Path]) -> None:
    run_dir, _ = run
    data = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    assert isinstance(data["temperature"], float) and data["temperature"] > 0
    fam = data["familiarity"]
    assert isinstance(fam["means"], torch.Tensor) and fam["means"].shape == (3, 16)  # width 8, two blocks
    assert fam["precision"].shape == (16, 16) and fam["space"] == "network" and fam["share"] == 0.95
    assert set(data["calibration"]) >= {"ece_before", "ece_after", "nll_before", "nll_after"}
    assert data["calibration"]["nll_after"] <= data["calibration"]["nll_before"]
    assert (run_dir / NEIGHBOURS_FILE).is_file()


def test_older_checkpoint_predicts_with_verdict_unavailable(run: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, tmp = run
    data = load_checkpoint(run_dir)
    for key in ("temperature", "familiarity", "calibration"):
        data.pop(key)
    data.pop("path")
    old = tmp_path / "old.pt"
    save_checkpoint(data, old)
    image = next(iter(sorted((tmp / "data" / "red").glob("*.png"))))
    p = next(Predictor(old).predict_paths([image]))
    assert p.verdict == "unavailable" and p.unfamiliar is None and p.score is None and p.top
    new = next(Predictor(run_dir).predict_paths([image]))
    assert new.label == p.label and new.verdict in ("familiar", "unfamiliar")


def test_damaged_familiarity_is_refused_in_one_line(run: tuple[Path, Path], tmp_path: Path) -> None:
    data = load_checkpoint(run[0])
    data.pop("path")
    data["familiarity"]["precision"] = torch.zeros(3, 3)
    bad = tmp_path / "bad.pt"
    save_checkpoint(data, bad)
    with pytest.raises(CheckpointError, match="familiarity.precision"):
        Predictor(bad)


def test_calibrated_probabilities_are_what_predictions_carry(run: tuple[Path, Path]) -> None:
    run_dir, tmp = run
    data = load_checkpoint(run_dir)
    data["temperature"] = 2.5
    predictor = Predictor(data)
    image = sorted((tmp / "data" / "blue").glob("*.png"))[0]
    pixels = predictor.pixels(Image.open(image))[None]
    raw = torch.softmax(predictor.logits(pixels), 1)[0]
    cal = torch.softmax(predictor.logits(pixels) / predictor.temperature, 1)[0]
    p = next(predictor.predict_paths([image], top_k=3))
    assert p.confidence == pytest.approx(float(cal.max()), abs=1e-6)
    assert p.confidence != pytest.approx(float(raw.max()), abs=1e-4)


def test_cli_csv_and_json_carry_the_verdict(run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, tmp = run
    odd = stripes(tmp / "stripes_cli", n=3)
    image = sorted((tmp / "data" / "red").glob("*.png"))[0]
    out_csv = tmp / "p.csv"
    assert main(["predict", "--model", str(run_dir), str(image), str(odd), "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["unfamiliar"] for r in rows[1:]] == ["yes"] * 3
    assert all(float(r["unfamiliar_score"]) > 1 for r in rows[1:])
    assert {r["compared_with"] for r in rows} == {"network"}  # the space the run chose, named in every row
    capsys.readouterr()
    assert main(["predict", "--model", str(run_dir), str(odd), "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert all(item["unfamiliar"] is True and item["unfamiliar_score"] > 1 for item in items)
    assert {item["compared_with"] for item in items} == {"network"}
    assert main(["predict", "--model", str(run_dir), str(odd)]) == 0
    assert "Not like the training images" in capsys.readouterr().out


def test_nearest_training_images_come_from_the_run(run: tuple[Path, Path]) -> None:
    run_dir, tmp = run
    predictor = Predictor(run_dir)
    image = sorted((tmp / "data" / "green").glob("*.png"))[0]
    features, _ = predictor.features_and_logits(predictor.pixels(Image.open(image))[None])
    near = nearest(run_dir, features[0], k=4)
    assert len(near) == 4 and near[0].similarity >= near[-1].similarity
    assert sum(n.label == "green" for n in near) >= 3


def test_calibrate_gives_an_older_run_its_verdict(run: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    old_run = tmp_path / "proj" / "runs" / "old"
    shutil.copytree(run[0], old_run)
    data = load_checkpoint(old_run)
    for key in ("temperature", "familiarity", "calibration", "path"):
        data.pop(key)
    save_checkpoint(data, old_run / "best.pt")
    assert Predictor(old_run).familiarity is None
    assert main(["calibrate", str(old_run), "--familiar-share", "0.9"]) == 0
    assert "temperature" in capsys.readouterr().out
    predictor = Predictor(old_run)
    assert predictor.familiarity is not None and predictor.familiarity.share == 0.9
    assert main(["calibrate", str(tmp_path / "nowhere")]) != 0
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_reference_space_judges_a_model_trained_from_scratch(run: tuple[Path, Path], tmp_path: Path) -> None:
    """The bundled ImageNet network's features: what a custom CNN's verdict uses by default."""
    import shutil

    from studio.core.trust_fit import refit_run

    ref_run = tmp_path / "proj" / "runs" / "ref"
    shutil.copytree(run[0], ref_run)
    fit = refit_run(ref_run, space="reference")
    assert fit.familiarity.space == "reference" and fit.familiarity.dim == 1280
    predictor = Predictor(ref_run)
    assert predictor.space == "reference"
    foreign = list(predictor.predict_paths(expand_inputs([stripes(tmp_path / "odd", n=4)])))
    familiar = list(predictor.predict_paths(expand_inputs([make_colour_folder(tmp_path / "new", per_class=3,
                                                                              seed=11)])))
    assert all(p.unfamiliar for p in foreign)
    assert max(p.score for p in familiar) < min(p.score for p in foreign)
    image = sorted((run[1] / "data" / "blue").glob("*.png"))[0]
    _, near = predictor.explain(image, ref_run, k=3)
    assert [n.label for n in near] == ["blue"] * 3


def test_an_all_right_validation_sharpens_only_to_what_its_size_supports() -> None:
    labels = torch.arange(20) % 4
    logits = torch.nn.functional.one_hot(labels, 4).float()  # right every time, but under 50 % sure
    t = fit_temperature(logits, labels)
    assert t < 1.0
    confidence = float(torch.softmax(logits / t, 1).max(1).values.mean())
    assert confidence == pytest.approx(20 / 21, abs=1e-3)
    sure = 20 * torch.nn.functional.one_hot(labels, 4).float()
    assert fit_temperature(sure, labels) == 1.0  # already surer than 20 successes justify: left alone
