"""How responsive the window stays while it trains: the longest gap between ticks of a 10 ms timer.

    python3 benchmarks/ui_responsiveness.py [--per-class 250] [--size 64] [--epochs 4] [--torch-threads N]

Opens the real window offscreen on a generated folder (the sample shapes), shows the
Train pane (so its plots and progress bar redraw), starts a run with the Start button and
records when a 10 ms `QTimer` on the UI thread actually fires, from the first batch to
the end of the run. A user feels a gap above ~100 ms as a stutter. This is a measurement,
not a test: the figure depends on the machine and on what else runs on it.

--torch-threads N overrides the window's policy (all cores but one) to compare with
torch's default of one thread per core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from PySide6.QtCore import QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from qt_driving import pump, wait_until  # noqa: E402

from studio.core.sample import make_sample_dataset  # noqa: E402
from studio.ui.app import make_app, take_over_garbage_collection  # noqa: E402
from studio.ui.main_window import StudioWindow  # noqa: E402
from studio.ui.state import QtStudioState  # noqa: E402
from studio.ui.workers import live_workers, training_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=250, help="images per class (4 classes)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--torch-threads", type=int, default=0, help="0: the window's own policy")
    args = parser.parse_args(argv)
    if args.torch_threads:
        os.environ["STUDIO_TORCH_THREADS"] = str(args.torch_threads)
    scratch = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    data = make_sample_dataset(scratch / "data", per_class=args.per_class, size=args.size)

    make_app()
    state = QtStudioState(project_dir=scratch / "project")
    window = StudioWindow(state, settings=QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1280, 800)
    collector = take_over_garbage_collection()  # as run_app does
    window.show()
    state.set_folder(data)
    wait_until(lambda: state.report is not None)
    pump(500)
    wait_until(lambda: live_workers() == 0)
    state.update("model", image_size=args.size)
    state.update("train", epochs=args.epochs, batch_size=args.batch_size)
    window.show_pane(3)
    pane = window.panes[3]
    pump(500)
    wait_until(lambda: live_workers() == 0)

    ticks: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    batches = {"n": 0}
    QTest.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
    pane.worker.batch.connect(lambda _info: batches.__setitem__("n", batches["n"] + 1))
    wait_until(lambda: batches["n"] > 0)  # preparation (decoding) is measured separately below
    timer.start()
    started = time.perf_counter()
    wait_until(lambda: not state.running)
    elapsed = time.perf_counter() - started
    timer.stop()
    window.close()
    collector.stop()

    gaps = sorted((b - a) * 1000 for a, b in zip(ticks, ticks[1:]))
    p = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))]  # noqa: E731
    epochs = [row["seconds"] for row in pane.live]
    print(f"images: {4 * args.per_class} at {args.size} px, {args.epochs} epochs, batch {args.batch_size}, "
          f"torch threads {args.torch_threads or training_threads()} of {os.cpu_count()} cores")
    print(f"training: {elapsed:.1f} s measured, epochs took {', '.join(f'{s:.1f}' for s in epochs)} s, "
          f"{batches['n']} batch signals, {pane.plot.draw_count} plot draws")
    print(f"10 ms timer: {len(ticks)} ticks; gap max {gaps[-1]:.1f} ms, p99 {p(0.99):.1f} ms, "
          f"p90 {p(0.90):.1f} ms, median {statistics.median(gaps):.1f} ms")
    print("target: max gap under 100 ms —", "met" if gaps[-1] < 100 else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
