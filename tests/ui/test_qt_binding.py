"""The Qt binding itself: a broken wheel must fail here, not abort a user's session."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on: the count cannot "
                    "change there, and the dropped references can no longer abort the app")
def test_void_qt_calls_keep_none_alive() -> None:
    """PySide6 6.12.0 on Python < 3.12 dropped a reference to None per void call until Python aborted."""
    from PySide6.QtCore import QRect

    rect = QRect()
    before = sys.getrefcount(None)
    for _ in range(1000):
        rect.setWidth(1)
    assert before - sys.getrefcount(None) < 10
