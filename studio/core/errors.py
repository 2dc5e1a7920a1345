"""Every exception the engine raises on purpose, in one leaf module.

The ones in `USER_ERRORS` carry a message written for the person at the
keyboard: a front end shows it as it is (one line, no traceback); anything
else is a bug and is reported as such. Kept free of torch and of every other
studio module but `atomic` (itself stdlib only), so that the CLI's `--help`
and a front end's error handling cost nothing to import, and so that any
module can import its exceptions from here without an import circle. The
modules that used to define these still re-export them under the old names.
"""

from __future__ import annotations

from pathlib import Path

from studio.core.atomic import StorageError


class ConfigError(ValueError):
    """A config value is out of range; `field` names it the way a user types it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


class DatasetError(Exception):
    """The folder as a whole cannot be used; the message names it and says what to do."""


class ScanCancelled(DatasetError):
    """`should_stop` asked the scan to end early; nothing partial is returned."""


class Cancelled(Exception):
    """The user asked to stop; not an error."""


class ImageError(Exception):
    """A file that cannot become pixels; `reason` is short enough for a table cell."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class CheckpointError(Exception):
    """A checkpoint cannot be used; the message names the file and the reason."""


class TrainingError(RuntimeError):
    """A run could not go on; the message is meant for the user as it stands."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: training cannot recover by itself."""


class WeightsUnavailable(RuntimeError):
    """Pretrained weights cannot be had on this machine right now.

    The message is written for the person at the keyboard: what is missing,
    where it goes, where to get it, and what else would work. The parts are
    kept as attributes so the window can lay them out (and offer a button).
    """

    def __init__(self, message: str, *, arch: str = "", filename: str = "", folder: str = "", url: str = "") -> None:
        super().__init__(message)
        self.arch = arch
        self.filename = filename
        self.folder = folder
        self.url = url


class WeightsFileError(WeightsUnavailable, ValueError):
    """A weights file the user named cannot be used: missing, unreadable, refused as unsafe, or for another network.

    A WeightsUnavailable, so front ends show it as a user's problem; a ValueError, because it is a bad input.
    """


class EvaluationError(Exception):
    """A run cannot be evaluated; the message says why in words meant for the user."""


class ExportError(Exception):
    """An export could not be made; the message is meant for the user as it stands."""


class ProjectError(Exception):
    """The project database cannot be used; the message names it and says what to do."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, DatasetError, ImageError, CheckpointError, TrainingError, WeightsUnavailable, EvaluationError,
    ExportError, ProjectError, StorageError,
)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types whose message a front end shows as it is."""
    return USER_ERRORS
