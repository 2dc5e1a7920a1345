"""Fixed costs paid once: light commands stay torch-free, a run decodes each image once, predict decodes in parallel."""

from __future__ import annotations

import json
import os
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
