"""Where the studio keeps things that are not the user's documents.

Decoded-image caches are large and can always be rebuilt, so they belong in the
operating system's cache folder (which backup tools skip and users expect to be
clearable), never beside the user's projects in ~/Documents.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "classification-studio"


def cache_folder() -> Path:
    """The per-user cache folder ($STUDIO_CACHE_DIR overrides, e.g. for a fast scratch disk)."""
    override = os.environ.get("STUDIO_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME, appauthor=False)
