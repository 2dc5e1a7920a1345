"""Every window control bound to a config field offers exactly that field's range or choices."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

from studio.core.config import field_spec


def test_every_bound_control_has_its_fields_range(window) -> None:
    # The split spins limit each other (together they must leave training images): start from an empty split.
    window.state.update("data", val_fraction=0.0, test_fraction=0.0)
    bound = [w for w in window.findChildren(QWidget) if w.property("config_field")]
    keys = {w.property("config_field") for w in bound}
    expected = {"data.val_fraction", "data.test_fraction", "model.arch", "model.mode", "model.image_size",
                "model.blocks", "model.width", "model.dropout", "model.kernel_size", "train.epochs", "train.lr",
                "train.batch_size", "train.optimizer", "train.schedule", "train.early_stopping", "train.imbalance",
                "augment.hflip", "augment.vflip", "augment.rotation", "augment.crop_scale", "augment.color_jitter",
                "augment.grayscale", "augment.erasing"}
    assert expected <= keys, expected - keys
    for widget in bound:
        key = widget.property("config_field")
        spec = field_spec(key)
        if isinstance(widget, QComboBox):
            items = {widget.itemData(i) for i in range(widget.count())}
            assert items == set(spec.setting.allowed()), key
        else:
            assert isinstance(widget, QAbstractSpinBox), key
            scale = widget.property("config_scale")
            below = 0 if spec.setting.auto is None else 1  # "Automatic" sits one step below the range
            assert (widget.minimum() + below) / scale == pytest.approx(spec.setting.low), key
            if below:
                assert widget.specialValueText() == "Automatic", key
            assert widget.maximum() / scale == pytest.approx(spec.setting.high), key
        assert widget.toolTip(), key
