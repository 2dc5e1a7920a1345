"""How long the user waits in the Predict and Inspect views, measured through the real widgets.

    python3 benchmarks/view_latency.py [--repeat 15]

- drop → top-k on screen: a JPEG photo (skimage's astronaut, 512×512) dropped on the Predict
  view as a file URL, until the probability bars have painted. Includes the drop handling, the
  worker thread, decoding, resizing, the forward pass and the repaint.
- layer switch: selecting another layer in the Inspect view's tree until the feature-map grid
  has painted, over every layer with maps.
- image → Inspect ready: an inspect request until the layer tree and first grid are drawn
  (one recorded pass over every module, in a worker).

For the custom CNN at 64 px and ResNet-18 at 224 px, with random weights (speed does not depend
on them). Targets: drop → top-k under 150 ms for ResNet-18, a layer switch under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from studio.core.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from studio.core.config import RunConfig  # noqa: E402
from studio.core.models import architecture_info, build_model  # noqa: E402
from studio.ui.app import make_app  # noqa: E402
from studio.ui.panes.inspect_pane import InspectPane  # noqa: E402
from studio.ui.panes.predict_pane import PredictPane  # noqa: E402
from studio.ui.state import QtStudioState  # noqa: E402

CLASSES = [f"class {i}" for i in range(10)]


class PaintClock(QObject):
    """Remembers when `widget` last painted: "on screen" means painted, not merely handed data."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.last = 0.0
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Paint:
            self.last = time.perf_counter()
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the view did not get there in time")
        QApplication.processEvents()
        time.sleep(0.0005)


def checkpoint(arch: str, size: int, folder: Path) -> Path:
    cfg = RunConfig()
    cfg.model.arch, cfg.model.image_size = arch, size
    torch.manual_seed(0)
    info = architecture_info(arch)
    data = make_checkpoint(model=build_model(cfg.model, len(CLASSES), load_weights=False), config=cfg,
                           classes=CLASSES, mean=info.mean, std=info.std, metrics={})
    path = folder / f"{arch}-{size}.pt"
    save_checkpoint(data, path)
    return path


def drop(widget: QWidget, paths: Path | Sequence[Path]) -> None:
    """Files dropped on `widget` as a file manager drops them: a drag entering, then the drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in ([paths] if isinstance(paths, Path) else paths)])
    rest = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, QDragEnterEvent(QPoint(30, 30), *rest))  # Qt 6.11 wants QPoint here
    QApplication.sendEvent(widget, QDropEvent(QPointF(30, 30), *rest))


def summary(label: str, times: list[float], target: float | None = None) -> str:
    median, worst = statistics.median(times), max(times)
    verdict = "" if target is None else ("  ok" if median < target else f"  OVER the {target:.0f} ms target")
    return f"  {label:<40} median {median:7.1f} ms   worst {worst:7.1f} ms   (n={len(times)}){verdict}"


def bench_predict(state: QtStudioState, photo: Path, repeat: int, target: float | None) -> None:
    pane = PredictPane(state)
    pane.resize(1110, 760)
    pane.show()
    clock = PaintClock(pane.single.bars)
    times = []
    done: list[float] = []
    pane.results_changed.connect(lambda: done.append(1))
    for i in range(repeat + 2):  # the first two load the model and warm up oneDNN's kernels
        done.clear()
        clock.last = 0.0
        start = time.perf_counter()
        drop(pane, photo)
        wait_until(lambda: done and clock.last > 0 and pane._job is None)
        if i >= 2:
            times.append((clock.last - start) * 1000)
    top = pane.single.bars.top[0]
    print(summary("drop → top-k painted", times, target) + f"   [{top[0]} {100 * top[1]:.1f}%]")
    pane.shutdown()
    pane.deleteLater()


def bench_inspect(state: QtStudioState, photo: Path, repeat: int) -> None:
    pane = InspectPane(state)
    pane.resize(1110, 760)
    pane.show()
    clock = PaintClock(pane.maps_view.grid)
    ready: list[float] = []
    pane.inspection_changed.connect(lambda: ready.append(time.perf_counter()))
    for i in range(3):
        ready.clear()
        start = time.perf_counter()
        state.request_inspect(state.current_run, photo)
        wait_until(lambda: ready and clock.last > ready[-1])
        if i == 2:
            print(summary("image → Inspect ready (maps painted)", [(clock.last - start) * 1000]))
    layers = [info.name for info in pane.inspection.layers if info.has_maps]
    times, worst_layer = [], ("", 0.0)
    for _ in range(max(1, repeat // 5)):
        for name in layers:
            if name == pane.layer:
                continue  # selecting the shown layer again changes nothing
            clock.last = 0.0
            start = time.perf_counter()
            pane.select_layer(name)
            wait_until(lambda: clock.last > 0)
            ms = (clock.last - start) * 1000
            times.append(ms)
            if ms > worst_layer[1]:
                worst_layer = (name, ms)
    print(summary(f"layer switch ({len(layers)} layers)", times, 50.0))
    shape = pane.inspection.layer(worst_layer[0]).output_shape
    print(f"  {'':<40} slowest: {worst_layer[0]} {shape}, {worst_layer[1]:.1f} ms")
    pane.shutdown()
    pane.deleteLater()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    make_app()
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = folder / "astronaut.jpg"
        Image.fromarray(data.astronaut()).save(photo, quality=90)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, Qt platform "
              f"{QApplication.platformName()}\n")
        for arch, size in (("custom", 64), ("resnet18", 224)):
            print(f"{arch} at {size} px")
            state = QtStudioState(project_dir=folder / "project")
            state.set_current_run(str(checkpoint(arch, size, folder)))
            bench_predict(state, photo, args.repeat, 150.0 if arch == "resnet18" else None)
            bench_inspect(state, photo, args.repeat)
            print()


if __name__ == "__main__":
    main()
