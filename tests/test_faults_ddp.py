"""Several ranks under torchrun (Gloo on the CPU): one rank's failure ends them all, with its message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_colour_folder

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="torchrun drills run on POSIX")

# Rank 1 fails in its second epoch, while rank 0 goes on into the epoch's collectives.
_FAILING_RANK = """
import os, sys
import studio.core.loop as loop
real = loop.train_one_epoch
def train_one_epoch(*args, **kwargs):
    train_one_epoch.n += 1
    if os.environ.get("RANK") == "1" and train_one_epoch.n == 2:
        raise RuntimeError("rank 1 ran out of memory (drill)")
    return real(*args, **kwargs)
train_one_epoch.n = 0
loop.train_one_epoch = train_one_epoch
from studio.cli import main
sys.exit(main(sys.argv[1:]))
"""

_BROADCAST = """
import torch.distributed as tdist
from studio.core import distributed as dist
dist.setup()
print(f"rank {tdist.get_rank()} stops {dist.broadcast_flag(tdist.get_rank() == 0)}", flush=True)
dist.teardown()
"""


def _torchrun(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "STUDIO_COLLECTIVE_TIMEOUT_S": "150"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
               *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_failure_on_one_rank_ends_every_rank_with_its_message(tmp_path: Path) -> None:
    data = make_colour_folder(tmp_path / "data", per_class=8, size=16)
    script = tmp_path / "failing_rank.py"
    script.write_text(_FAILING_RANK)
    out = _torchrun(script, "train", "--data", str(data), "--project", str(tmp_path / "project"), "--epochs", "5",
                    "--image-size", "16", "--width", "4", "--blocks", "2", "--batch-size", "4", "--quiet",
                    "--device", "cpu", timeout=120)  # well before the collectives would time out
    assert out.returncode != 0
    assert "rank 1 ran out of memory (drill)" in out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rank_zero_decides_for_every_rank(tmp_path: Path) -> None:
    script = tmp_path / "broadcast.py"
    script.write_text(_BROADCAST)
    out = _torchrun(script, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 stops True", "rank 1 stops True"]
