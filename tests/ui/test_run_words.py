"""A run reads the same in `studio train` and on the Train page: one wording, in core, for every event."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

from studio.cli_console import ConsoleCallback
from studio.core.callbacks import EpochEnd, RunResult, RunStarted
from studio.core.run_words import STOPPING
from studio.ui.panes.train_pane import TrainPane
from studio.ui.state import QtStudioState

STARTED = RunStarted(run_dir="/runs/r1", classes=["cat", "dog", "owl"], train_images=1200, val_images=300,
                     test_images=150, device="cpu", precision="fp32", epochs=10, start_epoch=4,
                     batches_per_epoch=38, parameters=12345, trainable_parameters=12000,
                     notes=["2 images could not be read and were left out"])
EPOCHS = [EpochEnd(epoch=5, epochs=10, train_loss=0.51234, train_acc=0.8, val_loss=0.6, val_acc=0.75, lr=1e-3,
                   seconds=1.25, images_per_second=960.0, is_best=True, stage="head"),
          EpochEnd(epoch=6, epochs=10, train_loss=0.4, train_acc=0.9, val_loss=None, val_acc=None, lr=1e-3,
                   seconds=2.0, images_per_second=1500.0, is_best=False, stage="all")]
RESULT = RunResult(run_dir="/runs/r1", status="early-stopped", epochs_done=6, best_epoch=5, best_val_acc=0.75,
                   best_val_loss=0.6, test_acc=0.7333, seconds=12.0, checkpoint="/runs/r1/best.pt", history=[])


def _cli_lines() -> list[str]:
    out = io.StringIO()  # not a terminal: plain lines, no bar
    console = ConsoleCallback(stream=out)
    console.on_run_start(STARTED)
    for epoch in EPOCHS:
        console.on_epoch_end(epoch)
    console.on_finished(RESULT)
    return out.getvalue().splitlines()


def _window_lines(qtbot, tmp_path: Path) -> tuple[list[str], str]:
    pane = TrainPane(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(pane)
    pane._on_run_started(dataclasses.asdict(STARTED))  # what TrainWorker's signals carry
    for epoch in EPOCHS:
        pane._on_epoch(dataclasses.asdict(epoch))
    pane._on_finished(RESULT.to_dict())
    lines = [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in pane.log.toPlainText().splitlines()]
    return lines, pane.banner.label.text()


def test_cli_and_window_say_the_same_sentences(qtbot, tmp_path: Path) -> None:
    cli = _cli_lines()
    window, banner = _window_lines(qtbot, tmp_path)
    # The window logs the ending on one line; the console prints it line by line.
    assert window[:-1] == cli[:len(window) - 1]
    assert window[-1] == " ".join(cli[len(window) - 1:])
    assert cli[0] == "Run folder: /runs/r1"
    assert cli[1] == "3 classes; 1,200 training, 300 validation, 150 test images; cpu, fp32; 12,345 parameters"
    assert cli[2] == "Note: 2 images could not be read and were left out"
    assert cli[3] == "Continuing after epoch 4, up to epoch 10."
    assert cli[4] == ("Epoch 5/10 (new last layer only): train loss 0.5123, accuracy 80.0%; validation loss 0.6000, "
                      "accuracy 75.0%; 1.2 s, 960 images/s  ★ best so far")
    assert cli[5] == ("Epoch 6/10: train loss 0.4000, accuracy 90.0%; validation loss —, accuracy —; 2.0 s, "
                      "1,500 images/s")
    assert cli[6] == ("Stopped early (no more progress) after 6 epochs: best validation accuracy 75.0% at epoch 5. "
                      "Held-out test accuracy: 73.3%.")
    assert cli[7] == "Model saved in /runs/r1/best.pt"
    assert banner == "\n".join(cli[6:])


def test_stop_request_is_logged_in_the_shared_words(qtbot, tmp_path: Path) -> None:
    pane = TrainPane(QtStudioState(project_dir=tmp_path / "project"))
    qtbot.addWidget(pane)

    class Worker:
        def stop(self) -> None:
            pass

    pane.worker = Worker()  # type: ignore[assignment]
    pane._on_stop()
    assert pane.log.toPlainText().endswith(STOPPING)
