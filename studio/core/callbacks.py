"""What the trainer tells the world, and how the world tells it to stop.

The trainer is plain code that calls hooks with small data objects; the CLI
passes a console callback, the window one that emits Qt signals, a test one
that records. A subclass overrides only the hooks it needs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class RunStarted:
    run_dir: str
    classes: list[str]
    train_images: int
    val_images: int
    test_images: int
    device: str  # "cpu", "cuda:0 (NVIDIA H100)", ...
    precision: str  # "fp32", "bf16", "fp16"
    epochs: int
    start_epoch: int  # > 0 when resuming
    batches_per_epoch: int
    parameters: int
    trainable_parameters: int
    notes: list[str] = field(default_factory=list)  # plain sentences: skipped images, cached features, ...


@dataclass
class BatchEnd:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int
    loss: float
    lr: float
    images_per_second: float


@dataclass
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float
    images_per_second: float
    is_best: bool
    stage: str  # "head" during a two-stage warm-up, else "all"

    def as_row(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "train_loss": self.train_loss, "train_acc": self.train_acc,
            "val_loss": self.val_loss, "val_acc": self.val_acc, "lr": self.lr, "seconds": self.seconds,
        }


@dataclass
class RunResult:
    run_dir: str
    status: str  # "finished", "stopped", "early-stopped"
    epochs_done: int
    best_epoch: int
    best_val_acc: float | None
    best_val_loss: float | None
    test_acc: float | None
    seconds: float
    checkpoint: str
    history: list[dict[str, Any]]
    message: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Back from `to_dict` (as the window's worker signal carries it)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        """Test accuracy first: measured on images nothing in the run chose settings by, it is the figure to trust."""
        trusted = "test_acc" if self.test_acc is not None else "best_val_acc"
        return {"test_acc": self.test_acc, "figure_to_trust": trusted, **self.__dict__}


class Callback:
    """No-op hooks; override what you need. Called on the training thread."""

    def on_status(self, message: str) -> None:  # preparation steps: scanning, decoding, measuring
        pass

    def on_progress(self, done: int, total: int, what: str) -> None:
        pass

    def on_run_start(self, info: RunStarted) -> None:
        pass

    def on_batch_end(self, info: BatchEnd) -> None:
        pass

    def on_epoch_end(self, info: EpochEnd) -> None:
        pass

    def on_finished(self, result: RunResult) -> None:
        pass

    def on_failed(self, message: str) -> None:
        pass


class CallbackList(Callback):
    def __init__(self, callbacks: list[Callback] | None = None) -> None:
        self.callbacks = list(callbacks or [])

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            hooks = [getattr(cb, name) for cb in object.__getattribute__(self, "callbacks")]

            def fan_out(*args: Any, **kwargs: Any) -> None:
                for hook in hooks:
                    hook(*args, **kwargs)

            return fan_out
        return object.__getattribute__(self, name)


class StopToken:
    """Thread-safe stop and pause flags, checked by the trainer at every batch."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to notice it should stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self) -> None:
        while not self._running.wait(timeout=0.2):
            pass

    def __call__(self) -> bool:
        """As a `should_stop` function: blocks while paused, then says whether to stop."""
        self.wait_if_paused()
        return self._stop.is_set()
