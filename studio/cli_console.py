"""The console face of a training run: a progress bar and one line per epoch.

The bar is tqdm's (with its time-left estimate) and is drawn only on a
terminal; piped into a file or a log, the run is plain lines: status, one per
epoch, the result.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from studio.core.callbacks import BatchEnd, Callback, EpochEnd, RunResult, RunStarted
from studio.core.run_words import epoch_line, finished_lines, started_lines


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
        for line in started_lines(info):
            self._print(line)

    def on_batch_end(self, info: BatchEnd) -> None:
        if self.quiet or not self.tty:
            return
        self._show(("epoch", info.epoch), info.batch, info.batches, f"epoch {info.epoch}", "batch",
                   f"loss {info.loss:.4f}, {info.images_per_second:,.0f} img/s")

    def on_epoch_end(self, info: EpochEnd) -> None:
        if not self.quiet:
            self._print(epoch_line(info))

    def on_finished(self, result: RunResult) -> None:
        if self.quiet:
            return
        for line in finished_lines(result):
            self._print(line)
        if result.message:
            self._print(result.message)

    def on_failed(self, message: str) -> None:
        self._close_bar()  # the CLI prints the error once, as its last line
