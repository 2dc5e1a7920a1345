"""Model and Augment panes: live model size, readable errors, augmentation presets and previews."""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Qt

from studio.core import weights
from studio.core.models import build_model, count_parameters
from tests.conftest import make_colour_folder
from tests.ui.conftest import RUN_TIMEOUT_MS, choose_tiny_model, load_folder, set_recipe, start_run, wait_idle


def _wait_summary(pane, qtbot, text: str) -> None:
    qtbot.waitUntil(lambda: text in pane.params_label.text(), timeout=RUN_TIMEOUT_MS)


def _parameters(window, classes: int = 2) -> str:
    """What the engine counts for the config the pane edited, as the pane should show it."""
    model = build_model(copy.deepcopy(window.state.config.model), classes, load_weights=False)
    return f"{count_parameters(model)[0]:,} parameters"


def test_model_pane_counts_parameters_and_lists_layers_live(window, qtbot) -> None:
    pane = window.panes[1]
    choose_tiny_model(window, image_size=24)
    # 2 blocks of width 8: conv 3·8·3·3 + bn 16, conv 8·16·3·3 + bn 32, head 16·2 + 2 (two classes before a scan)
    assert _parameters(window) == "1,450 parameters"
    _wait_summary(pane, qtbot, "1,450 parameters")
    pane.torch_names.setChecked(True)  # the PyTorch table: names, types and shapes
    shapes = {pane.layer_table.item(i, 0).text(): pane.layer_table.item(i, 2).text()
              for i in range(pane.layer_table.rowCount())}
    assert shapes["block1.conv"] == "8 × 24 × 24" and shapes["block2.pool"] == "16 × 6 × 6"
    assert "Layers for 24 × 24 px" in pane.layers_heading.text()

    pane.width_spin.setValue(16)
    assert window.state.config.model.width == 16
    _wait_summary(pane, qtbot, _parameters(window))

    pane.blocks_spin.setValue(6)  # 24 px cannot be halved six times
    qtbot.waitUntil(lambda: pane.build_status.level == "error", timeout=RUN_TIMEOUT_MS)
    assert "too small" in pane.build_status.text() and "Traceback" not in pane.build_status.text()
    pane.blocks_spin.setValue(2)
    qtbot.waitUntil(lambda: pane.build_status.level == "", timeout=RUN_TIMEOUT_MS)


def test_backbone_choice_sets_its_defaults_and_explains_them(window, qtbot) -> None:
    pane = window.panes[1]
    pane.arch_combo.setCurrentIndex(pane.arch_combo.findData("efficientnet_lite0"))
    model = window.state.config.model
    assert (model.pretrained, model.mode, model.image_size) == ("imagenet", "two-stage", 224)
    assert pane.mode_combo.isEnabled() and not pane.custom_box.isVisible()
    assert "first" in pane.mode_hint.text().lower() and "ImageNet" in pane.weights_hint.text()
    qtbot.waitUntil(lambda: "ready" in pane.weights_status.text(), timeout=RUN_TIMEOUT_MS)  # bundled: offline
    _wait_summary(pane, qtbot, "parameters")
    assert "first stage" in pane.learn_label.text()

    pane.mode_combo.setCurrentIndex(pane.mode_combo.findData("head"))
    assert window.state.config.model.mode == "head"
    assert not pane.features_combo.isHidden()  # Lite0 can read every stage
    pane.features_combo.setCurrentIndex(pane.features_combo.findData("stages"))
    assert window.state.config.model.features == "stages"
    _wait_summary(pane, qtbot, _parameters(window))  # 1568 stage statistics, normalised, feed the new layer
    pane.weights_combo.setCurrentIndex(pane.weights_combo.findData("none"))
    assert window.state.config.model.mode == "full" and not pane.mode_combo.isEnabled()
    assert "Choose a data folder" in pane.advice.text()
    pane.arch_combo.setCurrentIndex(pane.arch_combo.findData("custom"))
    assert window.state.config.model.features == "final" and pane.features_combo.isHidden()


def test_missing_imagenet_weights_show_the_engines_message(window, qtbot, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(weights, "host_reachable", lambda *args, **kwargs: False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached download either
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    pane = window.panes[1]
    pane.arch_combo.setCurrentIndex(pane.arch_combo.findData("resnet18"))
    assert window.state.config.model.pretrained == "imagenet"
    qtbot.waitUntil(lambda: pane.weights_status.level == "error", timeout=RUN_TIMEOUT_MS)
    message = pane.weights_status.text()
    assert "not on this computer" in message and "resnet18" in message.lower()
    assert "Traceback" not in message

    # Training anyway ends in the same words on the Train pane, not in a stack trace.
    pane.size_spin.setValue(32)
    set_recipe(window, epochs=1)
    start_run(window, qtbot)
    wait_idle(window, qtbot)
    train = window.panes[3]
    assert train.banner.level == "error" and "not on this computer" in train.banner.text()
    assert "Traceback" not in train.banner.text()


def test_augment_presets_toggles_and_preview(window, qtbot, tmp_path: Path) -> None:
    pane = window.panes[2]
    assert pane.preview.image_count() == 0
    load_folder(window, qtbot, make_colour_folder(tmp_path / "data"))
    choose_tiny_model(window, image_size=32)
    window.show_pane(2)

    pane.preset_combo.setCurrentIndex(pane.preset_combo.findData("aerial"))
    augment = window.state.config.augment
    assert augment.preset == "aerial" and augment.vflip == 0.5 and augment.rotate90
    assert pane.checks["vflip"].isChecked() and pane.checks["rotate90"].isChecked()
    assert not pane.checks["grayscale"].isChecked()

    rows, versions = 4, 1 + 4
    qtbot.waitUntil(lambda: pane.preview.image_count() == rows * versions, timeout=RUN_TIMEOUT_MS)
    first = pane.preview.rows
    assert all(pixels.shape == (32, 32, 3) for _, images in first for pixels, _ in images)
    qtbot.mouseClick(pane.reroll_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.preview.rows is not first, timeout=RUN_TIMEOUT_MS)
    assert pane.preview.image_count() == rows * versions and pane.seed == 1

    pane.checks["grayscale"].setChecked(True)
    augment = window.state.config.augment
    assert augment.preset == "custom" and augment.grayscale == 0.1
    assert pane.preset_combo.currentData() == "custom"
    pane.strengths["grayscale"].setValue(40)
    assert window.state.config.augment.grayscale == 0.4
