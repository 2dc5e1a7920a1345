"""`studio` with no command: open the window, optionally on a folder."""

from __future__ import annotations

import gc
import sys
import traceback
from importlib import resources

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from studio.ui.main_window import StudioWindow
from studio.ui.state import QtStudioState
from studio.ui.style import STYLE_SHEET
from studio.ui.workers import QtGarbageCollector, describe_exception, stop_all

APP_NAME = "Classification Studio"


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or [sys.argv[0] if sys.argv else "studio"])
    app.setOrganizationName(APP_NAME)
    app.setApplicationName(APP_NAME)
    app.setStyleSheet(STYLE_SHEET)
    app.setWindowIcon(app_icon())
    return app  # type: ignore[return-value]


def app_icon() -> QIcon:
    """The studio's icon at every drawn size, read from the installed package (pip, editable or bundle)."""
    icon = QIcon()
    for file in resources.files("studio").joinpath("resources/icons").iterdir():
        if file.name.endswith(".png"):
            with resources.as_file(file) as path:
                icon.addFile(str(path))
    return icon


def take_over_garbage_collection() -> QtGarbageCollector:
    """Collect garbage on the UI thread only, and leave out what startup made.

    Startup's objects (torch, matplotlib, Qt wrappers: ~10⁵ of them) live as long as the process;
    a full collection over them took ~0.3 s with the GIL held, a visible freeze during training.
    """
    gc.collect()
    gc.freeze()
    collector = QtGarbageCollector()
    collector.start()
    return collector


def run_app(folder: str | None = None) -> int:
    """Open the window (on `folder` when given) and return the exit code once it is closed."""
    app = make_app()
    state = QtStudioState()
    window = StudioWindow(state)
    previous_hook = sys.excepthook

    def show_unexpected(kind, value, tb) -> None:  # an error in a slot must reach the user, not vanish
        traceback.print_exception(kind, value, tb)
        window.show_error(describe_exception(value))

    sys.excepthook = show_unexpected
    collector = take_over_garbage_collection()
    window.show()
    if folder:
        state.set_folder(folder)
    try:
        return app.exec()
    finally:
        stop_all()
        sys.excepthook = previous_hook
        collector.stop()
        gc.unfreeze()


if __name__ == "__main__":
    sys.exit(run_app(sys.argv[1] if len(sys.argv) > 1 else None))
