"""What a training run says about itself, worded once for the command line and the window.

A run started, an epoch finished, a stop asked for, the time budget reached, a run failed or
finished with its figure: `studio train` prints these lines and the Train page logs and shows
the very same ones, so a user who reads one never has to translate the other.
"""

from __future__ import annotations

from studio.core.callbacks import EpochEnd, RunResult, RunStarted
from studio.core.words import count, percent

# How each recorded status reads in a run list (`studio runs`, the Train page's table).
STATUS_WORDS = {"running": "running", "finished": "finished", "stopped": "stopped", "early-stopped": "stopped early",
                "failed": "failed", "interrupted": "interrupted"}
_ENDINGS = {"finished": "Finished", "stopped": "Stopped", "early-stopped": "Stopped early (no more progress)"}

STOPPING = "Stopping after the current batch; the last finished epoch's checkpoint is kept."


def status_word(status: str) -> str:
    return STATUS_WORDS.get(status, status)


def started_lines(info: RunStarted) -> list[str]:
    """Where the run writes, what it trains on and with what, the notes, and where a continued run picks up."""
    lines = [f"Run folder: {info.run_dir}",
             f"{count(len(info.classes), 'class', 'classes')}; {info.train_images:,} training, "
             f"{info.val_images:,} validation, {info.test_images:,} test images; {info.device}, {info.precision}; "
             f"{info.parameters:,} parameters"]
    lines += [f"Note: {note}" for note in info.notes]
    if info.start_epoch:
        lines.append(f"Continuing after epoch {info.start_epoch}, up to epoch {info.epochs}.")
    return lines


def epoch_line(info: EpochEnd) -> str:
    """One line per epoch: the losses and accuracies on both sides, the time it took, whether it is the best."""
    stage = " (new last layer only)" if info.stage == "head" else ""
    val_loss = "—" if info.val_loss is None else f"{info.val_loss:.4f}"
    best = "  ★ best so far" if info.is_best else ""
    return (f"Epoch {info.epoch}/{info.epochs}{stage}: train loss {info.train_loss:.4f}, accuracy "
            f"{percent(info.train_acc)}; validation loss {val_loss}, accuracy {percent(info.val_acc)}; "
            f"{info.seconds:.1f} s, {info.images_per_second:,.0f} images/s{best}")


def time_up_sentence(epoch: int, epochs: int) -> str:
    return (f"Training ended at epoch {epoch} of {epochs} to stay within the time budget; the best epoch's weights "
            "are kept.")


def finished_lines(result: RunResult) -> list[str]:
    """How it ended and the figure to trust, then where the model is.

    `result.message` is not among them: how to continue a stopped run differs between the window
    (a button) and the command line (`--resume`), so each face adds its own.
    """
    ending = _ENDINGS.get(result.status, result.status)
    lines = [f"{ending} after {count(result.epochs_done, 'epoch')}: best validation accuracy "
             f"{percent(result.best_val_acc)} at epoch {result.best_epoch}."
             + (f" Held-out test accuracy: {percent(result.test_acc)}." if result.test_acc is not None else "")]
    if result.epochs_done:
        lines.append(f"Model saved in {result.checkpoint}")
    return lines


def failed_line(message: str) -> str:
    return f"Failed: {message}"
