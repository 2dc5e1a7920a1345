"""Where the studio keeps things per user: caches, and the default home of projects.

Every per-user folder comes from platformdirs, so it is right on Windows and
macOS as well as under XDG; nothing here builds such a path by hand. (Downloaded
ImageNet weights stay in torchvision's own cache, which torch decides.)

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


def documents_folder() -> Path:
    """The user's Documents folder (as the system names it), or home when there is none."""
    from platformdirs import user_documents_path

    docs = user_documents_path()
    return docs if docs.is_dir() else Path.home()
