"""Does an image look like the training images? A distance in feature space, and a fitted limit.

A classifier always names one of its classes, even for a photograph of something it
has never seen. Its features say more: the training images of each class form a
cloud, and an image far from every cloud is unlike all of them. The clouds are
Gaussians with one shared covariance (a Mahalanobis distance), fitted on the
training and validation images' features after training; the limit is the distance below
which a chosen share (95 % by default) of the run's own images fall when each is measured by
Gaussians fitted without it (five-fold cross-fitting), so about 1 in 20 ordinary new images
is flagged by design and anything truly unlike them much more often.

Features are scaled to unit length first: the direction of a feature vector carries
what the image shows, its length mostly how strongly, and unit length keeps one very
bright or very dark image from looking foreign for that reason alone. The shared
covariance is shrunk toward a multiple of the identity (the oracle-approximating
shrinkage formula), because a few hundred images cannot pin down a 1280×1280 matrix.

Everything is kept as plain tensors and numbers, so it travels in a checkpoint that
loads with `torch.load(weights_only=True)` and goes into exported graphs unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

SPACES = ("network", "reference")  # the model's own penultimate features, or the bundled EfficientNet-Lite0's
DEFAULT_SHARE = 0.95


def unit_rows(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features.float(), dim=1, eps=1e-12)


@dataclass
class Familiarity:
    """Class means, shared precision matrix and the fitted limit on the squared distance."""

    means: torch.Tensor  # [C, D], of unit-length features
    precision: torch.Tensor  # [D, D]
    threshold: float  # squared distance at the validation share
    share: float  # share of validation images that were within the limit, by construction
    space: str  # one of SPACES
    # The reference network's input size the training images were embedded at (small images: their own
    # size, doubled); a picture is embedded the same way before it is compared. Unused by "network".
    reference_size: int = 160

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance to the nearest class mean, [N]; NaN rows stay NaN."""
        x = unit_rows(features).to(self.precision.dtype)
        xp = x @ self.precision
        mp = self.means @ self.precision
        d = (xp * x).sum(1, keepdim=True) - 2 * xp @ self.means.T + (mp * self.means).sum(1)[None]
        return d.min(dim=1).values.clamp_min(0.0)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Distance in units of the limit: above 1 means unlike the training images."""
        return self.distance(features) / max(self.threshold, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"means": self.means.float().contiguous(), "precision": self.precision.float().contiguous(),
                "threshold": float(self.threshold), "share": float(self.share), "space": self.space,
                "reference_size": int(self.reference_size)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Familiarity:
        check_dict(raw)
        return cls(raw["means"].float(), raw["precision"].float(), float(raw["threshold"]), float(raw["share"]),
                   str(raw["space"]), int(raw.get("reference_size", 160)))


class FamiliarityError(ValueError):
    """Stored familiarity statistics are unusable; the message names the field."""


def check_dict(raw: object, where: str = "familiarity") -> None:
    """Plain comparisons before any arithmetic: a checkpoint can come from anyone."""
    if not isinstance(raw, Mapping):
        raise FamiliarityError(f"{where}: must be a table")
    means, precision = raw.get("means"), raw.get("precision")
    if not isinstance(means, torch.Tensor) or means.ndim != 2 or not means.is_floating_point():
        raise FamiliarityError(f"{where}.means: must be a [classes, features] table of numbers")
    d = means.shape[1]
    if not isinstance(precision, torch.Tensor) or tuple(precision.shape) != (d, d):
        raise FamiliarityError(f"{where}.precision: must be a {d}×{d} table of numbers")
    threshold, share = raw.get("threshold"), raw.get("share")
    if not _number(threshold) or threshold <= 0:
        raise FamiliarityError(f"{where}.threshold: must be a number above zero")
    if not _number(share) or not 0 < share < 1:
        raise FamiliarityError(f"{where}.share: must be a number between 0 and 1")
    if raw.get("space") not in SPACES:
        raise FamiliarityError(f"{where}.space: must be one of {', '.join(SPACES)}")
    size = raw.get("reference_size", 160)  # older checkpoints: the one size there was
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 1024:
        raise FamiliarityError(f"{where}.reference_size: must be a whole number of pixels from 16 to 1024")
    if not bool(torch.isfinite(means).all()) or not bool(torch.isfinite(precision).all()):
        raise FamiliarityError(f"{where}: holds values that are not numbers")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def shrunk_covariance(centred: torch.Tensor) -> torch.Tensor:
    """Oracle-approximating shrinkage of the sample covariance toward (trace/D)·I."""
    n, d = centred.shape
    sample = centred.T @ centred / max(n, 1)
    mu = float(torch.trace(sample)) / d
    alpha = float((sample**2).mean())
    den = (n + 1.0) * (alpha - mu**2 / d)
    shrink = 1.0 if den <= 0 else min((alpha + mu**2) / den, 1.0)
    shrink = max(shrink, 1e-3)  # never trust a sample covariance completely: it is singular when n < d
    eye = torch.eye(d, dtype=sample.dtype)
    return (1.0 - shrink) * sample + shrink * max(mu, 1e-12) * eye


def fit_gaussians(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and the shared precision of unit-length features; classes with no image are left out."""
    x = unit_rows(features).double()
    keep = torch.isfinite(x).all(dim=1)
    x, y = x[keep], labels[keep].long()
    if len(x) < 2:
        raise FamiliarityError("familiarity: needs at least two usable training images")
    present = sorted(int(c) for c in torch.unique(y))
    means = torch.stack([x[y == c].mean(0) for c in present])
    centred = x - means[torch.searchsorted(torch.tensor(present), y)]
    precision = torch.linalg.inv(shrunk_covariance(centred))
    precision = (precision + precision.T) / 2  # exactly symmetric, so distances never go negative by rounding
    return means, precision


FOLDS = 5  # cross-fitting: each image's distance measured by Gaussians fitted on the other four fifths
MIN_CROSS_FIT = 4 * FOLDS  # fewer images than this: fit on training, limit on validation, as before


def fit_familiarity(train_features: torch.Tensor, train_labels: torch.Tensor,
                    val_features: torch.Tensor | None, *, val_labels: torch.Tensor | None = None,
                    share: float = DEFAULT_SHARE, space: str = "network") -> tuple[Familiarity, str]:
    """Gaussians and their limit from the run's own images. Returns (model, note).

    With validation labels, the Gaussians use training and validation images together and the limit
    comes from cross-fitting (`_cross_fitted_limit`). Validation images are often the training images'
    neighbours (the same slide, the same session), so a limit set on them alone flagged about one in
    eight new images of the same kind in benchmarks/unfamiliar.py, against the one in twenty intended.
    Without labels: Gaussians on training, the limit on validation. Without validation images the
    limit comes from the training images themselves, which sit closer to their own means than new
    images do: the note says so, as it flags more.
    """
    if space not in SPACES:
        raise ValueError(f"unknown feature space {space!r}; choose one of {', '.join(SPACES)}")
    held = val_features if val_features is not None and len(val_features) else None
    if held is not None and val_labels is not None and len(train_features) + len(held) >= MIN_CROSS_FIT:
        features, labels = torch.cat([train_features.float(), held.float()]), torch.cat([train_labels, val_labels])
        means, precision = fit_gaussians(features, labels)
        model = Familiarity(means, precision, _cross_fitted_limit(features, labels, share), share, space)
        return model, ""
    means, precision = fit_gaussians(train_features, train_labels)
    model = Familiarity(means, precision, 1.0, share, space)
    note = ""
    if held is None:
        held = train_features
        note = ("No validation images: the familiarity limit was set on the training images, so more new "
                "images than intended are flagged as unfamiliar.")
    model.threshold = _limit(model.distance(held), share)
    return model, note


def _cross_fitted_limit(features: torch.Tensor, labels: torch.Tensor, share: float) -> float:
    """The `share` quantile of out-of-fold distances: every image measured by Gaussians that never saw it.

    Five times as many distances as validation alone gives, from images spread over the whole set,
    so the limit says how far a new image of the same kind falls. The final Gaussians see all the
    images, a fifth more than each fold's, so new images fall a little closer to them than to the
    folds': the limit errs toward passing an ordinary image.
    """
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    distances = torch.full((len(features),), float("nan"), dtype=torch.float64)
    for fold in range(FOLDS):
        out = order[fold::FOLDS]
        keep = torch.ones(len(features), dtype=torch.bool)
        keep[out] = False
        means, precision = fit_gaussians(features[keep], labels[keep])
        distances[out] = Familiarity(means, precision, 1.0, share, "network").distance(features[out]).double()
    return _limit(distances, share)


def _limit(distances: torch.Tensor, share: float) -> float:
    d = distances[torch.isfinite(distances)]
    if not len(d):
        raise FamiliarityError("familiarity: no usable images to set the limit on")
    return max(float(torch.quantile(d.double(), share)), 1e-9)
