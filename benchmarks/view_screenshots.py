"""Screenshots of the Predict, Inspect and Evaluate views with a trained model on real images.

    python3 benchmarks/view_screenshots.py [OUT_DIR]      (default /tmp/studio-view-shots)

Trains a short run of the custom CNN on scikit-learn's handwritten digits at 32 px (written by
benchmarks/digits.py), then, in the window at 1280×800 (offscreen): drops digits, skimage.data
photographs and a broken file on Predict; evaluates the run; opens a confident mistake in
Inspect and looks at its maps, filters and Grad-CAM. Last, EfficientNet-Lite0 with its bundled
ImageNet weights inspects a photograph, for a backbone whose filters mean something. Nothing is
written outside OUT_DIR and a temporary folder.
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

import numpy as np  # noqa: E402
from digits import write_digits  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from qt_driving import settle, wait_until  # noqa: E402
from view_latency import drop  # noqa: E402

from studio.core.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.models import architecture_info, build_model  # noqa: E402
from studio.core.train import Trainer  # noqa: E402
from studio.ui.app import make_app  # noqa: E402
from studio.ui.main_window import PANES, StudioWindow  # noqa: E402
from studio.ui.panes.inspect_pane import CAM_TAB, FILTERS_TAB, MAPS_TAB, PATCHES_TAB  # noqa: E402
from studio.ui.state import QtStudioState  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def train_digits(scratch: Path, epochs: int) -> str:
    digits = write_digits(scratch / "digits", 32)
    cfg = RunConfig()
    cfg.name = "digits"
    cfg.data.root = str(digits)
    cfg.model.image_size, cfg.model.width, cfg.model.blocks = 32, 16, 3
    cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = epochs, 64, 3e-3
    result = Trainer(cfg, project=scratch / "project").run()
    print(f"digits run: {result.status}, best validation accuracy {result.best_val_acc:.3f}")
    return result.run_dir


def photographs(folder: Path) -> list[Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOS:
        pixels = getattr(data, name)()
        path = folder / f"{name}.jpg"
        Image.fromarray(np.asarray(pixels)).save(path, quality=92)
        paths.append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this file was cut off")
    return paths + [broken]


def lite0_checkpoint(folder: Path) -> Path:
    """Lite0 with its ImageNet backbone and an untrained 3-class head: meaningful filters and maps."""
    cfg = RunConfig()
    cfg.model.arch, cfg.model.pretrained, cfg.model.image_size = "efficientnet_lite0", "imagenet", 224
    info = architecture_info("efficientnet_lite0")
    model = build_model(cfg.model, 3, load_weights=True)
    data = make_checkpoint(model=model, config=cfg, classes=["cat", "coffee", "person"], mean=info.mean,
                           std=info.std, metrics={})
    path = folder / "lite0-imagenet.pt"
    save_checkpoint(data, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="/tmp/studio-view-shots")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="studio-view-shots-"))
    run = train_digits(scratch, args.epochs)
    photos = photographs(scratch / "photos")
    digits = sorted((scratch / "digits").rglob("*.png"))

    make_app()
    state = QtStudioState(project_dir=scratch / "project")
    titles = [title for title, _ in PANES]
    window = StudioWindow(state, settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1280, 800)
    window.show()
    evaluate, predict, inspect = (window.panes[titles.index(t)] for t in ("Evaluate", "Predict", "Inspect"))
    shots: list[Path] = []

    def shoot(name: str) -> None:
        settle()
        path = out / f"{len(shots) + 1:02d}-{name}.png"
        window.grab().save(str(path))
        shots.append(path)

    window.show_pane(titles.index("Predict"))
    shoot("predict-empty")
    drop(predict, [*photos, *digits[::180]])
    wait_until(lambda: predict._job is None and predict.table_model.rowCount() == len(photos) + 10)
    shoot("predict-table")
    predict.table.view.sortByColumn(3, Qt.SortOrder.AscendingOrder)
    shoot("predict-table-sorted")
    drop(predict, [digits[400]])
    wait_until(lambda: predict.single.image_view.image is not None)
    shoot("predict-single-digit")
    drop(predict, [photos[2]])
    wait_until(lambda: predict.single.image_view.image is not None)
    shoot("predict-single-photo")

    window.show_pane(titles.index("Evaluate"))
    wait_until(lambda: evaluate.evaluation is not None)
    shoot("evaluate")
    ev = evaluate.evaluation
    off = ev.confusion.copy()
    np.fill_diagonal(off, 0)
    true, pred = np.unravel_index(int(off.argmax()), off.shape)
    evaluate.matrix.click_cell(int(true), int(pred))
    shoot("evaluate-cell")
    evaluate.tabs.setCurrentIndex(0)  # the most confident mistakes
    shoot("evaluate-most-wrong")

    if evaluate.wrong_list.count() and evaluate.wrong_list.item(0).data(Qt.ItemDataRole.UserRole):
        evaluate.wrong_list.itemClicked.emit(evaluate.wrong_list.item(0))
    else:
        state.request_inspect(run, digits[0])
    wait_until(lambda: inspect.inspection is not None)
    shoot("inspect-maps-first-layer")
    inspect.select_layer("backbone.block2.relu")
    inspect.maps_view.sort_combo.setCurrentIndex(1)
    QTest.mouseClick(inspect.maps_view.grid, Qt.MouseButton.LeftButton,
                     pos=inspect.maps_view.grid.cell_rect(0).center())
    inspect.maps_view.overlay_check.setChecked(True)
    shoot("inspect-maps-sorted-overlay")
    inspect.tabs.setCurrentIndex(FILTERS_TAB)
    inspect.select_layer("backbone.block1.conv")
    shoot("inspect-filters-first")
    inspect.select_layer("backbone.block2.conv")
    shoot("inspect-filters-deeper")
    inspect.tabs.setCurrentIndex(CAM_TAB)
    wait_until(lambda: inspect._heat is not None)
    shoot("inspect-gradcam")
    # Layers in words, and what each channel of a block responds to in the run's training images.
    inspect.torch_names.setChecked(False)
    inspect.tabs.setCurrentIndex(PATCHES_TAB)
    inspect.select_layer("backbone.block2")
    wait_until(lambda: inspect.patches_view.result is not None)
    settle()
    shoot("inspect-channel-patches")
    inspect.tabs.setCurrentIndex(MAPS_TAB)

    state.request_inspect(str(lite0_checkpoint(scratch)), photos[0])
    wait_until(lambda: inspect.inspection is not None and inspect.image_path == str(photos[0]))
    inspect.torch_names.setChecked(False)
    inspect.tabs.setCurrentIndex(MAPS_TAB)
    shoot("inspect-lite0-maps")
    inspect.select_layer(inspect.inspection.cam_layer)
    shoot("inspect-lite0-wide-layer")
    inspect.tabs.setCurrentIndex(FILTERS_TAB)
    inspect._on_first_layer()
    shoot("inspect-lite0-filters")
    inspect.tabs.setCurrentIndex(CAM_TAB)
    wait_until(lambda: inspect._heat is not None)
    shoot("inspect-lite0-gradcam")

    window.close()
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
