"""Fixed costs paid once: light commands stay torch-free, a run decodes each image once, predict decodes in parallel."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_colour_folder

ROOT = Path(__file__).resolve().parent.parent

# Runs one CLI command with torch and torchvision made unimportable; every attempt is recorded, so a caller
# that swallows the ImportError (an optional import) is caught as well.
_BLOCKED_CLI = """
import importlib.abc, json, sys
attempts = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision'):
            attempts.append(name)
            raise ImportError(f'torch is blocked in this test: {name}')
        return None
sys.meta_path.insert(0, Block())
from studio import cli
try:
    rc = cli.main(sys.argv[1:])
except BaseException as exc:
    rc = repr(exc)
print('@@' + json.dumps({'rc': rc, 'attempts': attempts}))
"""


def _run_blocked(*argv: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _BLOCKED_CLI, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("@@")]
    assert lines, out.stdout + out.stderr
    return json.loads(lines[-1][2:])


def test_scan_runs_and_sample_import_no_torch(tmp_path: Path) -> None:
    """`studio scan`, `runs` and `sample` start without torch: a second instead of ten on a small CPU."""
    from studio.core.dataset import scan
    from studio.core.project import Project

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = make_colour_folder(tmp_path / "data", per_class=3, size=16)
    project = Project(tmp_path / "project")
    report = scan(data)
    ids = project.record_scan(report)
    _, folder = project.new_run_folder("r")
    run_id = project.add_run("r", folder, str(data), {"model": {"arch": "custom-cnn"}})
    project.record_split(run_id, [(image_id, "train") for image_id in ids.values()])

    for argv in (["scan", str(data)], ["scan", str(data), "--json"],
                 ["runs", "--project", str(tmp_path / "project")],
                 ["runs", "--project", str(tmp_path / "project"), "--images", folder.name],
                 ["sample", str(tmp_path / "sample"), "--per-class", "2"]):
        result = _run_blocked(*argv, env=env)
        assert result == {"rc": 0, "attempts": []}, (argv, result)
    assert len(list((tmp_path / "sample").rglob("*.png"))) == 8


def test_a_run_decodes_each_image_once_and_reports_bad_pixels(tmp_path: Path, monkeypatch) -> None:
    """The run's scan reads headers; its one decode fills the cache and finds a truncated file, named with why."""
    from studio.core import images
    from studio.core.project import Project
    from studio.core.train import Trainer
    from tests.test_train import tiny_config

    data = make_colour_folder(tmp_path / "data", per_class=8, size=16)
    whole = (data / "red" / "red_00.png").read_bytes()
    (data / "red" / "red_00.png").write_bytes(whole[: len(whole) // 2])  # header fine, pixels cut off

    decoded: dict[str, int] = {}
    real_decode = images._decode

    def counting(path, draft, *, decode=True):
        if decode:
            key = Path(path).relative_to(data).as_posix()
            decoded[key] = decoded.get(key, 0) + 1
        return real_decode(path, draft, decode=decode)

    monkeypatch.setattr(images, "_decode", counting)
    # The end-of-run evaluation is computed from the final pass over the cache: it decodes nothing either.
    result = Trainer(tiny_config(data, epochs=1), project=tmp_path / "p").run()

    assert result.status == "finished"
    assert len(decoded) == 24 and set(decoded.values()) == {1}, decoded
    split = (Path(result.run_dir) / "split.csv").read_text()
    assert "red_00.png" not in split
    report = (Path(result.run_dir) / "report.md").read_text()
    assert "red/red_00.png (corrupt or truncated image data)" in report
    with sqlite3.connect(Project(tmp_path / "p").db_path) as db:
        status = {path: (st, problem) for path, st, problem in db.execute("SELECT path, status, problem FROM images")}
    assert status["red/red_00.png"] == ("bad", "corrupt or truncated image data")


def test_predict_decodes_on_a_pool_in_input_order(tmp_path: Path, monkeypatch) -> None:
    """Parallel decoding gives exactly the serial answers, in the input order, bad files in their place."""
    import threading

    import torch

    from studio.core import predict
    from studio.core.checkpoint import make_checkpoint
    from studio.core.config import RunConfig
    from studio.core.models import build_model

    cfg = RunConfig()
    cfg.model.image_size, cfg.model.width = 16, 8
    torch.manual_seed(0)
    data = make_checkpoint(model=build_model(cfg.model, 3, load_weights=False), config=cfg,
                           classes=["blue", "green", "red"], mean=(0.5,) * 3, std=(0.25,) * 3, metrics={})
    folder = make_colour_folder(tmp_path / "data", per_class=9, size=20)
    (folder / "green" / "green_04.png").write_bytes(b"not an image at all")
    files = predict.expand_inputs([folder])

    threads: set[str] = set()
    real_load = predict.load_for_model

    def recording(path, size):
        threads.add(threading.current_thread().name)
        return real_load(path, size)

    monkeypatch.setattr(predict, "load_for_model", recording)
    predictor = predict.Predictor(data)
    serial = [(p.path, p.top, p.error) for p in predictor.predict_paths(files, top_k=2, batch_size=4, workers=1)]
    threads.clear()
    pooled = [(p.path, p.top, p.error) for p in predictor.predict_paths(files, top_k=2, batch_size=4, workers=3)]

    assert pooled == serial
    assert [path for path, _, _ in pooled] == [str(f) for f in files]
    assert [bool(error) for _, _, error in pooled].count(True) == 1
    assert len(threads) > 1 and all(name.startswith("studio-predict") for name in threads), threads
