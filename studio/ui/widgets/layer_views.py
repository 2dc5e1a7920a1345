"""The three looks inside a model for one image: a layer's feature maps, its learned filters, Grad-CAM.

Each view draws what `studio.core.inspect` hands out for an `Inspection` that is already built;
none runs the model itself except the Grad-CAM view, which asks its runner (a worker thread) for
the backward pass. Feature maps share the layer's one colour scale, so a dark map means "little
here" in every channel, not "least of this channel".
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from studio.core.inspect import FeatureMaps, Inspection, overlay_heatmap
from studio.ui.widgets.common import hint
from studio.ui.widgets.image_grid import QtColourBar, QtImageGrid, QtImageView, colourize

MAP_CMAP, FILTER_CMAP, CAM_CMAP = "viridis", "RdBu_r", "jet"
PAGE = 64


class QtPager(QWidget):
    """"◀  channels 1–64 of 512  ▶" for anything too wide to show at once."""

    changed = Signal(int)  # the new first index

    def __init__(self, what: str, page: int = PAGE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what, self.page, self.start, self.total = what, page, 0, 0
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.back = QPushButton("◀")
        self.forward = QPushButton("▶")
        self.back.setToolTip(f"The previous {what}")
        self.forward.setToolTip(f"The next {what}")
        self.label = QLabel()
        for b, step in ((self.back, -1), (self.forward, 1)):
            b.setFixedWidth(34)
            b.clicked.connect(lambda _=False, s=step: self.go(self.start + s * self.page))
        row.addWidget(self.back)
        row.addWidget(self.label)
        row.addWidget(self.forward)

    def reset(self, total: int) -> None:
        self.total, self.start = total, 0
        self._update()

    def go(self, start: int) -> None:
        start = max(0, min(start, max(0, self.total - 1) // self.page * self.page))
        if start != self.start:
            self.start = start
            self._update()
            self.changed.emit(start)

    def _update(self) -> None:
        end = min(self.total, self.start + self.page)
        self.label.setText(f"{self.what} {self.start + 1}–{end} of {self.total}" if self.total else "")
        self.back.setEnabled(self.start > 0)
        self.forward.setEnabled(end < self.total)
        self.back.setVisible(self.total > self.page)
        self.forward.setVisible(self.total > self.page)


class QtFeatureMapsView(QWidget):
    """All maps of one layer, a page at a time; a click enlarges one and can lay it over the image."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.inspection: Inspection | None = None
        self.layer = ""
        self.title_for = lambda name: name  # the pane shows "Block 2" in words, the module name otherwise
        self.maps: FeatureMaps | None = None
        self.selected = -1  # index into maps.maps (display order)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Order:"))
        self.sort_combo = QComboBox()
        self.sort_combo.addItem("as in the layer", "index")
        self.sort_combo.addItem("most active first", "mean")
        self.sort_combo.setToolTip("Most active first: channels sorted by their mean activation for this image")
        self.sort_combo.currentIndexChanged.connect(self._on_sort)
        controls.addWidget(self.sort_combo)
        controls.addStretch(1)
        self.pager = QtPager("channels")
        self.pager.changed.connect(self._show_page)
        controls.addWidget(self.pager)
        left.addLayout(controls)
        self.grid = QtImageGrid()
        self.grid.clicked.connect(self._on_clicked)
        left.addWidget(self.grid, 1)
        self.scale = QtColourBar(MAP_CMAP)
        left.addWidget(self.scale)
        layout.addLayout(left, 3)

        side = QVBoxLayout()
        self.detail = QtImageView(smooth=False, minimum=220)
        self.detail.set_placeholder("Click a map to see it larger")
        side.addWidget(self.detail, 1)
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        side.addWidget(self.detail_label)
        self.overlay_check = QCheckBox("Lay it over the image")
        self.overlay_check.setToolTip("Where in the picture this channel responds, stretched to its own range")
        self.overlay_check.toggled.connect(self._show_detail)
        side.addWidget(self.overlay_check)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 90)
        self.opacity.setValue(55)
        self.opacity.setToolTip("How strongly the map covers the image")
        self.opacity.valueChanged.connect(self._show_detail)
        opacity_row.addWidget(self.opacity, 1)
        side.addLayout(opacity_row)
        holder = QWidget()
        holder.setLayout(side)
        holder.setFixedWidth(260)
        layout.addWidget(holder)

    def show_layer(self, inspection: Inspection, layer: str) -> None:
        self.inspection, self.layer = inspection, layer
        info = inspection.layer(layer)
        if not info.has_maps:
            self.maps = None
            self.pager.reset(0)
            self.grid.clear()
            size = math.prod(info.output_shape)
            self.grid.set_placeholder(
                f"{self.title_for(layer)} gives {size:,} numbers, not images: it comes after the layers that keep "
                "a map of the picture. Choose a block higher in the list to see maps.")
            self.scale.hide()
            self._clear_detail()
            return
        self.scale.show()
        self.maps = inspection.maps(layer, sort=self.sort_combo.currentData())
        self.pager.reset(len(self.maps.maps))
        self.selected = 0  # the first map (the most active one, sorted so) is shown large at once
        self._show_page(0)
        self._on_clicked(0)
        self.scale.set_scale(self.maps.low, self.maps.high,
                             f"activation (one scale for all {len(self.maps.maps)} channels)")

    def _clear_detail(self) -> None:
        self.selected = -1
        self.detail.set_array(None)
        self.detail_label.setText("")
        self.overlay_check.setEnabled(False)

    @Slot(int)
    def _show_page(self, start: int) -> None:
        if self.maps is None:
            return
        chunk = self.maps.maps[start:start + PAGE]
        tiles = colourize(chunk, MAP_CMAP)
        self.grid.set_images(list(tiles), [str(int(c)) for c in self.maps.order[start:start + PAGE]])
        if start <= self.selected < start + PAGE:
            self.grid.select(self.selected - start)

    @Slot(int)
    def _on_sort(self, _index: int) -> None:
        if self.inspection is not None and self.layer:
            self.show_layer(self.inspection, self.layer)

    @Slot(int)
    def _on_clicked(self, index: int) -> None:
        self.selected = self.pager.start + index
        self.overlay_check.setEnabled(self.inspection is not None and self.inspection.pixels is not None)
        self._show_detail()

    @Slot()
    def _show_detail(self) -> None:
        if self.maps is None or not 0 <= self.selected < len(self.maps.maps) or self.inspection is None:
            return
        values = self.maps.maps[self.selected]
        channel = int(self.maps.order[self.selected])
        mean = float(self.maps.means[channel])
        h, w = values.shape
        if self.overlay_check.isChecked() and self.inspection.pixels is not None:
            peak = float(values.max())
            heat = values / peak if peak > 0 else values
            self.detail.set_array(overlay_heatmap(self.inspection.pixels, heat, self.opacity.value() / 100,
                                                  MAP_CMAP), smooth=True)
        else:
            self.detail.set_array(colourize(values, MAP_CMAP), smooth=False)
        self.detail_label.setText(f"<b>Channel {channel}</b> of {self.title_for(self.layer)}<br>{h}×{w} map, "
                                  f"mean activation "
                                  f"{mean:.3g}")


def filter_tiles(weights: np.ndarray) -> tuple[list[np.ndarray], str]:
    """Filters in 0..1 (zero at 0.5) → one picture each, and what the pictures show.

    A filter over the three colour channels is a small RGB patch: the colour and pattern it looks
    for. A deeper filter has one k×k kernel per input channel, drawn as a grid of kernels in a
    blue–white–red scale (white is zero).
    """
    out, inputs, k, _ = weights.shape
    if inputs == 3:
        tiles = [(np.transpose(w, (1, 2, 0)) * 255 + 0.5).astype(np.uint8) for w in weights]
        return tiles, f"{out} filters of {k}×{k} pixels over the red, green and blue channels"
    cols = math.ceil(math.sqrt(inputs))
    rows = math.ceil(inputs / cols)
    side_h, side_w = rows * (k + 1) - 1, cols * (k + 1) - 1
    tiles = []
    for w in weights:
        canvas = np.full((side_h, side_w), np.nan, dtype=np.float32)
        for i, kernel in enumerate(w):
            r, c = divmod(i, cols)
            canvas[r * (k + 1):r * (k + 1) + k, c * (k + 1):c * (k + 1) + k] = kernel
        rgb = colourize(np.nan_to_num(canvas, nan=0.5), FILTER_CMAP)
        rgb[np.isnan(canvas)] = 235  # the gaps between kernels: light grey, not "zero weight"
        tiles.append(rgb)
    return tiles, f"{out} filters, each {inputs} kernels of {k}×{k} (one per input channel, in a grid)"


class QtFiltersView(QWidget):
    """The learned weights of the selected convolution (or the first one inside the selected block)."""

    first_layer_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: list[np.ndarray] = []
        self.title_for = lambda name: name
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setWordWrap(True)
        top.addWidget(self.title, 1)
        self.first_button = QPushButton("Show the first layer")
        self.first_button.setToolTip("The filters that look at the pixels themselves: the easiest to read")
        self.first_button.clicked.connect(self.first_layer_requested)
        top.addWidget(self.first_button)
        self.pager = QtPager("filters")
        self.pager.changed.connect(self._show_page)
        top.addWidget(self.pager)
        layout.addLayout(top)
        self.grid = QtImageGrid(gap=8, max_cell=120, framed=True)
        layout.addWidget(self.grid, 1)
        self.legend = QtColourBar(FILTER_CMAP)
        layout.addWidget(self.legend)
        self.explanation = hint("Each square is one filter of the first layer, enlarged: the small colour and "
                                "light–dark pattern it looks for in the pixels, each scaled on its own.")
        layout.addWidget(self.explanation)

    def show_deeper(self) -> None:
        """Deeper filters are stacks of numbers that do not read as pictures: say where to look instead."""
        self.tiles = []
        self.pager.reset(0)
        self.grid.clear()
        self.title.setText("")
        self.legend.hide()
        self.explanation.hide()
        self.grid.set_placeholder("Filters deeper than the first layer combine the channels before them and do "
                                  "not read as pictures. The tab \u201cWhat a channel responds to\u201d shows "
                                  "what they detect in your training images; \u201cShow the first layer\u201d "
                                  "shows the filters that look at the pixels.")

    def show_layer(self, inspection: Inspection, layer: str) -> None:
        try:
            weights = inspection.filters(layer)
        except ValueError as exc:
            self.tiles = []
            self.pager.reset(0)
            self.grid.clear()
            self.grid.set_placeholder(f"{exc}. Choose a convolution layer (Conv2d) or a block that holds one.")
            self.title.setText("")
            self.legend.hide()
            return
        self.explanation.setVisible(weights.shape[1] == 3)
        self.tiles, what = filter_tiles(weights)
        self.title.setText(f"<b>{self.title_for(layer)}</b>: {what}")
        self.legend.setVisible(weights.shape[1] != 3)
        self.legend.set_scale(-1, 1, "weight: negative · zero · positive", "−", "+")
        self.pager.reset(len(self.tiles))
        self._show_page(0)

    @Slot(int)
    def _show_page(self, start: int) -> None:
        chunk = self.tiles[start:start + PAGE]
        self.grid.set_images(chunk, [str(i) for i in range(start, start + len(chunk))])


class QtCamView(QWidget):
    """Grad-CAM over the image: which parts pushed the model towards the chosen class."""

    class_changed = Signal(int)  # the class index the user wants the map for
    opacity_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Evidence for class:"))
        self.class_combo = QComboBox()
        self.class_combo.setMinimumContentsLength(24)
        self.class_combo.setToolTip("The class whose evidence is shown: the predicted one first, then the others "
                                    "by probability")
        self.class_combo.currentIndexChanged.connect(self._on_class)
        top.addWidget(self.class_combo)
        top.addSpacing(12)
        top.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 90)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(140)
        self.opacity.setToolTip("How strongly the heat map covers the image")
        self.opacity.valueChanged.connect(self.opacity_changed)
        top.addWidget(self.opacity)
        top.addStretch(1)
        layout.addLayout(top)
        self.view = QtImageView(minimum=240)
        self.view.set_placeholder("Computing…")
        layout.addWidget(self.view, 1)
        self.scale = QtColourBar(CAM_CMAP)
        self.scale.set_scale(0, 1, "how much each region raised this class's score", "none", "most")
        layout.addWidget(self.scale)
        self.note = hint("")
        layout.addWidget(self.note)
        self._syncing = False

    def set_classes(self, inspection: Inspection) -> None:
        self._syncing = True
        self.class_combo.clear()
        order = np.argsort(-inspection.probabilities, kind="stable")
        for rank, i in enumerate(order):
            mark = "  ← predicted" if rank == 0 else ""
            self.class_combo.addItem(f"{inspection.classes[i]} ({100 * inspection.probabilities[i]:.1f}%){mark}",
                                     int(i))
        self._syncing = False
        self.view.set_array(None)
        self.view.set_placeholder("Computing…")
        try:
            layer = inspection.cam_layer
        except ValueError as exc:
            self.note.setText(f"No class-activation map for this model: {exc}.")
            return
        self.note.setText(f"Grad-CAM at {layer}, the last layer that still keeps a map of the image. "
                          "Red: regions that raised the score of this class most. It shows where the model looked, "
                          "not whether it was right.")

    def current_class(self) -> int:
        data = self.class_combo.currentData()
        return int(data) if data is not None else -1

    def show_heat(self, inspection: Inspection, heat: np.ndarray) -> None:
        if inspection.pixels is None:
            self.view.set_array(colourize(heat, CAM_CMAP))
        else:
            self.view.set_array(overlay_heatmap(inspection.pixels, heat, self.opacity.value() / 100, CAM_CMAP))

    def show_error(self, message: str) -> None:
        self.view.set_array(None)
        self.view.set_placeholder(message)

    @Slot(int)
    def _on_class(self, _index: int) -> None:
        if not self._syncing and self.current_class() >= 0:
            self.class_changed.emit(self.current_class())
