"""One training stage as a plain function: epochs of one optimizer over one set of trainable weights.

A run has one stage, or two (head warm-up, then everything). Everything a stage
needs arrives in a typed `StageContext`, so it can be read and tested without
the rest of the trainer; what it records after each epoch goes through the
context's `save_epoch`, so this module writes no files itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.core import distributed as dist
from studio.core.callbacks import BatchEnd, CallbackList, EpochEnd, StopToken
from studio.core.config import RunConfig, TrainConfig
from studio.core.errors import TrainingError
from studio.core.exact_head import converged, make_solver, refit_with_validation, set_standardiser, solve_epoch
from studio.core.loop import EpochStats, FeatureBatches, Schedule, compute_features, evaluate, train_one_epoch
from studio.core.randomness import RunRandom


@dataclass
class TrainState:
    """What changes epoch by epoch, and what a resume needs back."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_key: tuple[float, float] = (-1.0, float("-inf"))
    bad_epochs: int = 0

    @classmethod
    def from_training(cls, training: dict[str, Any]) -> TrainState:
        """The state a checkpoint's `training` section recorded."""
        return cls(epoch=int(training.get("epoch", 0)), history=list(training.get("history", [])),
                   best_epoch=int(training.get("best_epoch", 0)),
                   best_key=tuple(training.get("best_key", (-1.0, float("-inf")))),
                   bad_epochs=int(training.get("bad_epochs", 0)))

    def to_training(self, stage: str, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return {"epoch": self.epoch, "history": self.history, "best_epoch": self.best_epoch,
                "best_key": list(self.best_key), "bad_epochs": self.bad_epochs, "stage": stage,
                "optimizer": optimizer.state_dict()}

    def update_best(self, key: tuple[float, float]) -> bool:
        """Better accuracy, or the same accuracy with a clearly lower loss: noise must not reset patience."""
        is_best = key[0] > self.best_key[0] or (key[0] == self.best_key[0] and key[1] > self.best_key[1] + 1e-3)
        if is_best:
            self.best_key, self.best_epoch, self.bad_epochs = key, self.epoch, 0
        else:
            self.bad_epochs += 1
        return is_best


SaveEpoch = Callable[[torch.optim.Optimizer, str, bool, dict[str, Any]], None]


@dataclass
class StageContext:
    """What every stage of one run shares."""

    config: RunConfig
    model: nn.Module  # the whole model: what checkpoints hold, and what owns the parameter groups
    criterion: nn.Module
    plain_loss: nn.Module  # unweighted, for validation: comparable across imbalance settings
    autocast: Callable[[], contextlib.AbstractContextManager]
    device: torch.device
    precision: str
    state: TrainState
    callbacks: CallbackList
    stop: StopToken
    save_epoch: SaveEpoch
    resume_training: dict[str, Any] = field(default_factory=dict)
    world: int = 1
    deadline: float = 0.0  # time.time() by which training must end (the time budget); 0 = none
    random: RunRandom | None = None  # the run's own generators (dropout); augmentation seeds itself per epoch
    # Logits of images no solve that made them had seen (the exact solve's last round), by split.
    cross_fitted: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Stage:
    """One stage: what trains, on which batches, over which epochs (first exclusive, last inclusive)."""

    name: str  # "head", "last-block" or "all"
    first: int
    last: int
    net: nn.Module  # what the batches go through: the model, or only its head on precomputed features
    train: Any
    val: Any | None
    lr_scale: float | None = None  # backbone learning-rate factor; None means the config's


# From this many images the frozen backbone runs in ONNX Runtime: its export (about 1 s, once per backbone)
# is then paid back on the first run (Lite0 at 160 px: 220 images/s against 80 in PyTorch, 2 cores).
ENGINE_FROM_IMAGES = 256


def frozen_backbone_engine(model: nn.Module, image_size: int, images: int) -> Callable | None:
    """ONNX Runtime for a frozen backbone on the CPU, when enough images go through it to pay for the export."""
    if images < ENGINE_FROM_IMAGES or any(p.device.type != "cpu" for p in model.backbone.parameters()):
        return None
    from studio.core.feature_engine import frozen_engine

    return frozen_engine(model.backbone, image_size)


def feature_stage(stage: Stage, model: nn.Module, make_batches: Callable[[str, bool], Any], cfg: RunConfig,
                  sample_weights: torch.Tensor | None, engine: Callable | None = None) -> Stage:
    """The same stage on backbone features computed once: a frozen backbone over unchanging pixels.

    `engine` runs the backbone faster where given (frozen_backbone_engine); the features are the same."""
    parts = {"train": make_batches("train", False)}
    if stage.val is not None:
        parts["val"] = make_batches("val", False)
    feats = {name: compute_features(model.backbone, part, engine) for name, part in parts.items()}
    size = cfg.train.batch_size
    train = FeatureBatches(feats["train"], stage.train.labels, batch_size=size, shuffle=True,
                           sample_weights=sample_weights, seed=cfg.data.seed)
    val = FeatureBatches(feats["val"], stage.val.labels, batch_size=size) if stage.val is not None else None
    return Stage(stage.name, stage.first, stage.last, model.head, train, val, stage.lr_scale)


def make_optimizer(cfg: TrainConfig, model: nn.Module, lr_scale: float | None) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW, over the model's groups; each group remembers its base rate."""
    if cfg.optimizer == "lbfgs":
        solver = make_solver(model)
        for g in solver.param_groups:
            g["base_lr"] = g["lr"]
        return solver
    groups = model.param_groups(cfg.lr, cfg.backbone_lr_scale if lr_scale is None else lr_scale, cfg.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _restore_optimizer(ctx: StageContext, stage: Stage, optimizer: torch.optim.Optimizer) -> None:
    """A run resumed mid-stage continues with the optimizer's momentum, not a cold start."""
    training = ctx.resume_training
    if training.get("optimizer") and training.get("stage") == stage.name and ctx.state.epoch > stage.first:
        bases = [g["base_lr"] for g in optimizer.param_groups]
        optimizer.load_state_dict(training["optimizer"])
        for g, base in zip(optimizer.param_groups, bases):
            g["base_lr"] = base


def run_stage(ctx: StageContext, stage: Stage) -> str:
    """Train `stage` until its last epoch; "early-stopped" when patience ran out, "time-up" when another
    epoch would overrun the time budget, else "finished"."""
    cfg = ctx.config.train
    optimizer = make_optimizer(cfg, ctx.model, stage.lr_scale)
    _restore_optimizer(ctx, stage, optimizer)
    net = dist.wrap(stage.net, ctx.device) if ctx.world > 1 else _maybe_compiled(ctx, stage.net)
    steps = len(stage.train)
    schedule = Schedule(cfg.schedule, total_steps=steps * (stage.last - stage.first),
                        warmup_steps=int(cfg.warmup_epochs * steps), steps_per_epoch=steps,
                        step_epochs=cfg.step_epochs, step_gamma=cfg.step_gamma)
    scaler = torch.amp.GradScaler("cuda") if ctx.precision == "fp16" else None
    solving = isinstance(optimizer, torch.optim.LBFGS)
    while ctx.state.epoch < stage.last:
        _check_data_folder(ctx.config)
        # The exact solve's last round refits on validation images too, once the optimum stops moving.
        refit = solving and stage.val is not None and (ctx.state.epoch + 1 == stage.last
                                                       or _solved(ctx.state.history))
        _run_epoch(ctx, stage, net, optimizer, schedule, scaler, refit=refit)
        if refit or (solving and stage.val is None and _solved(ctx.state.history)):
            return "finished"  # the optimum does not move: more rounds would only repeat it
        # Rank 0 decides for all: a rank that stopped alone would leave the others in a collective.
        if cfg.early_stopping and dist.broadcast_flag(ctx.state.bad_epochs >= cfg.early_stopping):
            return "early-stopped"
        last_epoch = ctx.state.history[-1]["seconds"] if ctx.state.history else 0.0
        if ctx.deadline and ctx.state.epoch < stage.last and time.time() + last_epoch > ctx.deadline:
            return "time-up"
    return "finished"


def _maybe_compiled(ctx: StageContext, net: nn.Module) -> nn.Module:
    """The stage's network with its training step compiled when the run asks for it (one process only)."""
    if not ctx.config.train.compile:
        return net
    from studio.core.compiling import compiled

    ctx.callbacks.on_status("Compiling the network for faster steps; the first step waits for it")
    return compiled(net, ctx.callbacks.on_status)[0]


def _check_data_folder(cfg: RunConfig) -> None:
    """Training reads cached pixels, but a run whose images are gone can no longer be evaluated or checked."""
    root = Path(cfg.data.root).expanduser()
    if not root.is_dir():
        raise TrainingError(f"{root}: the data folder was deleted or moved during the run; "
                            "the last finished epoch's checkpoint is kept")


def _run_epoch(ctx: StageContext, stage: Stage, net: nn.Module, optimizer: torch.optim.Optimizer,
               schedule: Schedule, scaler: torch.amp.GradScaler | None, refit: bool = False) -> None:
    st, cfg = ctx.state, ctx.config.train
    epoch = st.epoch + 1
    stage.train.set_epoch(epoch)
    # Dropout draws from the run's own generator, seeded per epoch: a resumed run retraces the
    # uninterrupted one, and nothing else the program draws meanwhile can change it.
    if ctx.random is not None:
        ctx.random.start_epoch(epoch)

    def on_batch(i: int, n: int, loss: float, lr: float, ips: float) -> None:
        ctx.callbacks.on_batch_end(BatchEnd(epoch, i, n, loss, lr, ips))

    val = None
    if refit:
        if st.epoch == stage.first:
            set_standardiser(stage.net, stage.train.features.to(ctx.device))
        stats, val, held = refit_with_validation(
            stage.net, (stage.train.features.to(ctx.device), stage.train.labels.to(ctx.device)),
            (stage.val.features.to(ctx.device), stage.val.labels.to(ctx.device)), ctx.criterion, ctx.plain_loss,
            ctx.config.train.weight_decay)
        ctx.cross_fitted["val"] = held.cpu()
    elif isinstance(optimizer, torch.optim.LBFGS):
        stats = _solve(ctx, stage, optimizer)
    else:
        stats, _ = train_one_epoch(
            net, stage.train, optimizer, ctx.criterion, schedule=schedule,
            step=(st.epoch - stage.first) * len(stage.train), autocast=ctx.autocast, scaler=scaler,
            grad_clip=cfg.grad_clip, should_stop=ctx.stop, on_batch=on_batch)
    if ctx.world > 1:
        stats.loss, stats.accuracy, stats.images = dist.average_epoch(stats.loss, stats.accuracy, stats.images)
    # Validation in fp32, as prediction and evaluation run: the accuracy a run reports is the
    # accuracy the user later measures on the same images.
    if val is None and stage.val:
        val = evaluate(net, stage.val, ctx.plain_loss, autocast=contextlib.nullcontext)[0]
    st.epoch = epoch
    key = (val.accuracy, -val.loss) if val else (stats.accuracy, -stats.loss)
    if isinstance(optimizer, torch.optim.LBFGS):
        # The answer of an exact solve is where it converges, with the penalty chosen for it: picking an
        # unfinished round by validation would be early stopping by chance (photo crops: 90.8 % held out
        # from round one against 91.7 % from the solution).
        st.best_key, st.best_epoch, st.bad_epochs, is_best = key, epoch, 0, True
    else:
        is_best = st.update_best(key)
    row = _history_row(epoch, stats, val)
    st.history.append(row)
    ctx.save_epoch(optimizer, stage.name, is_best, row)
    ctx.callbacks.on_epoch_end(EpochEnd(
        epoch=epoch, epochs=cfg.epochs, train_loss=stats.loss, train_acc=stats.accuracy, val_loss=row["val_loss"],
        val_acc=row["val_acc"], lr=stats.lr, seconds=row["seconds"],
        images_per_second=stats.images / max(stats.seconds, 1e-9), is_best=is_best, stage=stage.name))


def _solved(history: list[dict[str, Any]]) -> bool:
    """The exact solve's last two rounds ended at the same loss."""
    return len(history) >= 2 and converged(history[-2]["train_loss"], history[-1]["train_loss"])


def _solve(ctx: StageContext, stage: Stage, solver: torch.optim.LBFGS) -> EpochStats:
    """An epoch of the exact solve: only on features computed once, where the whole set is one batch."""
    if not isinstance(stage.train, FeatureBatches) or ctx.world > 1:
        raise TrainingError("train.optimizer: the exact solve (lbfgs) trains only a frozen network's last layer, "
                            "on one computer and without augmentation; choose adamw or sgd")
    features, labels = stage.train.features.to(ctx.device), stage.train.labels.to(ctx.device)
    if ctx.state.epoch == stage.first:
        set_standardiser(stage.net, features)
    stats = solve_epoch(stage.net, features, labels, solver, ctx.criterion, ctx.config.train.weight_decay)
    ctx.callbacks.on_batch_end(BatchEnd(ctx.state.epoch + 1, 1, 1, stats.loss, stats.lr,
                                        stats.images / max(stats.seconds, 1e-9)))
    return stats


def _history_row(epoch: int, stats: EpochStats, val: EpochStats | None) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": stats.loss, "train_acc": stats.accuracy,
            "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
            "lr": stats.lr, "seconds": stats.seconds + (val.seconds if val else 0.0)}
