"""The command line as a user types it: outputs, exit codes, messages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main
from tests.conftest import make_colour_folder


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_table_json_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.hostile import make_hostile_folder

    root = tmp_path / "hostile"
    make_hostile_folder(root)
    code, out, _ = run_cli(capsys, "scan", str(root))
    assert code == 0
    assert "cats" in out and "dogs" in out and "truncated" in out.lower()
    assert "Advice: Few images" in out  # the same advice the Model pane gives, from core
    code, out, _ = run_cli(capsys, "scan", str(root), "--json")
    report = json.loads(out)
    assert {"cats", "dogs"} <= set(report["classes"])
    assert any(not r["ok"] for r in report["records"])

    one = make_colour_folder(tmp_path / "one", classes={"red": (200, 0, 0)})
    assert run_cli(capsys, "scan", str(one))[0] == 1
    code, _, err = run_cli(capsys, "scan", str(tmp_path / "nope"))
    assert code == 1 and "nope" in err and "Traceback" not in err


def test_train_predict_runs_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_colour_folder(tmp_path / "data")
    project = tmp_path / "proj"
    code, out, err = run_cli(capsys, "train", "--data", str(data), "--project", str(project), "--epochs", "2",
                             "--image-size", "24", "--width", "8", "--batch-size", "8", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "best.pt").is_file()

    csv_path = tmp_path / "preds.csv"
    code, out, _ = run_cli(capsys, "predict", "--model", str(run_dir), str(data / "red"),
                           str(tmp_path / "missing.png"), "--top-k", "2", "--csv", str(csv_path))
    assert code == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 13
    assert rows[-1]["problem"] and not rows[-1]["predicted"]
    assert {r["predicted"] for r in rows[:-1]} <= {"red", "green", "blue"}

    code, out, _ = run_cli(capsys, "runs", "--project", str(project))
    assert code == 0 and run_dir.name in out and "finished" in out
    code, out, _ = run_cli(capsys, "runs", "--project", str(project), "--images", run_dir.name, "--split", "val",
                           "--json")
    val = json.loads(out)
    assert val and all(r["split"] == "val" for r in val)

    # A run extended by resume: ask for more epochs by editing nothing but resuming a stopped run.
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "no-such-run"))
    assert code == 1 and "nothing to resume" in err


def test_bad_options_name_the_option_and_valid_values(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "studio.cli", "train", "--data", str(tmp_path), "--arch", "vgg99"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--arch" in out.stderr and "resnet18" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "studio.cli", "train", "--data", str(tmp_path), "--lr", "-1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "train.lr" in out.stderr and "Traceback" not in out.stderr


def test_offline_pretrained_message_from_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import studio.core.weights as weights

    monkeypatch.setattr(weights, "host_reachable", lambda *a, **k: False)
    data = make_colour_folder(tmp_path / "data")
    code, _, err = run_cli(capsys, "train", "--data", str(data), "--project", str(tmp_path / "p"), "--arch",
                           "resnet18", "--pretrained", "imagenet", "--epochs", "1", "--image-size", "32")
    assert code == 1
    assert "resnet18-f37072fd.pth" in err and "--pretrained" in err and "Traceback" not in err


def test_torchrun_two_processes_write_one_run(tmp_path: Path) -> None:
    """The same `studio train` under torchrun: DDP over Gloo on the CPU, only rank 0 writes."""
    data = make_colour_folder(tmp_path / "data")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "studio.cli", "train",
           "--data", str(data), "--project", str(tmp_path / "p"), "--epochs", "2", "--image-size", "24",
           "--width", "8", "--batch-size", "8", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    runs = list((tmp_path / "p" / "runs").iterdir())
    assert len(runs) == 1
    assert (runs[0] / "best.pt").is_file()
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["epochs_done"] == 2 and summary["status"] == "finished"
    assert out.stdout.count("\"run_dir\"") == 1  # one voice, not one per rank
