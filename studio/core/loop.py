"""The inner loop: batches, learning-rate schedule, one epoch, evaluation.

Written as plain functions in the manner of torchvision's reference trainer,
so each can be read and tested alone; `studio.core.train` wires them into a run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from studio.core.augment import augment_batch, normalize_batch
from studio.core.cache import ImageCache
from studio.core.config import TrainConfig
from studio.core.devices import (  # noqa: F401  (re-exported: device choice lived here before)
    autocast_for,
    cpu_has_fast_bf16,
    describe_device,
    pick_device,
    pick_precision,
)
from studio.core.errors import Cancelled, NonFiniteLoss

# ---------------------------------------------------------------------------------------------- batches


class _Batches:
    """Order and count of batches, shared by pixel and feature batches."""

    def __init__(self, count: int, batch_size: int, *, shuffle: bool, sample_weights: torch.Tensor | None,
                 seed: int, rank: int = 0, world: int = 1) -> None:
        # Under torchrun each rank takes every world-th image of the same permutation, like DistributedSampler.
        self.rank, self.world, self.total = rank, world, count
        count = count // world if world > 1 else count
        self.count, self.batch_size = count, batch_size
        self.shuffle, self.sample_weights, self.seed, self.epoch = shuffle, sample_weights, seed, 0
        training = shuffle or sample_weights is not None
        # In training, a last batch of one image would make BatchNorm fail: drop it (it is reshuffled next epoch).
        self.drop_last = training and count % batch_size == 1 and count > 1

    def __len__(self) -> int:
        return self.count // self.batch_size if self.drop_last else math.ceil(self.count / self.batch_size)

    @property
    def images(self) -> int:
        """How many images one pass yields at most (this rank's share)."""
        return self.count

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> Iterator[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, self.total, replacement=True, generator=g)
        else:
            order = torch.randperm(self.total, generator=g) if self.shuffle else torch.arange(self.total)
        if self.world > 1:
            order = order[self.rank::self.world][:self.count]
        for b in range(len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]


class PixelBatches(_Batches):
    """Batches straight from the decode cache: index, augment per image, normalize, move.

    No DataLoader workers: on a couple of cores they compete with the model
    for the same CPU and gain nothing (measured), and the cache already
    removed the decoding they would hide.
    """

    def __init__(
        self, cache: ImageCache, positions: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
        mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, transform=None,
        shuffle: bool = False, sample_weights: torch.Tensor | None = None, channels_last: bool = False,
        seed: int = 0, rank: int = 0, world: int = 1,
    ) -> None:
        super().__init__(len(positions), batch_size, shuffle=shuffle, sample_weights=sample_weights, seed=seed,
                         rank=rank, world=world)
        self.cache, self.positions, self.labels = cache, positions, labels
        self.mean, self.std, self.device = mean, std, device
        self.transform, self.channels_last = transform, channels_last

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # The run's own augmentation draws, from (seed, epoch, rank): nothing else in the program can
        # change them, and a resumed run repeats what an unbroken one would have drawn.
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch * 7919 + self.rank * 131 + 17) % 2**63)
        for sel in self._batches():
            pixels = augment_batch(self.cache.take(self.positions[sel]), self.transform, g)
            x = normalize_batch(pixels.to(self.device, non_blocking=True), self.mean, self.std,
                                channels_last=self.channels_last)
            yield x, self.labels[sel].to(self.device, non_blocking=True)


class FeatureBatches(_Batches):
    """Batches of precomputed backbone features, for a frozen backbone with no pixel augmentation."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, *, batch_size: int, shuffle: bool = False,
                 sample_weights: torch.Tensor | None = None, seed: int = 0) -> None:
        super().__init__(len(labels), batch_size, shuffle=shuffle, sample_weights=sample_weights, seed=seed)
        self.features, self.labels = features, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for sel in self._batches():
            yield self.features[sel], self.labels[sel]


class Rows:
    """Per-batch results (features, logits, predicted classes) written into one tensor made at the first batch.

    Keeping each batch's small result in a list until the end pins the heap pages around it, which the
    batch's large activations used and freed: the process grew by ~1 GB over a final pass of 20,000
    images at 64 px and held it (measured; the results themselves were 10 MB). Written in place, the
    results cost their own size. `capacity` is how many rows are expected (the split's image count); more
    still fit, at the cost of a copy.
    """

    def __init__(self, capacity: int = 0) -> None:
        self.capacity, self.filled = capacity, 0
        self.data: torch.Tensor | None = None

    def add(self, batch: torch.Tensor) -> None:
        batch = batch.detach().cpu()
        need = self.filled + len(batch)
        if self.data is None or need > len(self.data):
            grown = torch.empty((max(self.capacity, need, 2 * self.filled), *batch.shape[1:]), dtype=batch.dtype)
            if self.data is not None:
                grown[:self.filled] = self.data[:self.filled]
            self.data = grown
        self.data[self.filled:need] = batch
        self.filled = need

    def result(self, empty: torch.Tensor) -> torch.Tensor:
        """The rows written, or `empty` when no batch came."""
        return self.data[:self.filled] if self.data is not None else empty


@torch.no_grad()
def compute_features(backbone: nn.Module, batches: PixelBatches,
                     engine: Callable[[np.ndarray], np.ndarray] | None = None) -> torch.Tensor:
    """The frozen backbone's features, in fp32 as prediction computes them.

    The head is then trained and validated on exactly the numbers it will later be given:
    features made under bf16 autocast differ from the fp32 ones by up to a percent, so a
    validation on them would not be the accuracy the user later measures. Computed once
    per image, so fp32 costs one pass, not one per epoch.
    """
    backbone.eval()
    out = Rows(getattr(batches, "images", 0))
    for x, _ in batches:
        if engine is not None:  # the same backbone run by a faster engine (feature_engine.frozen_engine)
            out.add(torch.from_numpy(engine(x.float().contiguous().cpu().numpy())))
        else:
            out.add(backbone(x).float())
    return out.result(torch.zeros(0))


# ---------------------------------------------------------------------------------------------- recipe


def make_criterion(train: TrainConfig, train_labels: torch.Tensor, n_classes: int, device: torch.device
                   ) -> tuple[nn.Module, torch.Tensor | None]:
    """The training loss, and per-image sampling weights when the sampler balances classes instead."""
    counts = torch.bincount(train_labels, minlength=n_classes).double().clamp_min(1)
    weights = sample_weights = None
    if train.imbalance == "weighted-loss":
        weights = (counts.sum() / (n_classes * counts)).float().to(device)
    elif train.imbalance == "balanced-sampler":
        sample_weights = (1.0 / counts)[train_labels].double()
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=train.label_smoothing), sample_weights


def plan_stages(mode: str, epochs: int, head_epochs: int) -> list[tuple[str, int, int]]:
    """(what trains, first epoch, end epoch) per stage; two-stage warms the new head up first."""
    if mode == "two-stage":
        head = min(head_epochs, epochs - 1) if epochs > 1 else epochs
        return [("head", 0, head), ("all", head, epochs)] if head else [("all", 0, epochs)]
    return [({"head": "head", "last-block": "last-block"}.get(mode, "all"), 0, epochs)]


# ---------------------------------------------------------------------------------------------- schedule


@dataclass
class Schedule:
    """Learning-rate factor as a pure function of the step: nothing to pickle, trivially resumable."""

    kind: str
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    step_epochs: int = 10
    step_gamma: float = 0.1

    def factor(self, step: int) -> float:
        total = max(1, self.total_steps)
        if self.kind == "onecycle":
            peak = self.warmup_steps or max(1, int(0.3 * total))
            if step < peak:
                return 0.04 + 0.96 * step / peak
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - peak) / max(1, total - peak))))
        if step < self.warmup_steps:
            return 0.01 + 0.99 * step / self.warmup_steps
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, total - self.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if self.kind == "step":
            return self.step_gamma ** ((step // max(1, self.steps_per_epoch)) // self.step_epochs)
        return 1.0


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"] if optimizer.param_groups else 0.0


# ---------------------------------------------------------------------------------------------- epochs


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    images: int
    seconds: float
    lr: float


def train_one_epoch(
    model: nn.Module, batches, optimizer: torch.optim.Optimizer, criterion: nn.Module, *, schedule: Schedule,
    step: int, autocast, scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0,
    should_stop: Callable[[], bool] | None = None,
    on_batch: Callable[[int, int, float, float, float], None] | None = None,
) -> tuple[EpochStats, int]:
    """One pass over `batches`; returns the epoch's statistics and the global step reached.

    Raises `Cancelled` at a batch boundary when `should_stop()` says so, and
    `NonFiniteLoss` the moment the loss is NaN or infinite.
    """
    model.train()
    start = last_report = time.perf_counter()
    total_loss = correct = None  # running sums kept on the device: no host sync per batch on a GPU
    seen = 0
    lr = 0.0
    n_batches = len(batches)
    for i, (x, y) in enumerate(batches, start=1):
        if should_stop and should_stop():
            raise Cancelled()
        lr = apply_lr(optimizer, schedule.factor(step))
        with autocast():
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        step += 1
        batch_loss = loss.detach()
        hits = (logits.detach().argmax(1) == y).sum()
        total_loss = batch_loss.double() * len(y) if total_loss is None else total_loss + batch_loss.double() * len(y)
        correct = hits if correct is None else correct + hits
        seen += len(y)
        now = time.perf_counter()
        # Reading a value forces a host sync: every batch on the CPU (free), a few times a second on a GPU.
        if x.device.type == "cpu" or i == n_batches or now - last_report >= 0.1:
            last_report = now
            if not torch.isfinite(total_loss):  # a NaN anywhere in the epoch poisons the running sum
                raise NonFiniteLoss(f"batch {i}")
            if on_batch:
                on_batch(i, n_batches, float(batch_loss), lr, seen / max(now - start, 1e-9))
    seconds = time.perf_counter() - start
    loss_sum = float(total_loss) if total_loss is not None else 0.0
    hits_sum = int(correct) if correct is not None else 0
    return EpochStats(loss_sum / max(seen, 1), hits_sum / max(seen, 1), seen, seconds, lr), step


@torch.no_grad()
def evaluate(model: nn.Module, batches, criterion: nn.Module, *, autocast) -> tuple[EpochStats, torch.Tensor]:
    """Loss, accuracy and the predicted class of every image, in the order of `batches`."""
    model.eval()
    start = time.perf_counter()
    total_loss = 0.0
    preds = Rows(getattr(batches, "images", 0))
    seen = correct = 0
    for x, y in batches:
        with autocast():
            logits = model(x)
        logits = logits.float()
        total_loss += float(criterion(logits, y)) * len(y)
        p = logits.argmax(1)
        preds.add(p)
        correct += int((p == y).sum())
        seen += len(y)
    stats = EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start, 0.0)
    return stats, preds.result(torch.zeros(0, dtype=torch.long))
