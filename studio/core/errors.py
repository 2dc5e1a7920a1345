"""The exceptions whose message is written for the user, gathered for front ends.

A front end shows these as they are (one line, no traceback); anything else
is a bug and is reported as such.
"""

from __future__ import annotations


class TrainingError(RuntimeError):
    """A run could not go on; the message is meant for the user as it stands."""


def user_errors() -> tuple[type[BaseException], ...]:
    from studio.core.atomic import StorageError
    from studio.core.checkpoint import CheckpointError
    from studio.core.config import ConfigError
    from studio.core.dataset import DatasetError
    from studio.core.evaluate import EvaluationError
    from studio.core.export import ExportError
    from studio.core.images import ImageError
    from studio.core.project import ProjectError
    from studio.core.weights import WeightsUnavailable

    return (ConfigError, DatasetError, ImageError, CheckpointError, TrainingError, WeightsUnavailable,
            EvaluationError, ExportError, ProjectError, StorageError)
