"""What the Predict, Inspect and Evaluate view tests share: a tiny trained run and real drop events."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from studio.core.train import Trainer
from tests.conftest import make_colour_folder
from tests.test_train import tiny_config


def train_tiny_run(root: Path, *, epochs: int = 1, per_class: int = 10, **model: object) -> SimpleNamespace:
    """A finished run of the small custom CNN on the colour folders: seconds on two cores."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(root / "home"))
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        data = make_colour_folder(root / "data", per_class=per_class)
        config = tiny_config(data, epochs=epochs)
        for key, value in model.items():
            setattr(config.model, key, value)
        result = Trainer(config, project=root / "project").run()
    assert result.status == "finished", result
    return SimpleNamespace(data=data, project=root / "project", run=str(Path(result.run_dir)), config=config)


def mime_with(paths: Sequence[str | Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drop(widget: QWidget, mime: QMimeData) -> bool:
    """A drag entering `widget` and the drop that follows, as Qt delivers them; True when accepted."""
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def drop_paths(widget: QWidget, paths: Sequence[str | Path]) -> bool:
    return drop(widget, mime_with(paths))


def dispose(view: QWidget) -> None:
    """Stop the view's threads, delete it, and collect its garbage here, on the UI thread.

    Panes are Python objects in reference cycles (bound methods stored on themselves); left to
    the cyclic collector, they could be freed on whichever thread next allocates — a worker of
    the next test — and a Qt object deleted from a foreign thread crashes the process.
    """
    view.shutdown()
    view.close()
    view.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
