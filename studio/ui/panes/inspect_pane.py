"""Inspect: for the image in hand, every layer's feature maps, the learned filters and Grad-CAM.

The image runs through the model once, in a worker (a big backbone takes a while), recording
every module's output (`Inspection`); choosing a layer then only draws what is already in
memory, which is why switching layers is instant. The image arrives by a request through the
shared state (Predict's and Evaluate's "inspect this image"), by a drop, by a file dialog, or
from the run's own validation images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QCheckBox, QFileDialog, QHBoxLayout, QSplitter, QVBoxLayout, QWidget

from studio.core.inspect import Inspection, conv_layers
from studio.core.layer_words import WordRow
from studio.core.predict import Predictor
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import QtBanner, heading, hint
from studio.ui.widgets.file_drop import IMAGE_FILES, dropped_paths
from studio.ui.widgets.inspect_parts import (
    CAM_TAB,
    FILTERS_TAB,
    MAPS_TAB,
    NEAREST_TAB,
    PATCHES_TAB,
    QtImageInHand,
    QtInspectTabs,
    answer_text,
)
from studio.ui.widgets.inspection_work import build_inspection, grad_cam, labelled_class, top_patches, validation_images
from studio.ui.widgets.layer_tree import QtLayerTree
from studio.ui.widgets.run_picker import ModelPaneMixin, QtModelLoader, QtRunPicker, describe_model
from studio.ui.workers import QtTaskRunner

# Re-exported: the tab numbers and the run's validation images are part of what the page offers.
__all__ = ["CAM_TAB", "FILTERS_TAB", "MAPS_TAB", "NEAREST_TAB", "PATCHES_TAB", "InspectPane", "validation_images"]



class InspectPane(ModelPaneMixin, QWidget):
    """Layer tree on the left; feature maps, filters and Grad-CAM of the chosen layer on the right."""

    title = "Inspect"
    inspection_changed = Signal()  # a new image or model is shown
    layer_shown = Signal(str)

    def __init__(self, state: QtStudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.predictor: Predictor | None = None
        self.inspection: Inspection | None = None
        self.image_path = ""
        self.layer = ""
        self.last_switch_ms = 0.0
        self.choose_image_dialog: Callable[[], str] = self._ask_image
        self._serial = 0
        self._val_index = -1
        self.setAcceptDrops(True)
        self.loader = QtModelLoader(self)
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)
        self._builder = QtTaskRunner("studio-inspect", self)
        self._builder.result.connect(self._on_inspection)
        self._cam_runner = QtTaskRunner("studio-grad-cam", self)
        self._cam_runner.result.connect(self._on_cam)
        self._patch_runner = QtTaskRunner("studio-top-patches", self)
        self._patch_runner.result.connect(self._on_patches)
        self._patches_for: tuple[int, str] | None = None  # (serial, layer) shown or asked for
        self._build()
        state.current_run_changed.connect(self._on_run_changed)
        state.inspect_requested.connect(self._on_inspect_requested)
        self.next_button.setEnabled(bool(validation_images(state.current_run)) if state.current_run else False)

    # ------------------------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.picker = QtRunPicker(self.state)
        layout.addWidget(self.picker)
        self.banner = QtBanner()
        layout.addWidget(self.banner)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_left())
        split.addWidget(self._build_tabs())
        split.setSizes([380, 800])
        split.setStretchFactor(1, 1)
        layout.addWidget(split, 1)
        self._heat: tuple[int, object] | None = None  # (class, heat) last shown

    def _build_left(self) -> QWidget:
        """The image in hand over the list of layers."""
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        hand = QtImageInHand()
        self.image_view, self.answer_label, self.file_label = hand.image_view, hand.answer_label, hand.file_label
        self.open_button, self.next_button = hand.open_button, hand.next_button
        self.open_button.clicked.connect(self._on_open_image)
        self.next_button.clicked.connect(self._on_next_validation)
        lv.addWidget(hand)
        self.model_label = hint("")
        lv.addWidget(self.model_label)
        tree_head = QHBoxLayout()
        tree_head.addWidget(heading("Layers, in the order they run"), 1)
        self.torch_names = QCheckBox("Show PyTorch names")
        self.torch_names.setToolTip("List every module under its PyTorch name and type, with its output shape, "
                                    "instead of the network's stages and blocks in words.")
        self.torch_names.toggled.connect(self._on_names_toggled)
        tree_head.addWidget(self.torch_names)
        lv.addLayout(tree_head)
        self.words: list[WordRow] = []
        self.tree = QtLayerTree()
        self.tree.layer_selected.connect(self._on_layer_selected)
        lv.addWidget(self.tree, 1)
        return left

    def _build_tabs(self) -> QtInspectTabs:
        self.tabs = tabs = QtInspectTabs()
        self.maps_view, self.filters_view, self.cam_view = tabs.maps_view, tabs.filters_view, tabs.cam_view
        self.patches_view, self.neighbours = tabs.patches_view, tabs.neighbours
        self.maps_view.title_for = self.filters_view.title_for = self.layer_title
        self.filters_view.first_layer_requested.connect(self._on_first_layer)
        self.cam_view.class_changed.connect(self._request_cam)
        self.cam_view.opacity_changed.connect(self._redraw_cam)
        self.patches_view.requested.connect(self._request_patches)
        tabs.currentChanged.connect(self._on_tab)
        return tabs

    # ------------------------------------------------------------------------------------ image and model

    def set_image(self, path: str | Path) -> None:
        """Inspect `path` with the current model (loaded first when needed)."""
        self.image_path = str(path)
        self.banner.clear()
        if self.predictor is None:
            self._request_model()
        else:
            self._build_inspection()

    def _build_inspection(self) -> None:
        if self.predictor is None or not self.image_path:
            return
        self._serial += 1
        self.answer_label.setText("Looking inside…")
        self.file_label.setText(self.image_path)
        self._builder.submit(build_inspection, self._serial, self.predictor, self.image_path,
                             self.state.current_run)

    @Slot(str)
    def _on_run_changed(self, run: str) -> None:
        self.predictor = None
        self._val_index = -1
        self.next_button.setEnabled(bool(validation_images(run)) if run else False)
        if run and (self.isVisible() or self.image_path):
            self._request_model()

    @Slot(str, str)
    def _on_inspect_requested(self, run: str, image: str) -> None:
        if run != self.state.current_run:
            self.state.set_current_run(run)
        self.set_image(image)

    @Slot(str, object)
    def _on_model_loaded(self, run: str, predictor: Predictor) -> None:
        if run != self.state.current_run:
            return
        self.predictor = predictor
        self.model_label.setText(describe_model(predictor))
        if not self.image_path:
            images = validation_images(run)
            if images:
                self._val_index = 0
                self.image_path = images[0]
        self._build_inspection()

    @Slot(object)
    def _on_inspection(self, value: object) -> None:
        serial, inspection, error, words, explained = value  # type: ignore[misc]
        if serial != self._serial:
            return
        self.words = words
        if inspection is None:
            self.answer_label.setText("Cannot inspect this image")
            self.banner.show_message(error, "error")
            return
        self.inspection = inspection
        self._heat = None
        self.image_view.set_array(inspection.pixels.numpy() if inspection.pixels is not None else None)
        (label, p), *_ = inspection.top(1)
        prediction = explained[0] if explained else None
        if prediction is not None and prediction.top:
            label, p = prediction.top[0]  # calibrated, as everywhere a prediction is shown
        truth = labelled_class(self.state.current_run, self.image_path)
        unfamiliar = prediction is not None and prediction.unfamiliar
        self.answer_label.setText(answer_text(label, p, truth, unfamiliar))
        self.neighbours.show_result(prediction, self.predictor.space if self.predictor else "",
                                    explained[1] if explained else [], explained[2] if explained else "")
        if unfamiliar:
            self.tabs.setCurrentIndex(NEAREST_TAB)
        self.file_label.setText(f"{Path(self.image_path).name} — as the model sees it: {inspection.x.shape[-1]}×"
                                f"{inspection.x.shape[-2]} px")
        self.file_label.setToolTip(self.image_path)
        self._fill_tree(inspection)
        self.cam_view.set_classes(inspection)
        self.inspection_changed.emit()
        if self.tabs.currentIndex() == CAM_TAB:
            self._request_cam(self.cam_view.current_class())

    # ------------------------------------------------------------------------------------ layers

    def _fill_tree(self, inspection: Inspection) -> None:
        names = [info.name for info in inspection.layers]
        convs = self._convolutions()
        target = self.layer if self.layer in names else (convs[0] if convs else names[0] if names else "")
        if self.words and not self.torch_names.isChecked():
            self.tree.set_words(self.words, target)
        else:
            self.tree.set_layers(inspection.layers, target)  # shows the target layer

    @Slot(bool)
    def _on_names_toggled(self, _on: bool) -> None:
        if self.inspection is not None:
            self._fill_tree(self.inspection)

    def select_layer(self, name: str) -> None:
        """Any module by its PyTorch name: one that is no block of the words list opens the PyTorch list."""
        if name not in self.tree.names() and not self.torch_names.isChecked():
            self.torch_names.setChecked(True)
        self.tree.select(name)

    def _filter_layer(self) -> str:
        """In words, a block's filters are those of its first convolution (a stem's pooling has none)."""
        row = next((r for r in self.words if r.layer == self.layer and not r.is_stage), None)
        if row is None or self.torch_names.isChecked() or self.inspection is None:
            return self.layer
        convs = conv_layers(self.inspection.model)
        return next((c for c in convs if any(c == m or c.startswith(m + ".") for m in row.modules)), self.layer)

    @Slot(str)
    def _on_layer_selected(self, name: str) -> None:
        if self.inspection is None:
            return
        start = time.perf_counter()
        self.layer = name
        self._show_current_tab()
        self.last_switch_ms = (time.perf_counter() - start) * 1000
        self.layer_shown.emit(self.layer)

    def _show_current_tab(self) -> None:
        if self.inspection is None or not self.layer:
            return
        tab = self.tabs.currentIndex()
        if tab == MAPS_TAB:
            self.maps_view.show_layer(self.inspection, self.layer)
        elif tab == FILTERS_TAB:
            layer, convs = self._filter_layer(), self._convolutions()
            if convs and layer != convs[0] and any(layer == c or c.startswith(f"{layer}.") for c in convs[1:]):
                self.filters_view.show_deeper()
            else:
                self.filters_view.show_layer(self.inspection, layer)
        elif tab == PATCHES_TAB:
            self._request_patches()

    @Slot(int)
    def _on_tab(self, tab: int) -> None:
        if tab == CAM_TAB and self.inspection is not None and self._heat is None:
            self._request_cam(self.cam_view.current_class())
        else:
            self._show_current_tab()

    def _convolutions(self) -> list[str]:
        """Listed convolution layers (any Conv2d subclass, e.g. Lite0's same-padding one), in order."""
        if self.inspection is None:
            return []
        listed = {info.name for info in self.inspection.layers if info.has_maps}
        return [name for name in conv_layers(self.inspection.model) if name in listed]

    @Slot()
    def _on_first_layer(self) -> None:
        convs = self._convolutions()
        if convs:
            self.select_layer(convs[0])

    # ------------------------------------------------------------------------------------ top patches

    @Slot()
    def _request_patches(self) -> None:
        if self.inspection is None or self.predictor is None or not self.layer:
            return
        if (self._serial, self.layer) == self._patches_for:
            return
        if not self.inspection.layer(self.layer).has_maps:
            self._patches_for = None
            self.patches_view.show_waiting("This part gives numbers, not a map of the image: choose a block "
                                           "higher in the list.")
            return
        self._patches_for = (self._serial, self.layer)
        self.patches_view.show_waiting("Looking through the training images for what excites each channel…")
        self._patch_runner.submit(top_patches, self._serial, self.state.current_run, self.predictor, self.layer)

    @Slot(object)
    def _on_patches(self, value: object) -> None:
        serial, layer, result, pixels, error = value  # type: ignore[misc]
        if (serial, layer) != self._patches_for:
            return
        if result is None:
            self._patches_for = None
            self.patches_view.show_waiting(error)
            return
        self.patches_view.show_result(result, pixels, self.layer_title(layer))

    def layer_title(self, name: str) -> str:
        """"Block 2" while the list is in words (for the first convolution inside a block too), else the name."""
        if self.torch_names.isChecked():
            return name
        row = next((r for r in self.words if not r.is_stage and (r.layer == name or any(
            name == m or name.startswith(f"{m}.") for m in r.modules))), None)
        return row.title if row is not None else name

    # ------------------------------------------------------------------------------------ Grad-CAM

    @Slot(int)
    def _request_cam(self, cls: int) -> None:
        if self.inspection is None or cls < 0:
            return
        self.cam_view.show_error("Computing…")
        self._cam_runner.submit(grad_cam, self._serial, self.inspection, cls)

    @Slot(object)
    def _on_cam(self, value: object) -> None:
        serial, cls, heat, error = value  # type: ignore[misc]
        if serial != self._serial or self.inspection is None or cls != self.cam_view.current_class():
            return
        if heat is None:
            self.cam_view.show_error(error)
            return
        self._heat = (cls, heat)
        self.cam_view.show_heat(self.inspection, heat)  # type: ignore[arg-type]

    @Slot()
    def _redraw_cam(self) -> None:
        if self._heat is not None and self.inspection is not None:
            self.cam_view.show_heat(self.inspection, self._heat[1])  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------ image sources

    @Slot()
    def _on_open_image(self) -> None:
        path = self.choose_image_dialog()
        if path:
            self.set_image(path)

    @Slot()
    def _on_next_validation(self) -> None:
        images = validation_images(self.state.current_run)
        if images:
            self._val_index = (self._val_index + 1) % len(images)
            self.set_image(images[self._val_index])

    def _ask_image(self) -> str:
        start = str(Path(self.image_path).parent) if self.image_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image to inspect", start, IMAGE_FILES)
        return path

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if dropped_paths(event.mimeData(), files_only=True):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        files = dropped_paths(event.mimeData(), files_only=True)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.set_image(files[0])
        if len(files) > 1:
            self.banner.show_message("Inspect looks at one image at a time: showing the first one dropped. "
                                     "Use the Predict page for many.", "info")

    def shutdown(self) -> None:
        """Wait for the model load, the recorded pass and Grad-CAM: no thread outlives the window."""
        for runner in (self.loader, self._builder, self._cam_runner, self._patch_runner):
            runner.shutdown()
