"""The two halves of the Inspect page's furniture: the image in hand and the tabs of views.

The page wires them to its model and its workers; keeping their construction here leaves the
page with what it does (which image, which layer, which answer) rather than how it is laid out.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from studio.ui.widgets.common import hint
from studio.ui.widgets.image_grid import QtImageView
from studio.ui.widgets.layer_views import QtCamView, QtFeatureMapsView, QtFiltersView
from studio.ui.widgets.neighbours import QtNeighbours
from studio.ui.widgets.top_patches_view import QtTopPatchesView

MAPS_TAB, FILTERS_TAB, CAM_TAB, PATCHES_TAB, NEAREST_TAB = range(5)


class QtImageInHand(QWidget):
    """The image being inspected, what the model says about it, and the two ways to pick another."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        top = QHBoxLayout(self)
        top.setContentsMargins(0, 0, 0, 0)
        self.image_view = QtImageView(smooth=True, minimum=96)
        self.image_view.setFixedSize(112, 112)
        self.image_view.set_placeholder("No image")
        top.addWidget(self.image_view)
        about = QVBoxLayout()
        self.answer_label = QLabel("Drop an image here")
        self.answer_label.setObjectName("big")
        self.answer_label.setWordWrap(True)
        self.file_label = hint("")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        about.addWidget(self.answer_label)
        about.addWidget(self.file_label)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open image…")
        self.open_button.setToolTip("Choose an image file to look inside the model with (you can also drop one "
                                    "anywhere on this page)")
        self.next_button = QPushButton("Next validation image")
        self.next_button.setToolTip("Step through the images this run was validated on")
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.next_button)
        about.addLayout(buttons)
        about.addStretch(1)
        top.addLayout(about, 1)


def answer_text(label: str, p: float, truth: str, unfamiliar: bool) -> str:
    """The one line over the image: the prediction, checked against the class folder when there is one."""
    if unfamiliar:
        return f"Not like the training images — closest class {label} ({100 * p:.1f}%), a guess"
    verdict = "" if not truth else (" ✓" if truth == label else f" — labelled {truth}")
    return f"Predicted: {label} ({100 * p:.1f}%){verdict}"


class QtInspectTabs(QTabWidget):
    """Feature maps, first-layer filters, Grad-CAM, top patches and nearest training images, in that order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.maps_view = QtFeatureMapsView()
        self.filters_view = QtFiltersView()
        self.cam_view = QtCamView()
        self.patches_view = QtTopPatchesView()
        self.neighbours = QtNeighbours()
        self.addTab(self.maps_view, "Feature maps")
        self.addTab(self.filters_view, "First-layer filters")
        self.addTab(self.cam_view, "Where it looks (Grad-CAM)")
        self.addTab(self.patches_view, "What a channel responds to")
        self.addTab(self.neighbours, "Nearest training images")
        self.setTabToolTip(MAPS_TAB, "How strongly each channel of the chosen layer responds, position by "
                           "position, to this image")
        self.setTabToolTip(FILTERS_TAB, "The first layer's filters: the small colour patterns the network "
                           "looks for in the pixels")
        self.setTabToolTip(CAM_TAB, "Which parts of this image raised the score of a class (Grad-CAM)")
        self.setTabToolTip(PATCHES_TAB, "For each channel of the chosen layer, the pieces of training images "
                           "that excite it most: what it has learned to detect")
