"""Decisions the window and the CLI must make the same way: defaults that follow a choice, and advice.

A front end asks here instead of deciding: what changes when the network or
the starting weights change, and which network to suggest for a folder of
images on this computer. Torch-free: the facts come from `architectures`.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from typing import TYPE_CHECKING, Any

from studio.core.architectures import architecture_info

if TYPE_CHECKING:
    from studio.core.dataset import ScanReport

# Below this many images in the smallest class, a network learned from scratch rarely beats a pretrained one.
FEW_IMAGES = 150


def mode_for_weights(pretrained: str, previous_pretrained: str, previous_mode: str) -> str:
    """No weights: every layer learns (nothing to freeze). Weights newly chosen: two stages, the safe default
    for transfer learning. Weights swapped for other weights: the user's own choice stands."""
    if pretrained == "none":
        return "full"
    return "two-stage" if previous_pretrained == "none" else previous_mode


def arch_defaults(arch: str, *, pick_weights: bool) -> dict[str, Any]:
    """What switching to `arch` changes: its own image size and, when `pick_weights`, its ImageNet weights
    if it has any, with the mode that suits them. The CLI does not pick weights (that would download them);
    the window does, since a user choosing a pretrained network there expects it pretrained."""
    info = architecture_info(arch)
    changes: dict[str, Any] = {"arch": info.name, "image_size": info.default_image_size, "features": "final"}
    if pick_weights:
        changes["pretrained"] = "imagenet" if info.imagenet else "none"
        changes["mode"] = mode_for_weights(changes["pretrained"], "none", "full")
    return changes


def recommendation(report: ScanReport | None, gpu: bool) -> str:
    """Advice in one or two sentences, from the number of images and the hardware."""
    if report is None or not report.classes:
        return "Choose a data folder first: the advice here depends on how many images you have."
    smallest = min(report.counts().values())
    if smallest < FEW_IMAGES:
        return (f"Few images ({smallest} in the smallest class): use a pretrained backbone. EfficientNet-Lite0 "
                "with ImageNet weights works offline and learns from few examples. A custom CNN needs many more "
                "images, unless the pictures are very simple.")
    if not gpu:
        return ("Enough images to learn from. Without a GPU, letting every layer of a pretrained network learn is "
                "slow (a few images per second at 224 px, also in the second of two stages). Quickest here: "
                "EfficientNet-Lite0 with What learns = Only the new last layer (without augmentation its features are "
                "computed once), "
                "or the custom CNN for small, simple images.")
    return "Plenty of images and a GPU: a pretrained EfficientNet or ConvNeXt, fine-tuned fully, is most accurate."


def gpu_likely() -> bool:
    """Whether a GPU the studio could train on is probably here, asked without loading torch (which takes
    seconds): NVIDIA's driver is installed, or this is a Mac with Apple silicon. For advice only; training
    itself asks torch (`devices.pick_device`)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None
