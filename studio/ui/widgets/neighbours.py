"""The training images an image is nearest to: what the model compared it with when it judged it.

Shown on the Inspect page. For an image the model calls unlike its training images, these are
the closest it has, and a person sees at a glance how far they are from the picture in hand.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from studio.core.images import ImageError, load_for_model
from studio.core.predict import UNFAMILIAR_MESSAGE, Prediction
from studio.core.trust import SPACE_WORDS
from studio.ui.widgets.common import QtBanner, array_to_pixmap, hint

THUMB = 96


def neighbour_thumbnails(root: str, neighbours: list) -> list[tuple[object, np.ndarray | None]]:
    """(neighbour, thumbnail or None) for each; runs in a worker, since it reads image files."""
    out = []
    for n in neighbours:
        thumb = None
        with contextlib.suppress(ImageError, OSError):
            thumb = np.asarray(load_for_model(Path(root, *n.path.split("/")), THUMB))
        out.append((n, thumb))
    return out


class QtNeighbours(QWidget):
    """A verdict line and a strip of the nearest training images with their class and similarity."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        self.banner = QtBanner(closable=False)
        col.addWidget(self.banner)
        self.caption = hint("")
        col.addWidget(self.caption)
        self.images = QListWidget()
        self.images.setViewMode(QListView.ViewMode.IconMode)
        self.images.setIconSize(QSize(THUMB, THUMB))
        self.images.setGridSize(QSize(THUMB + 40, THUMB + 48))
        self.images.setResizeMode(QListView.ResizeMode.Adjust)
        self.images.setMovement(QListView.Movement.Static)
        self.images.setWordWrap(True)
        self.images.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        col.addWidget(self.images, 1)

    def show_result(self, prediction: Prediction | None, space: str, rows: list[tuple[object, np.ndarray | None]],
                    root: str) -> None:
        self.images.clear()
        self.banner.clear()
        if prediction is None or prediction.unfamiliar is None:
            self.caption.setText("This model was trained before the studio compared images with the training "
                                 "images; retrain it to see which training images an image is nearest to.")
            return
        if prediction.unfamiliar:
            self.banner.show_message(f"⚠ {UNFAMILIAR_MESSAGE}. Even the nearest training images below are far "
                                     f"from it (unfamiliarity {prediction.score:.1f}; above 1 is unlike).", "warning")
        how = SPACE_WORDS.get(space, space)
        # No similarity figure under the pictures: features of very different images still point in
        # similar directions, so "96 % similar" next to a digit and a photograph would mislead.
        self.caption.setText(f"The training images most like this one, nearest first, compared by {how}. "
                             "Their class is written under each." if rows else
                             "The run kept no list of its training images to compare with.")
        for rank, (n, thumb) in enumerate(rows, 1):
            item = QListWidgetItem(f"{n.label}\nnearest #{rank}")
            if thumb is not None:
                item.setIcon(array_to_pixmap(thumb))
            item.setToolTip(f"{Path(root, *n.path.split('/'))}\nclass: {n.label}")
            self.images.addItem(item)

    def clear(self) -> None:
        self.images.clear()
        self.banner.clear()
        self.caption.setText("")
