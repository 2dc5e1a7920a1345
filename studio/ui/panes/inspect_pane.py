"""Inspect: for the image in hand, every layer's feature maps, the learned filters and Grad-CAM.

The image runs through the model once, in a worker (a big backbone takes a while), recording
every module's output (`Inspection`); choosing a layer then only draws what is already in
memory, which is why switching layers is instant. The image arrives by a request through the
shared state (Predict's and Evaluate's "inspect this image"), by a drop, by a file dialog, or
from the run's own validation images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.images import IMAGE_EXTENSIONS
from studio.core.inspect import Inspection, conv_layers
from studio.core.layer_words import WordRow, layers_in_words
from studio.core.predict import Predictor
from studio.core.runfiles import read_split
from studio.ui.state import QtStudioState
from studio.ui.widgets.common import QtBanner, heading, hint
from studio.ui.widgets.image_grid import QtImageView
from studio.ui.widgets.layer_tree import QtLayerTree
from studio.ui.widgets.layer_views import QtCamView, QtFeatureMapsView, QtFiltersView
from studio.ui.widgets.neighbours import QtNeighbours, neighbour_thumbnails
from studio.ui.widgets.run_picker import ModelPaneMixin, QtModelLoader, QtRunPicker, describe_model
from studio.ui.widgets.top_patches_view import QtTopPatchesView
from studio.ui.workers import QtTaskRunner, describe_exception

MAPS_TAB, FILTERS_TAB, CAM_TAB, PATCHES_TAB, NEAREST_TAB = range(5)


def _build_inspection(serial: int, predictor: Predictor, path: str, run: str = ""
                      ) -> tuple[int, Inspection | None, str, list[WordRow], tuple | None]:
    try:
        inspection = Inspection.of_image(predictor, path)
    except Exception as exc:
        return serial, None, describe_exception(exc), [], None
    try:
        words = layers_in_words(predictor.model, predictor.image_size)
    except (RuntimeError, ValueError):
        words = []  # a model the words cannot describe: the PyTorch list still works
    try:
        prediction, near = predictor.explain(path, run, k=8)
        root = _data_root(run)
        explained = (prediction, neighbour_thumbnails(root, near), root)
    except Exception:  # the maps are still worth showing without the comparison
        explained = None
    return serial, inspection, "", words, explained


def _grad_cam(serial: int, inspection: Inspection, cls: int) -> tuple[int, int, object, str]:
    try:
        return serial, cls, inspection.grad_cam(cls), ""
    except ValueError as exc:  # the engine's words: no spatial layer at this size, and the like
        return serial, cls, None, f"No class-activation map: {exc}."
    except Exception as exc:
        return serial, cls, None, describe_exception(exc)


def _top_patches(serial: int, run: str, predictor: Predictor, layer: str) -> tuple[int, str, object, object, str]:
    """(serial, layer, ChannelPatches or None, sample pixels or None, message) for the Inspect pane's worker."""
    from studio.core.augment import normalize_batch
    from studio.core.checkpoint import resolve_checkpoint_path
    from studio.core.top_patches import run_top_patches

    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    root = _data_root(str(folder)) if (folder / "split.csv").is_file() else ""
    if not root:
        return serial, layer, None, None, ("This needs the training images of the run: the model was opened as a "
                                           "file on its own, without its run folder.")
    try:
        result, pixels = run_top_patches(
            folder, resolve_checkpoint_path(run), predictor.model, layer, predictor.image_size,
            lambda x: normalize_batch(x.to(predictor.device), predictor.mean, predictor.std), root)
    except ValueError as exc:
        return serial, layer, None, None, f"{exc}."
    except Exception as exc:
        return serial, layer, None, None, describe_exception(exc)
    return serial, layer, result, pixels.numpy(), ""


def _data_root(run: str) -> str:
    try:
        return str(json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))["data"]["root"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # a bare checkpoint file, or a run folder that lost its config


def validation_images(run: str) -> list[str]:
    """The run's own validation images (absolute paths), or [] for a bare checkpoint file."""
    root = _data_root(run)
    try:
        rows = read_split(Path(run)) if root else []
    except (OSError, ValueError):
        return []
    return [str(Path(root, *p.split("/"))) for p, _, split in rows if split == "val"]


def labelled_class(run: str, image: str) -> str:
    """The class folder an image sits in when it comes from the run's data folder, else ""."""
    root = _data_root(run)
    try:
        parts = Path(image).resolve().relative_to(Path(root).resolve()).parts if root else ()
    except (ValueError, OSError):
        return ""
    return parts[0] if len(parts) > 1 else ""


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
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        top = QHBoxLayout()
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
        self.open_button.clicked.connect(self._on_open_image)
        self.next_button = QPushButton("Next validation image")
        self.next_button.setToolTip("Step through the images this run was validated on")
        self.next_button.clicked.connect(self._on_next_validation)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.next_button)
        about.addLayout(buttons)
        about.addStretch(1)
        top.addLayout(about, 1)
        lv.addLayout(top)
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
        split.addWidget(left)

        self.tabs = QTabWidget()
        self.maps_view = QtFeatureMapsView()
        self.filters_view = QtFiltersView()
        self.maps_view.title_for = self.filters_view.title_for = self.layer_title
        self.filters_view.first_layer_requested.connect(self._on_first_layer)
        self.cam_view = QtCamView()
        self.cam_view.class_changed.connect(self._request_cam)
        self.cam_view.opacity_changed.connect(self._redraw_cam)
        self.tabs.addTab(self.maps_view, "Feature maps")
        self.tabs.addTab(self.filters_view, "First-layer filters")
        self.tabs.addTab(self.cam_view, "Where it looks (Grad-CAM)")
        self.patches_view = QtTopPatchesView()
        self.patches_view.requested.connect(self._request_patches)
        self.tabs.addTab(self.patches_view, "What a channel responds to")
        self.tabs.setTabToolTip(MAPS_TAB, "How strongly each channel of the chosen layer responds, position by "
                                "position, to this image")
        self.tabs.setTabToolTip(FILTERS_TAB, "The first layer's filters: the small colour patterns the network "
                                "looks for in the pixels")
        self.tabs.setTabToolTip(CAM_TAB, "Which parts of this image raised the score of a class (Grad-CAM)")
        self.tabs.setTabToolTip(PATCHES_TAB, "For each channel of the chosen layer, the pieces of training images "
                                "that excite it most: what it has learned to detect")
        self.neighbours = QtNeighbours()
        self.tabs.addTab(self.neighbours, "Nearest training images")
        self.tabs.currentChanged.connect(self._on_tab)
        split.addWidget(self.tabs)
        split.setSizes([380, 800])
        split.setStretchFactor(1, 1)
        layout.addWidget(split, 1)
        self._heat: tuple[int, object] | None = None  # (class, heat) last shown

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
        self._builder.submit(_build_inspection, self._serial, self.predictor, self.image_path,
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
        verdict = "" if not truth else (" ✓" if truth == label else f" — labelled {truth}")
        if prediction is not None and prediction.unfamiliar:
            self.answer_label.setText(f"Not like the training images — closest class {label} ({100 * p:.1f}%), "
                                      "a guess")
        else:
            self.answer_label.setText(f"Predicted: {label} ({100 * p:.1f}%){verdict}")
        self.neighbours.show_result(prediction, self.predictor.space if self.predictor else "",
                                    explained[1] if explained else [], explained[2] if explained else "")
        if prediction is not None and prediction.unfamiliar:
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
        self._patch_runner.submit(_top_patches, self._serial, self.state.current_run, self.predictor, self.layer)

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
        self._cam_runner.submit(_grad_cam, self._serial, self.inspection, cls)

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
        pattern = "Images (" + " ".join(f"*{e}" for e in IMAGE_EXTENSIONS) + ");;All files (*)"
        start = str(Path(self.image_path).parent) if self.image_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose an image to inspect", start, pattern)
        return path

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if any(u.isLocalFile() and Path(u.toLocalFile()).is_file() for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()
                 and Path(u.toLocalFile()).is_file()]
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
