"""The Predict view's worker: `Predictor.predict_paths` off the UI thread, reported in bursts.

It calls the very generator `studio predict` calls, with the same batch size, so a file gets the
same probabilities in the window as on the command line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Signal

from studio.core.errors import ImageError
from studio.core.images import load_for_model, load_rgb
from studio.core.predict import Prediction, Predictor
from studio.ui.widgets.prediction_table import THUMB
from studio.ui.workers import SIGNAL_INTERVAL_S, _Worker

TOP_K = 5  # classes kept per image: bars of the single view, columns of the CSV
PREVIEW = 720  # longest side of the picture shown for a single image


def _thumbnail(path: str) -> np.ndarray | None:
    try:
        return np.asarray(load_for_model(path, THUMB))  # the centre square: what the model sees
    except ImageError:
        return None


def _preview(path: str) -> np.ndarray | None:
    try:
        image = load_rgb(path)
    except ImageError:
        return None
    image.thumbnail((PREVIEW, PREVIEW))
    return np.asarray(image)


class PredictWorker(_Worker):
    """Predicts `paths` in order; rows arrive in bursts at most every SIGNAL_INTERVAL_S.

    With `single`, the one prediction is sent before anything else is done (its picture follows),
    because that is the number the user is waiting for.
    """

    rows = Signal(int, list)  # serial, [(Prediction, thumbnail uint8 H×W×3 or None)]
    preview = Signal(int, str, object)  # serial, path, uint8 H×W×3

    def __init__(self, serial: int, predictor: Predictor, paths: Sequence[str], single: bool) -> None:
        super().__init__()
        self.serial, self.predictor, self.paths, self.single = serial, predictor, list(paths), single
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def work(self) -> None:
        pending: list[tuple[Prediction, np.ndarray | None]] = []
        last = 0.0
        for p in self.predictor.predict_paths(self.paths, top_k=TOP_K):
            if self._stop.is_set():
                return
            if self.single:
                self.rows.emit(self.serial, [(p, None)])
                if not p.error:
                    self.preview.emit(self.serial, p.path, _preview(p.path))
                continue
            pending.append((p, None if p.error else _thumbnail(p.path)))
            now = time.monotonic()
            if now - last >= SIGNAL_INTERVAL_S:
                self.rows.emit(self.serial, pending)
                pending, last = [], now
        if pending:
            self.rows.emit(self.serial, pending)
