"""One image and what the model says about it: the picture, the answer, and the top classes as bars."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from studio.core.predict import UNFAMILIAR_MESSAGE, Prediction
from studio.ui.widgets.common import QtBanner, hint
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
        self.unfamiliar_banner = QtBanner(closable=False)
        side.addWidget(self.unfamiliar_banner)
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
        if p.unfamiliar:
            self._show_unfamiliar(p)
        else:
            self.unfamiliar_banner.clear()
            self.answer_label.setText(p.label)
            sure = f"{100 * p.confidence:.1f}% probability"
            if p.confidence < low_confidence:
                sure += (f" — ⚠ the model is unsure (below {100 * low_confidence:.0f}%): its first guess may well "
                         "be wrong, or the image shows none of the classes it knows.")
            if p.unfamiliar is None:
                sure += ("\nThis model was trained before the studio could tell whether an image is like its "
                         "training images; retrain it to get that check.")
            else:
                sure += f"\nThe image is like the training images.{_compared(p)}"
            self.sure_label.setText(sure)
        self.crop_hint.setText(f"The model sees the centre square of the picture, scaled to {image_size}×{image_size} "
                               "pixels (a picture that is not square has its sides faded). It always answers with "
                               "one of the classes it was trained on.")

    def _show_unfamiliar(self, p: Prediction) -> None:
        """Not a confident class: the warning first, the guess after it and in words that say it is a guess."""
        self.unfamiliar_banner.show_message(
            f"⚠ {UNFAMILIAR_MESSAGE}. This picture is unlike every image the model was trained on, so its "
            "answer means little: it can only name one of its own classes.", "warning")
        self.answer_label.setText("Not like the training images")
        self.sure_label.setText(
            f"Closest of its classes: {p.label} ({100 * p.confidence:.1f}%) — treat this as a guess. "
            f"Unfamiliarity {p.score:.1f} (above 1 means unlike the training images).{_compared(p)} "
            "Inspect shows the training images it resembles most.")

    def set_picture(self, pixels: np.ndarray | None) -> None:
        self.image_view.set_array(pixels)


def _compared(p: Prediction) -> str:
    """Which eyes the verdict used: a reader who knows may weigh it differently."""
    from studio.core.trust import SPACE_WORDS

    return f" Compared with them by {SPACE_WORDS[p.compared_with]}." if p.compared_with in SPACE_WORDS else ""
