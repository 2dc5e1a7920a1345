"""The Inspect view: the layer list, the maps grid that follows the selected layer, filters and Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from studio.core.checkpoint import make_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.inspect import Inspection
from studio.core.models import architecture_info, build_model
from studio.core.predict import Predictor
from studio.ui.panes.inspect_pane import CAM_TAB, FILTERS_TAB, PATCHES_TAB, InspectPane, validation_images
from studio.ui.state import QtStudioState
from tests.ui.view_helpers import dispose, drop_paths, train_tiny_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_tiny_run(tmp_path_factory.mktemp("inspect"))


@pytest.fixture
def pane(qtbot, trained):
    state = QtStudioState(project_dir=trained.project)
    view = InspectPane(state)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    yield view
    dispose(view)


def some_image(trained) -> Path:
    return sorted(Path(trained.data).rglob("*.png"))[0]


def inspect(qtbot, pane: InspectPane, run: str, image: Path | str) -> Inspection:
    with qtbot.waitSignal(pane.inspection_changed, timeout=30_000):
        pane.state.request_inspect(run, image)
    return pane.inspection


def test_a_request_through_the_state_shows_the_image_and_its_layers(qtbot, pane: InspectPane, trained) -> None:
    image = some_image(trained)
    ins = inspect(qtbot, pane, trained.run, image)
    assert pane.image_path == str(image)
    expected = Inspection.of_image(Predictor(trained.run), image)
    assert ins.top(3) == expected.top(3)
    # In words by default: the blocks, the summary and the decision, the first block shown.
    assert pane.tree.names() == [r.layer for r in pane.words] and pane.layer == "backbone.block1"
    assert pane.tree.currentItem().text(0) == "Block 1 — 8 detectors, each at 12 × 12 positions"
    pane.torch_names.setChecked(True)
    assert pane.tree.names() == [info.name for info in ins.layers]
    assert pane.layer == "backbone.block1"  # kept across the switch
    assert len(pane.maps_view.grid.images) == ins.layer(pane.layer).output_shape[0]
    assert pane.answer_label.text().startswith(f"Predicted: {ins.top(1)[0][0]}")


def test_selecting_layers_updates_the_grid(qtbot, pane: InspectPane, trained) -> None:
    ins = inspect(qtbot, pane, trained.run, some_image(trained))
    pane.torch_names.setChecked(True)  # every module, not only the blocks
    grid = pane.maps_view.grid
    seen = {}
    serial = pane._serial
    for info in ins.layers:
        if not info.has_maps:
            continue
        if pane.layer != info.name:  # the block shown first is already selected
            with qtbot.waitSignal(pane.layer_shown):
                pane.select_layer(info.name)
        channels, h, w = info.output_shape
        assert len(grid.images) == min(channels, 64), info.name
        assert (grid.images[0].height(), grid.images[0].width()) == (h, w)
        assert pane.maps_view.scale.low == pytest.approx(ins.maps(info.name).low)
        seen[info.name] = grid.images[0].copy()
        # Instant because nothing is recomputed: no new pass of the image through the model.
        assert pane._serial == serial
    assert len({(img.width(), img.height(), bytes(img.constBits())) for img in seen.values()}) > 1

    head = next(info for info in ins.layers if not info.has_maps)
    pane.select_layer(head.name)
    assert not grid.images and "not images" in grid.placeholder


def test_channels_sort_by_mean_and_a_click_enlarges_one(qtbot, pane: InspectPane, trained) -> None:
    ins = inspect(qtbot, pane, trained.run, some_image(trained))
    pane.select_layer("backbone.block2.relu")
    pane.maps_view.sort_combo.setCurrentIndex(1)
    assert pane.maps_view.grid.captions[0] == str(int(np.argmax(ins.maps("backbone.block2.relu").means)))
    grid = pane.maps_view.grid
    qtbot.mouseClick(grid, pytest.importorskip("PySide6.QtCore").Qt.MouseButton.LeftButton,
                     pos=grid.cell_rect(2).center())
    assert pane.maps_view.selected == 2 and pane.maps_view.detail.image is not None
    pane.maps_view.overlay_check.setChecked(True)
    size = ins.pixels.shape[-1]
    assert pane.maps_view.detail.image.width() == size  # laid over the image the model saw


def test_filters_first_layer_as_colour_patches_deeper_as_grids(qtbot, pane: InspectPane, trained) -> None:
    inspect(qtbot, pane, trained.run, some_image(trained))
    pane.tabs.setCurrentIndex(FILTERS_TAB)
    pane.select_layer("backbone.block1.conv")
    first = pane.filters_view.grid.images
    assert len(first) == 8 and first[0].width() == 3  # width 8, 3×3 RGB patches
    pane.select_layer("backbone.block3")  # a deeper block: its filters do not read as pictures
    assert not pane.filters_view.grid.images and "What a channel responds to" in pane.filters_view.grid.placeholder
    pane.select_layer("backbone.block3.relu")
    assert not pane.filters_view.grid.images and "Conv2d" in pane.filters_view.grid.placeholder


def test_grad_cam_for_the_predicted_and_a_chosen_class(qtbot, pane: InspectPane, trained) -> None:
    ins = inspect(qtbot, pane, trained.run, some_image(trained))
    pane.tabs.setCurrentIndex(CAM_TAB)
    qtbot.waitUntil(lambda: pane._heat is not None, timeout=20_000)
    assert pane._heat[0] == ins.predicted and pane.cam_view.view.image is not None
    other = pane.cam_view.class_combo.findData(int(np.argsort(ins.probabilities)[0]))
    pane.cam_view.class_combo.setCurrentIndex(other)
    qtbot.waitUntil(lambda: pane._heat[0] == pane.cam_view.current_class(), timeout=20_000)
    np.testing.assert_array_equal(pane._heat[1], ins.grad_cam(pane.cam_view.current_class()))


def test_dropped_image_and_validation_images(qtbot, pane: InspectPane, trained, tmp_path: Path) -> None:
    images = validation_images(trained.run)
    assert images and all(Path(p).is_file() for p in images)
    with qtbot.waitSignal(pane.inspection_changed, timeout=30_000):
        pane.state.set_current_run(trained.run)
        pane.next_button.click()
    with qtbot.waitSignal(pane.inspection_changed, timeout=30_000):
        assert drop_paths(pane, [images[-1]])
    assert pane.image_path == images[-1]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    pane.set_image(bad)
    qtbot.waitUntil(lambda: pane.banner.level == "error", timeout=20_000)
    assert "broken.jpg" in pane.banner.text()


def test_a_torchvision_backbone_is_inspected_the_same_way(qtbot, pane: InspectPane, trained, tmp_path: Path) -> None:
    cfg = RunConfig()
    cfg.model.arch, cfg.model.image_size = "resnet18", 64
    torch.manual_seed(0)
    info = architecture_info("resnet18")
    data = make_checkpoint(model=build_model(cfg.model, 3, load_weights=False), config=cfg,
                           classes=["red", "green", "blue"], mean=info.mean, std=info.std, metrics={})
    ckpt = tmp_path / "resnet18.pt"
    save_checkpoint(data, ckpt)
    ins = inspect(qtbot, pane, str(ckpt), some_image(trained))
    # Block 1 in words is the stem: convolution, normalization, activation and pooling together.
    assert pane.layer == "backbone.maxpool" and len(pane.maps_view.grid.images) == 64
    assert pane.maps_view.pager.total == 64
    pane.select_layer("backbone.layer4")
    assert pane.maps_view.pager.total == 512 and len(pane.maps_view.grid.images) == 64
    pane.maps_view.pager.forward.click()
    assert pane.maps_view.grid.captions[0] == "64"
    assert ins.cam_layer == "backbone.layer4"


def test_what_a_channel_responds_to_shows_training_patches_per_channel(qtbot, pane: InspectPane, trained) -> None:
    inspect(qtbot, pane, trained.run, some_image(trained))
    pane.select_layer("backbone.block2")
    pane.tabs.setCurrentIndex(PATCHES_TAB)
    view = pane.patches_view
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    result = view.result
    assert result.layer == "backbone.block2" and result.channels == 16 and len(view.grid.images) == 16
    assert all(Path(p).is_file() for p in result.paths)  # the run's own training images
    assert view.detail.image is not None and "Channel 0" in view.detail_label.text()
    assert len(view.channel_patches(0)) == min(9, len(result.paths))
    assert list((Path(trained.run) / "inspect").glob("top-patches-*.npz"))  # remembered for the next look
