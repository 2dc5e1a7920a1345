"""The networks a user can choose, as facts: names, titles, descriptions, input size and normalization.

Kept apart from `models` (which builds networks and needs torch) so that the
config can check an architecture name, the CLI can list the choices in
`--help`, and the window can describe them, all without importing torch and
without the import circle config -> models -> weights -> models that asking
`models` for this used to make. `models` adds a builder per name.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Not ImageNet's: the Lite models were trained on (pixel - 127) / 128; see effnet_lite.py.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ArchInfo:
    """What a user needs to choose a network, and what its pretrained weights expect as input."""

    name: str
    title: str
    description: str
    imagenet: bool
    bundled: bool
    recommended: bool
    default_image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_INFOS: dict[str, ArchInfo] = {}


def register_info(info: ArchInfo) -> None:
    """Add (or replace) an architecture in the list the window and the CLI offer."""
    _INFOS[info.name] = info


def list_architectures() -> list[str]:
    return list(_INFOS)


def architecture_info(name: str) -> ArchInfo:
    if name not in _INFOS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(_INFOS)}")
    return _INFOS[name]


def _imagenet(name: str, title: str, description: str, size: int = 224) -> ArchInfo:
    # Size and normalization are those torchvision's own weights declare (tests/test_models.py checks it).
    return ArchInfo(name, title, description, imagenet=True, bundled=False, recommended=False,
                    default_image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)


for _info in (
    ArchInfo("custom", "Custom CNN", "A small network learned from scratch; for simple images or unusual kinds of "
             "pictures", imagenet=False, bundled=False, recommended=True, default_image_size=64, mean=IMAGENET_MEAN,
             std=IMAGENET_STD),
    ArchInfo("efficientnet_lite0", "EfficientNet-Lite0", "Recommended: accurate and light, and its ImageNet weights "
             "come with the install, so it works offline", imagenet=True, bundled=True, recommended=True,
             default_image_size=224, mean=LITE_MEAN, std=LITE_STD),
    _imagenet("resnet18", "ResNet-18", "Small, fast, reliable; a good first choice for photos"),
    _imagenet("resnet50", "ResNet-50", "Larger and more accurate than ResNet-18, about three times slower"),
    _imagenet("efficientnet_b0", "EfficientNet-B0", "Very accurate for its size; a good all-rounder"),
    _imagenet("efficientnet_b2", "EfficientNet-B2", "More accurate than B0 on larger images; slower to train", 288),
    _imagenet("mobilenet_v3_small", "MobileNetV3-Small", "Tiny and very fast; for slow computers and phones"),
    _imagenet("mobilenet_v3_large", "MobileNetV3-Large", "Fast with good accuracy; fine on a laptop without a GPU"),
    _imagenet("convnext_tiny", "ConvNeXt-Tiny", "Modern and very accurate; wants a GPU to train in reasonable time"),
):
    register_info(_info)
