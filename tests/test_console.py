"""The CLI's run output: tqdm's bar with time left on a terminal, plain lines anywhere else."""

from __future__ import annotations

import io

from studio.cli_console import ConsoleCallback
from studio.core.callbacks import BatchEnd, EpochEnd


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _epoch(console: ConsoleCallback) -> None:
    for i in range(1, 6):
        console.on_batch_end(BatchEnd(epoch=1, batch=i, batches=5, loss=0.5, lr=1e-3, images_per_second=100.0))
    console.on_epoch_end(EpochEnd(epoch=1, epochs=3, train_loss=0.5, train_acc=0.8, val_loss=0.6, val_acc=0.75,
                                  lr=1e-3, seconds=1.0, images_per_second=100.0, is_best=True, stage="all"))


def test_terminal_gets_a_bar_with_time_left() -> None:
    out = Terminal()
    _epoch(ConsoleCallback(stream=out))
    text = out.getvalue()
    assert "epoch 1:" in text and "/5 [" in text and "<" in text  # tqdm's bar: "elapsed<left"
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("Epoch 1/3") and last.endswith("★ best so far")  # the bar is gone before the epoch line
    assert "accuracy 75.0%" in last


def test_a_pipe_gets_plain_lines_only() -> None:
    out = io.StringIO()
    console = ConsoleCallback(stream=out)
    console.on_progress(3, 10, "decoding images")
    _epoch(console)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Epoch 1/3")
    assert "\r" not in out.getvalue() and "\033" not in out.getvalue()
