"""The window in a domain expert's words: layers as stages and blocks, PyTorch names only on request."""

from __future__ import annotations

import re

import pytest
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


def test_learning_rate_axis_has_no_offset_label() -> None:
    from matplotlib.figure import Figure

    from studio.ui.widgets.charts import draw_training

    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_acc": 0.5, "val_acc": 0.4,
             "lr": lr} for e, lr in ((1, 3e-4), (2, 2e-4), (3, 1e-4))]
    figure = Figure()
    info = draw_training([("run", rows)], "", 3, figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()
    ax_lr = figure.axes[2]
    assert ax_lr.yaxis.get_offset_text().get_text() == ""
    assert ax_lr.get_title() == "Learning rate (× 10⁻⁴)"
    assert max(ax_lr.lines[0].get_ydata()) == pytest.approx(3.0)  # plotted in the title's unit
    assert info["points"][(0, "lr")][0][1] == pytest.approx(3e-4)  # the data itself is unchanged


def test_cpu_advice_does_not_promise_speed_the_second_stage_lacks() -> None:
    from types import SimpleNamespace

    from studio.ui.panes.model_pane import recommendation

    report = SimpleNamespace(classes=["a", "b"], counts=lambda: {"a": 400, "b": 300})
    advice = recommendation(report, gpu=False)
    assert "fastest" not in advice and "Only the new last layer" in advice and "slow" in advice


def test_help_menu_guide_glossary_project_folder_and_about(window, qtbot) -> None:
    help_menu = window.help_menu
    titles = [a.text() for a in help_menu.menu.actions() if a.text()]
    assert any("Guide" in t for t in titles) and any("Glossary" in t.replace("&", "") for t in titles)
    help_menu.guide_action.trigger()
    guide = help_menu.windows["Guide"].text()
    assert len([line for line in guide.splitlines() if line.strip()]) >= 10
    for page in ("Data", "Model", "Augment", "Train", "Evaluate", "Predict", "Inspect"):
        assert page in guide
    help_menu.glossary_action.trigger()
    glossary = help_menu.windows["Glossary"].text()
    for term in ("Epoch", "Validation", "Test", "Augmentation", "Learning rate", "Confusion matrix", "Precision",
                 "Recall", "Grad-CAM", "Pretrained"):
        assert term in glossary
    opened = []
    help_menu.open_url = opened.append
    help_menu.folder_action.trigger()
    assert opened and opened[0].toLocalFile() == str(window.state.project_dir)
    help_menu.about_action.trigger()
    about = help_menu.windows["About"].text()
    assert "torch" in about and "PySide6" in about and "Computing device" in about
    for win in help_menu.windows.values():
        win.close()


def _controls_without_tooltip(window, kinds) -> list[str]:
    from PySide6.QtWidgets import QTabBar

    missing = []
    for pane in window.panes:
        for kind in kinds:
            for widget in pane.findChildren(kind):
                if widget.objectName().startswith("qt_") or isinstance(widget.parent(), QTabBar):
                    continue  # Qt's own parts: a spin box's editor, a table's corner, a tab bar's scroll arrows
                if not widget.toolTip().strip():
                    label = widget.text() if hasattr(widget, "text") and callable(widget.text) else ""
                    missing.append(f"{type(pane).__name__}: {type(widget).__name__} {label!r}")
    return missing


def test_every_button_switch_slider_and_text_field_says_what_it_does(window) -> None:
    from PySide6.QtWidgets import QAbstractButton, QLineEdit, QSlider

    assert _controls_without_tooltip(window, (QAbstractButton, QSlider, QLineEdit)) == []


def test_device_and_advanced_settings_reach_the_config(window, qtbot) -> None:
    from studio.core.devices import device_choices

    options = window.panes[3].options
    keys = [options.device_combo.itemData(i) for i in range(options.device_combo.count())]
    assert keys == [key for key, _ in device_choices()] and keys[:2] == ["auto", "cpu"]
    assert "bfloat16" in options.device_combo.itemText(1) or "32-bit" in options.device_combo.itemText(1)
    options.device_combo.setCurrentIndex(keys.index("cpu"))
    assert window.state.config.train.device == "cpu"
    assert not options.advanced.isVisibleTo(options)
    options.fold.setChecked(True)
    assert options.advanced.isVisibleTo(options)
    options.spins["backbone_lr_scale"].setValue(0.25)
    options.spins["label_smoothing"].setValue(0.1)
    options.spins["grad_clip"].setValue(2.0)
    train = window.state.config.train
    assert (train.backbone_lr_scale, train.label_smoothing, train.grad_clip) == (0.25, 0.1, 2.0)
    train.validate()
    window.state.update("train", weight_decay=0.02, warmup_epochs=3.0)  # elsewhere (a loaded recipe): shown here
    assert options.spins["weight_decay"].value() == 0.02 and options.spins["warmup_epochs"].value() == 3.0
