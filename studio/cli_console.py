"""The console face of a training run: a progress bar and one line per epoch.

The bar is tqdm's (with its time-left estimate) and is drawn only on a
terminal; piped into a file or a log, the run is plain lines: status, one per
epoch, the result.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from studio.core.callbacks import BatchEnd, Callback, EpochEnd, RunResult, RunStarted
from studio.core.words import percent


class ConsoleCallback(Callback):
    """Prints to stderr so `--json` output on stdout stays machine-readable."""

    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar: tqdm | None = None
        self._bar_key: tuple = ()

    def _print(self, text: str) -> None:
        self._close_bar()
        print(text, file=self.stream, flush=True)

    def _show(self, key: tuple, done: int, total: int, desc: str, unit: str, postfix: str = "") -> None:
        """Move the bar for `key` (a new one when the key changes) to `done` of `total`."""
        if self._bar is None or self._bar_key != key:
            self._close_bar()
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=True,
                             mininterval=0.1)
            self._bar_key = key
        if postfix:
            self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_status(self, message: str) -> None:
        if not self.quiet:
            self._print(message)

    def on_progress(self, done: int, total: int, what: str) -> None:
        if self.quiet or not self.tty:
            return
        self._show(("progress", what), done, total, what, "img")

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
        self._show(("epoch", info.epoch), info.batch, info.batches, f"epoch {info.epoch}", "batch",
                   f"loss {info.loss:.4f}, {info.images_per_second:,.0f} img/s")

    def on_epoch_end(self, info: EpochEnd) -> None:
        if self.quiet:
            return
        val_loss = "   —  " if info.val_loss is None else f"{info.val_loss:.4f}"
        best = " *best" if info.is_best else ""
        stage = " (new last layer only)" if info.stage == "head" else ""
        train_acc, val_acc = (percent(v, width=5, missing="   —  ") for v in (info.train_acc, info.val_acc))
        self._print(f"epoch {info.epoch:>3}/{info.epochs}  train loss {info.train_loss:.4f} acc {train_acc}"
                    f"  val loss {val_loss} acc {val_acc}  lr {info.lr:.2e}  {info.seconds:.1f}s"
                    f"  {info.images_per_second:,.0f} img/s{stage}{best}")

    def on_finished(self, result: RunResult) -> None:
        if self.quiet:
            return
        self._print(f"{result.status}: best validation accuracy {percent(result.best_val_acc)} at epoch "
                    f"{result.best_epoch}; checkpoint {result.checkpoint}")
        if result.test_acc is not None:
            self._print(f"held-out test accuracy {percent(result.test_acc)}")
        if result.message:
            self._print(result.message)

    def on_failed(self, message: str) -> None:
        self._close_bar()  # the CLI prints the error once, as its last line
