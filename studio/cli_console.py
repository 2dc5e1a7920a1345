"""The console face of a training run: a progress bar and one line per epoch."""

from __future__ import annotations

import sys
import time

from studio.core.callbacks import BatchEnd, Callback, EpochEnd, RunResult, RunStarted


def _pct(v: float | None) -> str:
    return "   —  " if v is None else f"{100 * v:5.1f}%"


class ConsoleCallback(Callback):
    """Prints to stderr so `--json` output on stdout stays machine-readable."""

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = 0.0

    def _print(self, text: str) -> None:
        if self.tty:
            text = "\r\033[K" + text
        print(text, file=self.stream, flush=True)

    def on_status(self, message: str) -> None:
        if not self.quiet:
            self._print(message)

    def on_progress(self, done: int, total: int, what: str) -> None:
        if self.quiet or not self.tty:
            return
        print(f"\r\033[K{what} {done}/{total}", end="", file=self.stream, flush=True)

    def on_run_start(self, info: RunStarted) -> None:
        if self.quiet:
            return
        self._print(f"Run folder: {info.run_dir}")
        self._print(f"{len(info.classes)} classes; {info.train_images} training, {info.val_images} validation, "
                    f"{info.test_images} test images; {info.device}, {info.precision}; "
                    f"{info.parameters:,} parameters")
        for note in info.notes:
            self._print(f"note: {note}")
        if info.start_epoch:
            self._print(f"Resuming after epoch {info.start_epoch}")

    def on_batch_end(self, info: BatchEnd) -> None:
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1 and info.batch != info.batches:
            return
        self._last_draw = now
        width = 30
        filled = int(width * info.batch / max(1, info.batches))
        bar = "█" * filled + "·" * (width - filled)
        print(f"\r\033[Kepoch {info.epoch} {bar} {info.batch}/{info.batches} loss {info.loss:.4f} "
              f"{info.images_per_second:,.0f} img/s", end="", file=self.stream, flush=True)

    def on_epoch_end(self, info: EpochEnd) -> None:
        if self.quiet:
            return
        val_loss = "   —  " if info.val_loss is None else f"{info.val_loss:.4f}"
        best = " *best" if info.is_best else ""
        stage = " (head warm-up)" if info.stage == "head" else ""
        self._print(f"epoch {info.epoch:>3}/{info.epochs}  train loss {info.train_loss:.4f} acc {_pct(info.train_acc)}"
                    f"  val loss {val_loss} acc {_pct(info.val_acc)}  lr {info.lr:.2e}  {info.seconds:.1f}s"
                    f"  {info.images_per_second:,.0f} img/s{stage}{best}")

    def on_finished(self, result: RunResult) -> None:
        if self.quiet:
            return
        self._print(f"{result.status}: best validation accuracy {_pct(result.best_val_acc).strip()} at epoch "
                    f"{result.best_epoch}; checkpoint {result.checkpoint}")
        if result.test_acc is not None:
            self._print(f"held-out test accuracy {_pct(result.test_acc).strip()}")
        if result.message:
            self._print(result.message)

    def on_failed(self, message: str) -> None:
        pass  # the CLI prints the error once, as its last line
