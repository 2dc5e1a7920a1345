"""After a run: evaluation figures, report.md and confusion.png, and exported files that agree with the studio."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.evaluate import EvaluationError, evaluate_run
from studio.core.evaluation_report import replace_section, write_evaluation
from studio.core.export import ExportError, export_onnx, export_pt2, export_torchscript, sidecar_path
from studio.core.images import load_for_model, to_tensor
from studio.core.predict import Predictor
from studio.core.runfiles import read_split
from studio.core.train import Trainer
from tests.conftest import make_colour_folder
from tests.test_train import tiny_config


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine every op would wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained run shared by the tests of this file (about two seconds)."""
    base = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(base / "home"))
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        data = make_colour_folder(base / "data", per_class=10)
        result = Trainer(tiny_config(data, epochs=3), project=base / "project").run()
    return Path(result.run_dir)


class FirstOutput:
    """An export's probabilities: a model with a familiarity verdict also returns its score (tested apart)."""

    def __init__(self, module) -> None:
        self.module = module

    def __call__(self, *args):
        out = self.module(*args)
        return out[0] if isinstance(out, tuple) else out


def load_script(path: Path) -> FirstOutput:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 announces torch.jit's retirement
        return FirstOutput(torch.jit.load(str(path)))


def val_pixels(run: Path) -> tuple[list[str], torch.Tensor, Predictor]:
    predictor = Predictor(run)
    root = Path(json.loads((run / "config.json").read_text())["data"]["root"])
    paths = [p for p, _, s in read_split(run) if s == "val"]
    pixels = torch.stack([to_tensor(load_for_model(root / p, predictor.image_size)) for p in paths])
    return paths, pixels, predictor


def test_evaluation_matches_the_predictor_and_the_split(run: Path) -> None:
    ev = evaluate_run(run)
    rows = [(p, c) for p, c, s in read_split(run) if s == "val"]
    assert ev.metrics.total == len(rows) == len(ev.images) and not ev.skipped
    assert [im.path for im in ev.images] == [p for p, _ in rows]
    assert [ev.classes[im.true] for im in ev.images] == [c for _, c in rows]
    paths, pixels, predictor = val_pixels(run)
    expected = predictor.probabilities(pixels).numpy()
    assert np.allclose([im.probabilities for im in ev.images], expected, atol=1e-6)
    cm = ev.confusion
    assert cm.sum() == len(rows)
    for t in range(len(ev.classes)):
        for p in range(len(ev.classes)):
            assert len(ev.images_in_cell(t, p)) == cm[t, p]
    correct = sum(int(e.argmax()) == ev.classes.index(c) for e, (_, c) in zip(expected, rows))
    assert ev.metrics.accuracy == pytest.approx(correct / len(rows))
    assert all(not im.correct for im in (ev.images[w.index] for w in ev.most_wrong))
    assert ev.diagnostics and {d.severity for d in ev.diagnostics} <= {"error", "warning", "info"}
    # Three classes of eight training images each: the evaluation says the classes are small.
    assert any(d.title == "Some classes have very few images" for d in ev.diagnostics)
    again = json.loads(json.dumps(ev.to_dict()))
    assert again["metrics"]["confusion"] == cm.tolist() and again["classes"] == ["blue", "green", "red"]


def test_report_section_and_png_are_written_once(run: Path) -> None:
    before = (run / "report.md").read_text()
    ev = evaluate_run(run)
    report, png = write_evaluation(ev)
    write_evaluation(ev)
    text = report.read_text()
    assert text.startswith(before.rstrip("\n")), "the trainer's part of report.md changed"
    assert text.count("## Evaluation") == 1 and "## History" in text
    assert "![Confusion matrix" in text and "| blue |" in text
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 300


def test_replace_section_keeps_what_follows() -> None:
    text = "# Run\n\n## History\n\nrows\n\n## Evaluation\n\nold\n\n## Later\n\nkept\n"
    new = replace_section(text, "## Evaluation\n\nnew\n")
    assert new == "# Run\n\n## History\n\nrows\n\n## Evaluation\n\nnew\n\n## Later\n\nkept\n"
    assert replace_section(new, "## Evaluation\n\nnew\n") == new
    assert replace_section("# Run\n", "## Evaluation\n\nx\n") == "# Run\n\n## Evaluation\n\nx\n"


def test_missing_images_are_skipped_with_a_note(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    data = tmp_path / "data"
    shutil.copytree(config["data"]["root"], data)
    config["data"]["root"] = str(data)
    (copy / "config.json").write_text(json.dumps(config))
    gone = [p for p, _, s in read_split(copy) if s == "val"][0]
    (data / gone).unlink()
    ev = evaluate_run(copy)
    assert [p for p, _ in ev.skipped] == [gone] and "not found" in ev.skipped[0][1]
    assert ev.metrics.total == len([1 for *_, s in read_split(copy) if s == "val"]) - 1
    assert any("skipped" in n for n in ev.notes)


def test_evaluation_errors_are_plain(run: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="no test images"):
        evaluate_run(run, "test")
    with pytest.raises(EvaluationError, match="not a run folder"):
        evaluate_run(tmp_path)
    with pytest.raises(EvaluationError, match="unknown split"):
        evaluate_run(run, "holdout")


def test_cli_evaluate_and_export(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from studio.cli_evaluate_export import MODEL_COMMANDS, add_parsers

    parser = argparse.ArgumentParser(prog="studio")
    add_parsers(parser.add_subparsers(dest="command"))

    def call(*argv: str) -> int:
        args = parser.parse_args(argv)
        return MODEL_COMMANDS[args.command](args)

    assert call("evaluate", str(run), "--json", "--no-write") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "val" and len(out["metrics"]["per_class"]) == 3
    assert call("evaluate", str(run)) == 0
    assert "accuracy" in capsys.readouterr().out
    assert call("evaluate", str(run), "--split", "test") == 1
    assert "no test images" in capsys.readouterr().err
    target = tmp_path / "out" / "classifier.pt2"
    assert call("export", str(run), "--format", "pt2", "--out", str(target)) == 0
    assert target.is_file() and sidecar_path(target).is_file()


def test_torchscript_export_gives_the_predictors_probabilities(run: Path, tmp_path: Path) -> None:
    exported = export_torchscript(run, tmp_path / "model.pt")
    side = json.loads(exported.sidecar.read_text())
    assert side["classes"] == ["blue", "green", "red"] and side["inside"]["image_size"] == 24
    model = load_script(exported.path)
    _, pixels, predictor = val_pixels(run)
    expected = predictor.probabilities(pixels)
    assert torch.allclose(model(pixels), expected, atol=1e-5)
    assert torch.allclose(model(pixels.float()), expected, atol=1e-5)  # float 0..255 works the same
    wide = model(torch.randint(0, 256, (2, 3, 30, 50), dtype=torch.uint8))
    assert wide.shape == (2, 3) and torch.allclose(wide.sum(1), torch.ones(2))
    # A real non-square picture: the studio resizes with PIL, the file with tensor ops; they agree closely.
    img = Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).resize((60, 36), Image.Resampling.BICUBIC)
    studio = dict(predictor.predict_image(img, top_k=3))
    packaged = model(to_tensor(img)[None])[0]
    assert packaged.tolist() == pytest.approx([studio[c] for c in predictor.classes], abs=0.05)


def test_onnx_export_gives_the_predictors_probabilities(run: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    exported = export_onnx(run, tmp_path / "model.onnx")
    assert json.loads(exported.sidecar.read_text())["input"]["dtype"] == "uint8"
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    _, pixels, predictor = val_pixels(run)
    got = session.run(None, {"images": pixels.numpy()})[0]
    assert np.allclose(got, predictor.probabilities(pixels).numpy(), atol=1e-5)
    for shape in [(1, 3, 24, 24), (3, 3, 40, 31), (1, 3, 17, 90)]:  # any batch, any height and width
        out = session.run(None, {"images": np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)})[0]
        assert out.shape == (shape[0], 3) and np.allclose(out.sum(1), 1, atol=1e-5)
    # A real non-square picture: the file answers as the studio does, which resizes with PIL.
    img = Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).resize((60, 36), Image.Resampling.BICUBIC)
    studio = dict(predictor.predict_image(img, top_k=3))
    packaged = session.run(None, {"images": to_tensor(img)[None].numpy()})[0][0]
    assert packaged.tolist() == pytest.approx([studio[c] for c in predictor.classes], abs=0.05)
    script = export_torchscript(run, tmp_path / "model.pt")
    odd = torch.randint(0, 256, (2, 3, 41, 29), dtype=torch.uint8)
    same = load_script(script.path)(odd).numpy()
    assert np.allclose(session.run(None, {"images": odd.numpy()})[0], same, atol=1e-4)


def test_onnx_export_without_onnx_says_how_to_install(run: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ExportError, match="pip install"):
        export_onnx(run, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


# Lite0 is the bundled backbone and runs by default; a second family (hard-swish, torchvision's
# squeeze-excitation) costs another ~15 s of ONNX translation, so it runs with `-m slow`.
@pytest.mark.parametrize("arch", ["efficientnet_lite0", "efficientnet_lite0:stages",
                                  pytest.param("mobilenet_v3_small", marks=pytest.mark.slow)])
def test_backbone_exports_agree_with_the_predictor(arch: str, tmp_path: Path) -> None:
    """Backbones with same-padding computed per input, squeeze-excitation and hard-swish survive both exports."""
    ort = pytest.importorskip("onnxruntime")
    from studio.core.checkpoint import make_checkpoint
    from studio.core.config import RunConfig
    from studio.core.models import build_model

    cfg = RunConfig()
    cfg.model.arch, _, features = arch.partition(":")
    cfg.model.image_size, cfg.model.features = 32, features or "final"
    torch.manual_seed(0)
    model = build_model(cfg.model, 4, load_weights=False)
    # Random weights with untouched BatchNorm statistics answer the same for every image; calibrated
    # statistics and a louder head make the probabilities differ, so agreeing on them means something.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    with torch.no_grad():
        model.train()
        model(torch.randn(16, 3, 32, 32))
        model.head[-1].weight.mul_(20)
    data = make_checkpoint(model=model, config=cfg, classes=list("abcd"), mean=(0.5,) * 3, std=(0.25,) * 3,
                           metrics={})
    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    expected = Predictor(data).probabilities(pixels)
    assert expected.max() > 0.4 and not torch.allclose(expected[0], expected[1], atol=1e-3)
    script = load_script(export_torchscript(data, tmp_path / "m.pt").path)
    assert torch.allclose(script(pixels), expected, atol=1e-5)
    onnx_path = export_onnx(data, tmp_path).path
    assert onnx_path == tmp_path / "model.onnx"  # --out a folder: the default name inside it
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    # ONNX Runtime sums in another order than PyTorch, so the two float32 answers differ by float32
    # rounding compounded over the network's depth (up to ~5e-5 on Lite0 with this loud head): a fixed
    # 1e-5 fails by chance. The exact answer is computed in float64 instead, and the export must be as
    # close to it as PyTorch's own float32 is (within a small factor, with a floor at float32's scale).
    exact = _float64_probabilities(data, pixels)
    torch_error = (expected.double() - exact).abs().max().item()
    answer = torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0]).double()
    onnx_error = (answer - exact).abs().max().item()
    assert onnx_error <= max(4 * torch_error, 2e-6), (onnx_error, torch_error)
    assert onnx_error < 1e-4
    program = torch.export.load(str(export_pt2(data, tmp_path / "m.pt2").path)).module()
    assert torch.allclose(program(pixels), expected, atol=1e-5)  # the same torch kernels: tight
    # Pictures of another size: both files resize inside, in the same way up to rounding, which this loud
    # head magnifies (the studio's own resizing is compared on a trained model in the tests above).
    smooth = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (5, 6, 3), dtype=np.uint8))
              .resize((40, 48), Image.Resampling.BICUBIC) for i in range(2)]
    other = torch.stack([to_tensor(img) for img in smooth])
    onnx_other = torch.from_numpy(session.run(None, {"images": other.numpy()})[0])
    assert torch.allclose(onnx_other, script(other), atol=0.05)
    assert (onnx_other.argmax(1) == script(other).argmax(1)).all()


def _float64_probabilities(data: dict, pixels: torch.Tensor) -> torch.Tensor:
    """The checkpoint's answer computed in float64: the reference both float32 paths are measured against."""
    pre = data["preprocessing"]
    model = Predictor(data).model.double().eval()
    mean = torch.tensor(pre["mean"], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(pre["std"], dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.softmax(model((pixels.double() / 255 - mean) / std), dim=1)


def test_report_written_by_two_threads_keeps_both_parts(run: Path, tmp_path: Path) -> None:
    """The trainer and the Evaluate page write report.md at once: no crash, no temp file, both parts kept."""
    import threading

    from studio.core.runfiles import read_history, split_counts, write_report

    copy = Path(shutil.copytree(run, tmp_path / run.name))
    evaluation = evaluate_run(copy, "val")
    config = json.loads((copy / "config.json").read_text())
    result = {"status": "finished", "epochs_done": 3, "seconds": 1.0, "best_val_acc": 0.5, "best_epoch": 2}
    counts = split_counts(read_split(copy), evaluation.classes)
    errors: list[BaseException] = []

    def repeat(write) -> None:
        try:
            for _ in range(12):
                write()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    writers = [
        threading.Thread(target=repeat, args=(lambda: write_report(
            copy, config=config, classes=evaluation.classes, counts=counts, history=read_history(copy),
            result=result, notes=[]),)),
        threading.Thread(target=repeat, args=(lambda: write_evaluation(evaluation, copy),)),
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so an unguarded write would collide
    try:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    write_report(copy, config=config, classes=evaluation.classes, counts=counts, history=read_history(copy),
                 result=result, notes=["written last"])
    text = (copy / "report.md").read_text(encoding="utf-8")
    assert "written last" in text
    assert "## History" in text and text.count("## Evaluation") == 1
    assert not [p.name for p in copy.iterdir() if p.name.endswith(".tmp")]
