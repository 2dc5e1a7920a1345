"""Screenshots of every pane of the window with real data, as a user at 1280×800 would see them.

    python3 benchmarks/screenshots.py [OUT_DIR]      (default /tmp/studio-shots)

Opens the window offscreen on the built-in sample data set, visits each pane once its
background work has arrived, trains two epochs and saves one PNG per view. Nothing is
written outside OUT_DIR and a temporary project folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from qt_driving import pump, settle, wait_until  # noqa: E402

from studio.core.config import AugmentConfig  # noqa: E402
from studio.core.sample import make_sample_dataset  # noqa: E402
from studio.ui.app import make_app  # noqa: E402
from studio.ui.main_window import StudioWindow  # noqa: E402
from studio.ui.state import QtStudioState  # noqa: E402
from studio.ui.workers import live_workers  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="/tmp/studio-shots")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--photos", action="store_true",
                        help="crops of real photographs in class folders instead of the built-in sample")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="studio-shots-"))

    make_app()
    state = QtStudioState(project_dir=scratch / "project")
    window = StudioWindow(state, settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1280, 800)
    window.show()
    shots: list[Path] = []

    def shoot(name: str) -> None:
        path = out / f"{len(shots) + 1:02d}-{name}.png"
        window.grab().save(str(path))
        shots.append(path)

    shoot("welcome")
    if args.photos:
        from photo_classes import write_photo_classes

        state.set_folder(write_photo_classes(scratch / "photos")[0])
    else:
        state.set_folder(make_sample_dataset())
    wait_until(lambda: state.report is not None)
    settle()
    shoot("data")

    window.show_pane(1)
    settle()
    shoot("model-custom")
    model_pane = window.panes[1]
    model_pane.arch_combo.setCurrentIndex(model_pane.arch_combo.findData("efficientnet_lite0"))
    settle()
    shoot("model-backbone")
    model_pane.arch_combo.setCurrentIndex(model_pane.arch_combo.findData("custom"))

    window.show_pane(2)
    state.replace("augment", AugmentConfig.from_preset("natural"))
    settle()
    shoot("augment")

    window.show_pane(3)
    state.update("train", epochs=args.epochs, batch_size=32)
    train_pane = window.panes[3]
    QTest.mouseClick(train_pane.start_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: train_pane.plot.points("train_loss"))
    shoot("train-running")
    QTest.mouseClick(train_pane.pause_button, Qt.MouseButton.LeftButton)
    pump(800)  # the run is paused, not finished: its worker stays alive
    shoot("train-paused")
    QTest.mouseClick(train_pane.pause_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: not state.running and live_workers() == 0)
    settle()
    shoot("train-finished")
    train_pane.options.fold.setChecked(True)
    settle()
    shoot("train-advanced")
    train_pane.options.fold.setChecked(False)

    # A second run with another learning rate, then both selected: the comparison view.
    state.update("train", lr=0.003)
    train_pane.recipe.name_edit.setText("faster learning rate")
    QTest.mouseClick(train_pane.start_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: not state.running and live_workers() == 0)
    train_pane.run_list.select_ids([run.id for run in train_pane.run_list.rows[:2]])
    settle()
    shoot("train-compare")

    # A folder with the files real users have: the unusable ones listed with their reasons.
    from tests.hostile import make_hostile_folder

    make_hostile_folder(scratch / "hostile")
    window.show_pane(0)
    state.set_folder(scratch / "hostile")
    wait_until(lambda: state.report is not None)
    settle()
    shoot("data-hostile")

    window.close()
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
