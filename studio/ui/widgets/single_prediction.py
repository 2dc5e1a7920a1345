"""One image and what the model says about it: the picture, the answer, and the top classes as bars."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.core.predict import Prediction
from studio.ui.widgets.common import hint
from studio.ui.widgets.image_grid import QtImageView
from studio.ui.widgets.prob_bars import QtProbabilityBars


class QtSinglePrediction(QWidget):
    """The picture on the left with the centre square the model sees marked; the answer on the right.

    The picture arrives after the numbers (decoding a large photo for display takes longer than
    the prediction), so the two are set separately.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        self.image_view = QtImageView(minimum=200)
        self.image_view.show_crop = True
        row.addWidget(self.image_view, 3)
        side = QVBoxLayout()
        self.file_label = QLabel()
        self.file_label.setObjectName("path")
        self.file_label.setWordWrap(True)
        self.answer_label = QLabel()
        self.answer_label.setObjectName("title")
        self.answer_label.setWordWrap(True)
        self.sure_label = QLabel()
        self.sure_label.setWordWrap(True)
        self.bars = QtProbabilityBars()
        self.crop_hint = hint("")
        for w in (self.file_label, self.answer_label, self.sure_label, self.bars, self.crop_hint):
            side.addWidget(w)
        side.addStretch(1)
        row.addLayout(side, 2)

    def show_prediction(self, p: Prediction, low_confidence: float, image_size: int) -> None:
        self.bars.set_top(p.top, low_confidence)
        self.file_label.setText(p.path)
        self.answer_label.setText(p.label)
        sure = f"{100 * p.confidence:.1f}% probability"
        if p.confidence < low_confidence:
            sure += (f" — ⚠ the model is unsure (below {100 * low_confidence:.0f}%): its first guess may well be "
                     "wrong, or the image shows none of the classes it knows.")
        self.sure_label.setText(sure)
        self.crop_hint.setText(f"The model sees the centre square of the picture, scaled to {image_size}×{image_size} "
                               "pixels (a picture that is not square has its sides faded). It always answers with "
                               "one of the classes it was trained on.")

    def set_picture(self, pixels: np.ndarray | None) -> None:
        self.image_view.set_array(pixels)
