"""Model: which network, where its weights come from, what of it learns; its size, layer by layer."""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.devices import pick_device
from studio.core.models import architecture_info, list_architectures
from studio.core.policies import arch_defaults, mode_for_weights, recommendation
from studio.core.words import plain_number
from studio.ui.state import QtStudioState
from studio.ui.widgets.bound import bind, bound_combo, bound_spin, label_for
from studio.ui.widgets.common import QtBanner, choice_combo, heading, hint, make_table
from studio.ui.widgets.model_summary import check_weights, describe_model, fill_layer_table
from studio.ui.workers import QtTaskRunner

WEIGHTS = (("imagenet", "ImageNet (pretrained)"), ("file", "From file…"), ("none", "None: random start"))
WEIGHTS_HINT = {
    "imagenet": "Starts from a network that already learned to see on 1.2 million photos (ImageNet).",
    "file": "Starts from a weights file you have, for example a model from an earlier project.",
    "none": "Starts from random weights: the network learns everything from your images alone.",
}
MODE_HINT = {
    "two-stage": "First only the new last layer learns for a few epochs, then every layer adjusts. A safe default.",
    "head": "The pretrained network stays as it is; only the new last layer learns. Fastest, good for few images.",
    "last-block": "The last block of the network adjusts too. A middle way between speed and accuracy.",
    "full": "Every layer learns. The most accurate with many images, and the slowest.",
}


class ModelPane(QWidget):
    """Architecture from the registry, weights source, transfer mode, custom-CNN shape, live size."""

    title = "Model"

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.choose_weights_dialog: Callable[[], str] = self._ask_weights_file
        self._gpu = pick_device("auto").type != "cpu"
        self._syncing = False
        self._checked: tuple[str, str] | None = None
        self._summary = QtTaskRunner("studio-summary", self)
        self._summary.result.connect(self._on_summary)
        self._summary.failed.connect(self._on_summary_failed)
        self._weights = QtTaskRunner("studio-weights", self)
        self._weights.result.connect(self._on_weights_checked)
        self._weights.failed.connect(self._on_weights_failed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._refresh_summary)
        self._build()
        state.config_changed.connect(self._on_config_changed)
        state.report_changed.connect(self._on_report_changed)
        self._on_report_changed()
        self._on_config_changed("model")

    # ------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.advice = QtBanner(closable=False)
        layout.addWidget(self.advice)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_form())
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(6, 0, 0, 0)
        self.params_label = QLabel()
        self.params_label.setObjectName("big")
        self.params_label.setWordWrap(True)
        rv.addWidget(self.params_label)
        self.learn_label = hint("")
        rv.addWidget(self.learn_label)
        self.build_status = QtBanner(closable=False)
        rv.addWidget(self.build_status)
        heading_row = QHBoxLayout()
        self.layers_heading = heading("Layers")
        heading_row.addWidget(self.layers_heading, 1)
        self.torch_names = QCheckBox("Show PyTorch names")
        self.torch_names.setToolTip("Show every layer under its programming name and type, as PyTorch lists it, "
                                    "with its output shape. For readers who know PyTorch; the words view says "
                                    "the same in plain terms.")
        self.torch_names.toggled.connect(self._fill_layers)
        heading_row.addWidget(self.torch_names)
        rv.addLayout(heading_row)
        self._last_summary: dict | None = None
        self.layer_table = make_table(("Part", "What it does", "Numbers learned"))
        self.layer_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.layer_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        rv.addWidget(self.layer_table, 1)
        split.addWidget(right)
        split.setSizes([470, 600])
        layout.addWidget(split, 1)

    def _build_form(self) -> QWidget:
        form_box = QWidget()
        form_box.setMinimumWidth(420)
        outer = QVBoxLayout(form_box)
        outer.setContentsMargins(0, 0, 6, 0)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.arch_combo = QComboBox()
        for name in list_architectures():
            info = architecture_info(name)
            self.arch_combo.addItem(info.title + ("  (weights included)" if info.bundled else ""), name)
        bind(self.arch_combo, "model.arch")
        self.arch_combo.currentIndexChanged.connect(self._on_arch_chosen)
        form.addRow(label_for("model.arch"), self.arch_combo)
        self.arch_hint = hint("")
        form.addRow("", self.arch_hint)

        self._build_weights_rows(form)

        self.mode_combo = bound_combo("model.mode")
        self.mode_combo.currentIndexChanged.connect(self._on_edited)
        form.addRow(label_for("model.mode"), self.mode_combo)
        self.mode_hint = hint("")
        form.addRow("", self.mode_hint)

        self.features_combo = bound_combo("model.features")
        self.features_combo.currentIndexChanged.connect(self._on_edited)
        form.addRow(label_for("model.features"), self.features_combo)
        self.features_hint = hint("The last layer sees what is in the picture. Every stage adds how its surfaces "
                                  "look (grain, weave, stain): for tissue, materials and textures.")
        form.addRow("", self.features_hint)
        self._form = form

        self.size_spin = bound_spin("model.image_size", step=8)
        self.size_spin.valueChanged.connect(self._on_edited)
        form.addRow(label_for("model.image_size"), self.size_spin)
        self.size_hint = hint("")
        form.addRow("", self.size_hint)
        outer.addLayout(form)

        outer.addWidget(self._build_custom_box())
        self.weights_status = QtBanner(closable=False)
        outer.addWidget(self.weights_status)
        outer.addStretch(1)
        return form_box

    def _build_weights_rows(self, form: QFormLayout) -> None:
        """Where the starting numbers come from, and the file row shown for a weights file."""
        self.weights_combo = choice_combo(WEIGHTS, "Where the network's starting numbers come from: ImageNet "
                                          "(already learned to see on 1.2 million photos; best with few images), a "
                                          "weights file of your own, or random (everything learned from your images "
                                          "alone)")
        self.weights_combo.currentIndexChanged.connect(self._on_weights_chosen)
        form.addRow("Weights", self.weights_combo)
        file_row = QHBoxLayout()
        self.weights_path = QLineEdit()
        self.weights_path.setReadOnly(True)
        self.weights_path.setPlaceholderText("no file chosen")
        self.weights_path.setToolTip("The weights file the network starts from")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose a weights file (.pt, .pth) to start from, e.g. a model of an earlier "
                                      "project")
        self.browse_button.clicked.connect(self._on_browse_weights)
        file_row.addWidget(self.weights_path, 1)
        file_row.addWidget(self.browse_button)
        self.file_box = QWidget()
        self.file_box.setLayout(file_row)
        file_row.setContentsMargins(0, 0, 0, 0)
        form.addRow("", self.file_box)
        self.weights_hint = hint("")
        form.addRow("", self.weights_hint)

    def _build_custom_box(self) -> QGroupBox:
        self.custom_box = QGroupBox("Custom CNN")
        custom = QFormLayout(self.custom_box)
        self.blocks_spin = bound_spin("model.blocks")
        self.width_spin = bound_spin("model.width")
        self.dropout_spin = bound_spin("model.dropout", step=0.05)
        self.kernel_combo = bound_combo("model.kernel_size", {k: f"{k} × {k}" for k in (1, 3, 5, 7)})
        for w in (self.blocks_spin, self.width_spin, self.dropout_spin):
            w.valueChanged.connect(self._on_edited)
        self.kernel_combo.currentIndexChanged.connect(self._on_edited)
        for key, widget in (("model.blocks", self.blocks_spin), ("model.width", self.width_spin),
                            ("model.dropout", self.dropout_spin), ("model.kernel_size", self.kernel_combo)):
            custom.addRow(label_for(key), widget)
        return self.custom_box

    # ------------------------------------------------------------------------------------ edits → state

    @Slot()
    def _on_arch_chosen(self) -> None:
        if self._syncing:
            return
        # What a user switching networks expects: its own image size, and its pretrained weights if it has any.
        self.state.update("model", **arch_defaults(self.arch_combo.currentData(), pick_weights=True))

    @Slot()
    def _on_weights_chosen(self) -> None:
        if self._syncing:
            return
        key = self.weights_combo.currentData()
        if key == "file":
            path = self.choose_weights_dialog()
            if not path:
                self._on_config_changed("model")  # back to what it was
                return
            self.state.update("model", pretrained=path, mode=self._mode_for(path))
        else:
            self.state.update("model", pretrained=key, mode=self._mode_for(key))

    @Slot()
    def _on_browse_weights(self) -> None:
        path = self.choose_weights_dialog()
        if path:
            self.state.update("model", pretrained=path, mode=self._mode_for(path))

    def _mode_for(self, pretrained: str) -> str:
        current = self.state.config.model
        return mode_for_weights(pretrained, current.pretrained, current.mode)

    @Slot()
    def _on_edited(self) -> None:
        if self._syncing:
            return
        self.state.update(
            "model", mode=self.mode_combo.currentData(), features=self.features_combo.currentData(),
            image_size=self.size_spin.value(),
            blocks=self.blocks_spin.value(), width=self.width_spin.value(),
            dropout=round(self.dropout_spin.value(), 2), kernel_size=self.kernel_combo.currentData(),
        )

    def _ask_weights_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a weights file", "",
                                              "PyTorch weights (*.pt *.pth *.bin);;All files (*)")
        return path

    # ------------------------------------------------------------------------------------ state → widgets

    @Slot(str)
    def _on_config_changed(self, section: str) -> None:
        if section in ("recipe", "model"):
            self._show_advice()
        if section != "model":
            return
        cfg = self.state.config.model
        info = architecture_info(cfg.arch)
        self._syncing = True
        self.arch_combo.setCurrentIndex(max(0, self.arch_combo.findData(cfg.arch)))
        source = cfg.pretrained if cfg.pretrained in ("imagenet", "none") else "file"
        self.weights_combo.model().item(0).setEnabled(info.imagenet)
        self.weights_combo.setCurrentIndex(self.weights_combo.findData(source))
        self.weights_path.setText(cfg.pretrained if source == "file" else "")
        self.file_box.setVisible(source == "file")
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(cfg.mode)))
        self.mode_combo.setEnabled(source != "none")
        self.features_combo.setCurrentIndex(max(0, self.features_combo.findData(cfg.features)))
        for row in (self.features_combo, self.features_hint):
            self._form.setRowVisible(row, cfg.arch == "efficientnet_lite0")
        self.size_spin.setValue(cfg.image_size)
        self.blocks_spin.setValue(cfg.blocks)
        self.width_spin.setValue(cfg.width)
        self.dropout_spin.setValue(cfg.dropout)
        self.kernel_combo.setCurrentIndex(max(0, self.kernel_combo.findData(cfg.kernel_size)))
        self._syncing = False
        self.custom_box.setVisible(cfg.arch == "custom")
        self.arch_hint.setText(info.description + ".")
        self.weights_hint.setText(WEIGHTS_HINT[source])
        self.mode_hint.setText(MODE_HINT[cfg.mode] if source != "none" else
                               "Every layer learns: there is nothing pretrained to keep.")
        self.size_hint.setText(f"Images are scaled to this square size; larger shows more detail but trains slower. "
                               f"{info.title} is usually used at {info.default_image_size} px.")
        self.layers_heading.setText(f"Layers for {cfg.image_size} × {cfg.image_size} px images")
        self._debounce.start()
        self._check_weights()

    @Slot()
    def _on_report_changed(self) -> None:
        self._show_advice()
        self._debounce.start()

    def _show_advice(self) -> None:
        """While the studio chooses (Recommended on the Train page), say so: the form shows no decision yet."""
        cfg = self.state.config
        chosen_here = {"model.arch", "model.pretrained"} & set(cfg.recipe.pinned)
        if cfg.recipe.mode == "recommended" and not chosen_here:
            self.advice.show_message("Recommended settings are on (Train page): when you press Start the studio "
                                     "looks at your images and chooses the network and image size itself. Choose a "
                                     "network here to decide yourself.", "info")
        else:
            self.advice.show_message("Advice: " + recommendation(self.state.report, self._gpu), "info")

    def _n_classes(self) -> int:
        report = self.state.report
        return max(2, len(report.classes)) if report else 2

    @Slot()
    def _refresh_summary(self) -> None:
        self._summary.submit(describe_model, copy.deepcopy(self.state.config.model), self._n_classes())

    def _check_weights(self) -> None:
        cfg = self.state.config.model
        if (cfg.arch, cfg.pretrained) == self._checked:
            return
        self._checked = (cfg.arch, cfg.pretrained)
        if cfg.pretrained == "none":
            self.weights_status.clear()
            return
        self.weights_status.show_message("Checking the starting weights… (ImageNet weights are downloaded once, "
                                         "if this computer is online)", "info")
        self._weights.submit(check_weights, copy.deepcopy(cfg), self._n_classes())

    @Slot(object)
    def _on_summary(self, value: object) -> None:
        result = dict(value)  # type: ignore[call-overload]
        if result["config"] != self.state.config.model:
            return
        self.build_status.clear()
        total, trainable = result["total"], result["trainable"]
        learn = "All of them learn." if trainable == total else \
            f"{trainable:,} of them learn; the others keep their pretrained values."
        if result["first_stage"] is not None:
            learn = f"{result['first_stage']:,} of them learn in the first stage, all of them in the second."
        self.params_label.setText(f"{total:,} parameters ({plain_number(total)} numbers the network learns)"
                                  if total >= 100_000 else f"{total:,} parameters")
        self.learn_label.setText(learn)
        self._last_summary = result
        self._fill_layers()

    @Slot()
    def _fill_layers(self) -> None:
        """Layers in words by default; the PyTorch table (names, types, shapes) behind the switch."""
        result = self._last_summary
        if result is None:
            return
        fill_layer_table(self.layer_table, result, self.torch_names.isChecked())

    @Slot(str)
    def _on_summary_failed(self, message: str) -> None:
        self.params_label.setText("This network cannot be built with these settings.")
        self.learn_label.setText("")
        self.layer_table.setRowCount(0)
        self.build_status.show_message(message, "error")

    @Slot(object)
    def _on_weights_checked(self, value: object) -> None:
        cfg, level, message = value  # type: ignore[misc]
        if cfg == self.state.config.model or (cfg.arch, cfg.pretrained) == (self.state.config.model.arch,
                                                                             self.state.config.model.pretrained):
            self.weights_status.show_message(message, level)

    @Slot(str)
    def _on_weights_failed(self, message: str) -> None:
        if self.state.config.model.pretrained != "none":
            self.weights_status.show_message(message, "error")

    def shutdown(self) -> None:
        self._debounce.stop()
        self._summary.shutdown()
        self._weights.shutdown()
