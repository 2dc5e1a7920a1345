"""The Help menu: a short guide, a glossary, the project folder, and About with versions.

The words come from `studio.core.help_text`; this module only shows them. Dialogs are modeless
text windows, kept as attributes so a test (or a second click) finds the one already open.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMainWindow, QTextBrowser, QVBoxLayout, QWidget

from studio.core.help_text import GLOSSARY, GUIDE, versions


def guide_html() -> str:
    items = "".join(f"<li><b>{html.escape(page)}:</b> {html.escape(text)}</li>" for page, text in GUIDE)
    return f"<h3>From a folder of images to a model</h3><ol>{items}</ol>"


def glossary_html() -> str:
    rows = "".join(f"<dt><b>{html.escape(term)}</b></dt><dd>{html.escape(text)}</dd>"
                   for term, text in GLOSSARY.items())
    return f"<h3>Words the studio uses</h3><dl>{rows}</dl>"


def about_html(device: str) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>&nbsp;{html.escape(v)}</td></tr>"
                   for k, v in versions({"Computing device": device}).items())
    return ("<h3>Classification Studio</h3><p>Turns a folder of labelled images into an image classifier, "
            f"without code.</p><table>{rows}</table>")


class QtTextWindow(QDialog):
    """A small, modeless window of formatted text with a Close button."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(620, 520)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(text)
        layout.addWidget(self.browser, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

    def text(self) -> str:
        return self.browser.toPlainText()


class HelpMenu:
    """Adds "&Help" to a main window; `open_url` is replaceable so tests open nothing."""

    def __init__(self, window: QMainWindow, project_dir: Callable[[], object], device: Callable[[], str]) -> None:
        self.window, self._project_dir, self._device = window, project_dir, device
        self.open_url: Callable[[QUrl], object] = QDesktopServices.openUrl
        self.windows: dict[str, QtTextWindow] = {}
        menu = window.menuBar().addMenu("&Help")
        self.menu = menu
        self.guide_action = menu.addAction("&Guide: from images to a model")
        self.guide_action.triggered.connect(lambda: self.show("Guide", guide_html()))
        self.glossary_action = menu.addAction("G&lossary")
        self.glossary_action.triggered.connect(lambda: self.show("Glossary", glossary_html()))
        menu.addSeparator()
        self.folder_action = menu.addAction("Open the &project folder")
        self.folder_action.setToolTip("Where runs, checkpoints and reports are kept")
        self.folder_action.triggered.connect(self.open_project_folder)
        menu.addSeparator()
        self.about_action = menu.addAction("&About Classification Studio")
        self.about_action.triggered.connect(lambda: self.show("About", about_html(self._device())))

    def show(self, title: str, text: str) -> QtTextWindow:
        window = self.windows.get(title)
        if window is None:
            window = self.windows[title] = QtTextWindow(title, text, self.window)
        window.show()
        window.raise_()
        return window

    def open_project_folder(self) -> None:
        from pathlib import Path

        folder = Path(str(self._project_dir()))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            show_error = getattr(self.window, "show_error", None)
            if show_error is not None:
                show_error(f"Cannot open the project folder {folder}: {exc.strerror or exc}")
            return
        self.open_url(QUrl.fromLocalFile(str(folder)))
