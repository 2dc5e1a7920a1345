"""The window in a domain expert's words: layers as stages and blocks, PyTorch names only on request."""

from __future__ import annotations

import re

from PySide6.QtWidgets import QTableWidget

from tests.ui.conftest import RUN_TIMEOUT_MS

# Any of these in the default view means a PyTorch class name leaked into the window.
TORCH_WORDS = re.compile(r"Conv2d|BatchNorm|MBConv|Sequential|ReLU|MaxPool|Linear|Dropout|Flatten|AdaptiveAvg|"
                         r"SiLU|Swish|_blocks|_conv|_bn|backbone|head\b")


def _cells(table: QTableWidget) -> list[str]:
    return [table.item(r, c).text() for r in range(table.rowCount()) for c in range(table.columnCount())
            if table.item(r, c) is not None]


def test_layers_read_in_words_and_the_switch_shows_every_pytorch_name(window, qtbot) -> None:
    pane = window.panes[1]
    pane.arch_combo.setCurrentIndex(pane.arch_combo.findData("efficientnet_lite0"))
    qtbot.waitUntil(lambda: pane._last_summary is not None and pane._last_summary["config"].arch
                    == "efficientnet_lite0", timeout=RUN_TIMEOUT_MS)
    words = _cells(pane.layer_table)
    text = "\n".join(words)
    assert not TORCH_WORDS.search(text), TORCH_WORDS.search(text)
    assert "Stage 5" in text and "Block 3" in text
    assert "pattern detectors, each looking at 56 × 56 positions" in text  # Lite0 at 224 px: stage 2
    assert "Decision" in text

    pane.torch_names.setChecked(True)
    shown = "\n".join(_cells(pane.layer_table))
    kinds = {kind for _, kind, _, _ in pane._last_summary["rows"]}
    assert {"MBConvBlock", "BatchNorm2d"} <= kinds
    assert all(kind in shown for kind in kinds)
    pane.torch_names.setChecked(False)
    assert "MBConvBlock" not in "\n".join(_cells(pane.layer_table))
