"""What an exported model says beyond its classes: calibrated probabilities and the familiarity score.

The exported graph divides the logits by the run's temperature, exactly as the studio does, and,
when the checkpoint carries familiarity statistics, returns a second output: the distance to the
training images in units of the fitted limit. The sidecar JSON names the limit (1.0), so a
program calling the file reaches the studio's verdict with one comparison: score > 1 means
"not like the training images".

A verdict measured in the reference space needs the bundled EfficientNet-Lite0 inside the graph
too, with the feature store's preprocessing (160 px, or twice a small image's own size, as the run
recorded; mean and std 0.5). The model package gives it the file read at that size as the studio
reads it (a second input), so its score is the studio's to
float rounding; a plain ONNX or .pt2 file has one input and resizes that in float, so its score
agrees only as closely as its picture does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from studio.core.familiarity import Familiarity
from studio.core.trust import SPACE_WORDS, stored_familiarity, stored_temperature

SCORE_NAME = "unfamiliar_score"


class FamiliarityScore(nn.Module):
    """Unit-length features → squared Mahalanobis distance to the nearest class mean / the limit."""

    def __init__(self, familiarity: Familiarity) -> None:
        super().__init__()
        means = familiarity.means.float()
        precision = familiarity.precision.float()
        mp = means @ precision
        self.register_buffer("means_t", means.T.contiguous())
        self.register_buffer("precision", precision)
        self.register_buffer("mp_t", mp.T.contiguous())
        self.register_buffer("mpm", (mp * means).sum(1))
        self.register_buffer("threshold", torch.tensor(float(familiarity.threshold)))

    def forward(self, features: Tensor) -> Tensor:
        x = F.normalize(features.float(), dim=1, eps=1e-12)
        xp = x @ self.precision
        d = (xp * x).sum(1, keepdim=True) - 2.0 * (x @ self.mp_t) + self.mpm.unsqueeze(0)
        return d.min(dim=1).values.clamp_min(0.0) / self.threshold


class ReferenceFeatures(nn.Module):
    """Raw 0..255 images → the reference network's features, with the feature store's preprocessing."""

    def __init__(self, preprocess: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.backbone = backbone

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone(self.preprocess(images))


class JudgedNetwork(nn.Module):
    """Normalized input (and the raw images, for a reference space) → calibrated probabilities [, score]."""

    def __init__(self, network: nn.Module, temperature: float, score: FamiliarityScore | None,
                 reference: nn.Module | None) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.score = score
        self.reference = reference

    def forward(self, x: Tensor, images: Tensor) -> Any:
        features = self.network.backbone(x)
        probabilities = torch.softmax(self.network.head(features) / self.temperature, dim=1)
        if self.score is None:
            return probabilities
        if self.reference is not None:
            features = self.reference(images)
        return probabilities, self.score(features)


def judged_network(data: dict[str, Any], network: nn.Module, preprocess_kind: type, *,
                   allow_reference: bool = True) -> JudgedNetwork:
    """The network with the run's temperature and, when it has one (and it can be carried), its verdict."""
    familiarity = stored_familiarity(data)
    score = reference = None
    if familiarity is not None and (familiarity.space == "network" or allow_reference):
        score = FamiliarityScore(familiarity)
        if familiarity.space == "reference":
            reference = _reference_module(preprocess_kind, familiarity.reference_size)
    return JudgedNetwork(network, stored_temperature(data), score, reference).eval()


def _reference_module(preprocess_kind: type, size: int) -> nn.Module:
    from studio.core.architectures import LITE_MEAN, LITE_STD
    from studio.core.features import _network

    backbone = _network()
    module = ReferenceFeatures(preprocess_kind(size, list(LITE_MEAN), list(LITE_STD)), backbone).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def has_score(network: JudgedNetwork) -> bool:
    return network.score is not None


def describe(data: dict[str, Any], carried: bool) -> dict[str, Any]:
    """The sidecar's account of calibration and the verdict, with the limit a program compares against."""
    familiarity = stored_familiarity(data)
    out: dict[str, Any] = {"temperature": stored_temperature(data)}
    if familiarity is None:
        out["familiarity"] = None
        out["familiarity_note"] = "this model predates the familiarity check: there is no verdict"
        return out
    out["familiarity"] = {
        "output": SCORE_NAME if carried else None,
        "threshold": 1.0,
        "verdict": f"{SCORE_NAME} > threshold means: not like the training images — treat the answer with care",
        "space": familiarity.space,
        "space_meaning": SPACE_WORDS[familiarity.space],
        "validation_share_within": familiarity.share,
        "distance_limit": familiarity.threshold,
    }
    if not carried:
        out["familiarity_note"] = ("this format cannot carry the reference network's score; "
                                   "export as ONNX or PyTorch (.pt2) to get the verdict")
    return out
