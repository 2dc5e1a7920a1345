"""What the Model page shows about a network before any training: its parts, its size, its starting weights.

Building even an untrained backbone takes a moment, and loading its starting weights longer, so
both run on worker threads (`describe_model`, `check_weights`); `fill_layer_table` draws the answer.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from studio.core.config import ModelConfig
from studio.core.errors import WeightsUnavailable
from studio.core.layer_words import layers_in_words
from studio.core.models import build_model, count_parameters, summarize
from studio.core.randomness import seeded_global
from studio.core.words import plain_number


def describe_model(cfg: ModelConfig, n_classes: int) -> dict:
    """Layer table and parameter counts for the config (runs on a worker thread; no weights are read).

    Built at a fixed seed under the process generator's lock: a run starting meanwhile must not
    have its first weights changed by this page drawing random numbers.
    """
    with seeded_global(0):
        model = build_model(cfg, n_classes, load_weights=False)
    first_stage = None
    if cfg.pretrained != "none" and cfg.mode == "two-stage":
        model.set_trainable("head")
        first_stage = count_parameters(model)[1]
        model.set_trainable("all")
    elif cfg.pretrained != "none":
        model.set_trainable(cfg.mode)
    total, trainable = count_parameters(model)
    rows = [(r.name.removeprefix("backbone."), r.kind, " × ".join(map(str, r.output_shape)), r.params)
            for r in summarize(model, cfg.image_size)]
    words = layers_in_words(model, cfg.image_size)
    return {"config": cfg, "rows": rows, "words": words, "total": total, "trainable": trainable,
            "first_stage": first_stage}


def check_weights(cfg: ModelConfig, n_classes: int) -> tuple[ModelConfig, str, str]:
    """Load the chosen starting weights once, as training will: (config, level, message)."""
    try:
        with seeded_global(0):
            model = build_model(cfg, n_classes, load_weights=True)
    except WeightsUnavailable as exc:
        return cfg, "error", str(exc)
    return cfg, "info", f"Starting weights ready: {model.weights_note}."


def fill_layer_table(table: QTableWidget, result: dict, torch_names: bool) -> None:
    """The layers in words (stages bold, blocks indented), or as PyTorch lists them behind the switch."""
    if torch_names:
        columns = ("Layer", "Type", "Output shape", "Parameters")
        cells = [(name, kind, shape, f"{params:,}" if params else "", False)
                 for name, kind, shape, params in result["rows"]]
    else:
        columns = ("Part", "What it does", "Numbers learned")
        cells = [(("" if row.is_stage or not row.stage else "    ") + row.title, row.text,
                  plain_number(row.params) if row.params else "", row.is_stage) for row in result["words"]]
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(columns)
    header = table.horizontalHeader()
    for col in range(len(columns)):
        header.setSectionResizeMode(col, header.ResizeMode.Stretch if col == (0 if len(columns) == 4 else 1)
                                    else header.ResizeMode.ResizeToContents)
    table.setRowCount(len(cells))
    for i, (*texts, bold) in enumerate(cells):
        for col, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            if col == len(texts) - 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(i, col, item)
