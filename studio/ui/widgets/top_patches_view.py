"""What each channel of a layer responds to: its strongest training-image patches, and where they sit.

The view draws what `studio.core.top_patches` found (in a worker of the Inspect pane): one tile per
channel, a 3 × 3 mosaic of the patches that excite it most; a click shows that channel's best
image with the patch outlined, and the patches larger.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.top_patches import SAMPLE, ChannelPatches
from studio.ui.widgets.common import hint
from studio.ui.widgets.image_grid import QtImageGrid, QtImageView
from studio.ui.widgets.layer_views import QtPager

PAGE = 24
TILE = 30  # px per patch in a channel's mosaic


def _resize(patch: np.ndarray, side: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float()
    out = F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()


def mosaic(patches: list[np.ndarray], tile: int = TILE) -> np.ndarray:
    """Patches as a square mosaic (3 × 3 for nine), light grey where a slot is empty."""
    cols = max(1, math.ceil(math.sqrt(max(1, len(patches)))))
    canvas = np.full((cols * (tile + 1) - 1, cols * (tile + 1) - 1, 3), 235, dtype=np.uint8)
    for i, patch in enumerate(patches):
        r, c = divmod(i, cols)
        canvas[r * (tile + 1):r * (tile + 1) + tile, c * (tile + 1):c * (tile + 1) + tile] = _resize(patch, tile)
    return canvas


def outlined(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """uint8 H×W×3 with a bright frame around the patch, so "where" is visible."""
    out = image.copy()
    bottom, right = min(top + side, out.shape[0]) - 1, min(left + side, out.shape[1]) - 1
    colour = np.array((255, 40, 40), dtype=np.uint8)
    for y0, y1, x0, x1 in ((top, top + 1, left, right + 1), (bottom, bottom + 1, left, right + 1),
                           (top, bottom + 1, left, left + 1), (top, bottom + 1, right, right + 1)):
        out[y0:y1, x0:x1] = colour
    return out


class QtTopPatchesView(QWidget):
    """Per channel of the chosen layer, the training patches that excite it most; `requested` asks for a pass."""

    requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: ChannelPatches | None = None
        self.pixels: np.ndarray | None = None
        self.selected = -1
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        self.title = QLabel()
        self.title.setWordWrap(True)
        left.addWidget(self.title)
        top = QHBoxLayout()
        top.addStretch(1)
        self.find_button = QPushButton("Look again")
        self.find_button.setToolTip(f"One pass over up to {SAMPLE} of this run's training images; the answer is "
                                    "remembered in the run folder, so the next look at this layer is instant")
        self.find_button.clicked.connect(self.requested)
        top.addWidget(self.find_button)
        self.pager = QtPager("channels", PAGE)
        self.pager.changed.connect(self._show_page)
        top.addWidget(self.pager)
        left.addLayout(top)
        self.grid = QtImageGrid(gap=6, max_cell=200, framed=True)
        self.grid.clicked.connect(self._on_clicked)
        left.addWidget(self.grid, 1)
        left.addWidget(hint("Each tile is one channel: the nine patches of training images that made it respond "
                            "most. What they share is what the channel detects."))
        layout.addLayout(left, 3)
        side = QVBoxLayout()
        self.detail = QtImageView(smooth=True, minimum=220)
        self.detail.set_placeholder("Click a channel to see where in its best image it responds")
        side.addWidget(self.detail, 1)
        self.detail_label = QLabel()
        self.detail_label.setWordWrap(True)
        side.addWidget(self.detail_label)
        holder = QWidget()
        holder.setLayout(side)
        holder.setFixedWidth(260)
        layout.addWidget(holder)

    def show_waiting(self, text: str) -> None:
        self.result, self.pixels = None, None
        self.pager.reset(0)
        self.grid.clear()
        self.grid.set_placeholder(text)
        self.detail.set_array(None)
        self.detail_label.setText("")

    def show_result(self, result: ChannelPatches, pixels: np.ndarray, title: str) -> None:
        self.result, self.pixels = result, pixels
        self.title.setText(f"<b>{title}</b>: {result.channels} channels; each sees {result.side} × {result.side} "
                           f"pixels of the {result.image_size} px image. From {len(result.paths)} training images.")
        self.pager.reset(result.channels)
        self._show_page(0)
        self._on_clicked(0)

    def channel_patches(self, channel: int) -> list[np.ndarray]:
        if self.result is None or self.pixels is None:
            return []
        return self.result.patches(self.pixels, channel)

    @Slot(int)
    def _show_page(self, start: int) -> None:
        if self.result is None:
            return
        end = min(self.result.channels, start + PAGE)
        self.grid.set_images([mosaic(self.channel_patches(c)) for c in range(start, end)],
                             [str(c) for c in range(start, end)])

    @Slot(int)
    def _on_clicked(self, index: int) -> None:
        result = self.result
        if result is None or self.pixels is None:
            return
        channel = self.pager.start + index
        if not 0 <= channel < result.channels or result.value[channel, 0] == -np.inf:
            return
        self.selected = channel
        i = int(result.index[channel, 0])
        image = np.ascontiguousarray(np.asarray(self.pixels[i]).transpose(1, 2, 0))
        self.detail.set_array(outlined(image, int(result.top[channel, 0]), int(result.left[channel, 0]),
                                       result.side))
        name = Path(result.paths[i]).name if i < len(result.paths) else ""
        self.detail_label.setText(f"<b>Channel {channel}</b>: its strongest response over the sample is in "
                                  f"{name}, inside the red frame.")
