"""Opening and dropping image files, the same way wherever a pane takes pictures (Inspect, Predict)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData

from studio.core.images import IMAGE_EXTENSIONS

# The file dialogs' filter: the images the studio reads first, anything else on request.
IMAGE_FILES = "Images (" + " ".join(f"*{e}" for e in IMAGE_EXTENSIONS) + ");;All files (*)"


def dropped_paths(mime: QMimeData | None, *, files_only: bool = False) -> list[str]:
    """The local paths a drop or a paste names (only existing files with `files_only`), in their order."""
    if mime is None or not mime.hasUrls():
        return []
    paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
    return [p for p in paths if Path(p).is_file()] if files_only else paths
