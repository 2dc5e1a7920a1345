"""Odd files never hang or crash scan and predict: pipes are refused unopened, GIFs are read or explained."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from studio.core.checkpoint import make_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.models import IMAGENET_MEAN, IMAGENET_STD, build_model

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "studio.cli", *args], capture_output=True, text=True, env=env,
                          timeout=90)


@pytest.mark.timeout(120)
def test_scan_and_predict_with_a_pipe_and_gifs_finish_and_explain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (data / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), colour).save(data / name / f"{i}.png")
    Image.new("RGB", (12, 12), (200, 30, 30)).convert("P").save(data / "red" / "still.gif")
    frames = [Image.new("RGB", (12, 12), c) for c in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(data / "red" / "moving.gif", save_all=True, append_images=frames[1:])
    os.mkfifo(data / "red" / "pipe.png")

    scan = _cli("scan", str(data))
    assert scan.returncode == 0, scan.stderr
    assert "named pipe" in scan.stdout and "animated GIF" in scan.stdout

    cfg = RunConfig()
    cfg.model.image_size, cfg.model.width, cfg.model.blocks = 16, 4, 2
    model = build_model(cfg.model, 2, load_weights=False)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(make_checkpoint(model=model, config=cfg, classes=["blue", "red"], mean=IMAGENET_MEAN,
                                    std=IMAGENET_STD, metrics={}), ckpt)
    out = tmp_path / "predictions.csv"
    pipe = data / "red" / "pipe.png"
    predict = _cli("predict", "--model", str(ckpt), str(data / "red"), str(pipe), "--csv", str(out))
    assert predict.returncode == 0, predict.stderr
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["still.gif"]["predicted"] in ("blue", "red") and not rows["still.gif"]["problem"]
    assert "animated GIF" in rows["moving.gif"]["problem"]
    assert "named pipe" in rows["pipe.png"]["problem"] and not rows["pipe.png"]["predicted"]
