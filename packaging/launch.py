"""Entry point of the desktop bundle: the same `studio` command as `pip install` gives.

`studio` opens the window; `studio train ...`, `studio doctor`, ... work inside the bundle too.
STUDIO_SMOKE_START=1 opens the window, lets it draw once, prints the seconds since launch and
quits: the build script measures start-up with it, without a person to close the window.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

STARTED = time.perf_counter()


def smoke_start() -> int:
    from studio.core.display import check_window_can_start

    check_window_can_start()
    from PySide6.QtCore import QTimer

    from studio.ui.app import make_app
    from studio.ui.main_window import StudioWindow
    from studio.ui.state import QtStudioState

    app = make_app()
    window = StudioWindow(QtStudioState())
    window.show()
    QTimer.singleShot(0, app.quit)  # after the first pass of the event loop: the window has drawn
    app.exec()
    print(f"window shown after {time.perf_counter() - STARTED:.2f} s")
    window.close()
    return 0


if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader workers re-enter this executable
    if os.environ.get("STUDIO_SMOKE_START") == "1":
        sys.exit(smoke_start())
    from studio.cli import main

    sys.exit(main())
