"""Driving the window from a script: wait for things without starving the training thread."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEventLoop, QTimer

from studio.ui.workers import live_workers


def pump(ms: int) -> None:
    """Run the event loop for ms milliseconds. (QTest.qWait holds the GIL while it sleeps, which
    starves the training thread: it made runs here seven times slower than in the real window.)"""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition: Callable[[], bool], timeout: float = 300.0, step_ms: int = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        pump(step_ms)


def settle() -> None:
    """Until debounce timers have fired, their background work has arrived and charts have drawn."""
    for _ in range(2):
        pump(300)
        wait_until(lambda: live_workers() == 0)
    pump(300)
