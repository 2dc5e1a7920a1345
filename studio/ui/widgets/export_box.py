"""Export the chosen model for use in other programs, from the window, in a worker.

Tracing a backbone and checking an ONNX graph take seconds, so `export_model` runs off the UI
thread; the user picks the file first and reads the result (or the reason it failed) in the box.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QWidget

from studio.core.errors import ExportError
from studio.core.export import SUFFIX, default_output, export_model
from studio.ui.workers import QtTaskRunner, describe_exception

FORMATS = (("package", "Model package (folder) — for labs and programs: model, model card, script"),
           ("onnx", "ONNX (.onnx) — for ONNX Runtime, OpenCV, other languages"),
           ("pt2", "PyTorch (.pt2) — for PyTorch programs"),
           ("torchscript", "TorchScript (.pt) — older PyTorch programs (being retired)"))


def _export(source: str, fmt: str, out: str) -> tuple[str, str]:
    """(message, level) for the user: the files written, or why not."""
    try:
        done = export_model(source, fmt, out)
    except ExportError as exc:
        return str(exc), "error"
    except Exception as exc:
        return describe_exception(exc), "error"
    if done.format == "package":
        return (f"Saved the model package {done.path}: the model, a model card (README.md) with its figures on "
                "images it never saw, and predict.py, which runs it with onnxruntime, Pillow and numpy only."), "info"
    return (f"Saved {done.path} and {done.sidecar.name} beside it (class names, input format). The model takes "
            "RGB images of any size with values 0–255 and does the resizing and normalisation itself."), "info"


class QtExportBox(QGroupBox):
    """[format ▾] [Export…]; `source` gives the run folder or checkpoint to export."""

    finished = Signal(str, str)  # message, level ("info" or "error")

    def __init__(self, source: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__("Use the model in other programs", parent)
        self.source = source
        self.choose_path: Callable[[str, str], str] = self._ask_path
        row = QHBoxLayout(self)
        self.format_combo = QComboBox()
        for key, text in FORMATS:
            self.format_combo.addItem(text, key)
        self.format_combo.setToolTip("The file format for other programs: ONNX for most tools and languages, "
                                     ".pt2 for PyTorch programs. Resizing and normalization are inside the file.")
        row.addWidget(self.format_combo)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save this run's best model as a file another program can use")
        self.export_button.clicked.connect(self._on_export)
        row.addWidget(self.export_button)
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        self._runner = QtTaskRunner("studio-export", self)
        self._runner.result.connect(self._on_result)

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def export(self, fmt: str, out: str) -> None:
        """Start an export to `out` (what the button does after its file dialog)."""
        source = self.source()
        if not source:
            self._on_result(("Choose a trained model first.", "error"))
            return
        self.export_button.setEnabled(False)
        self.status.setText(f"Exporting to {Path(out).name}…")
        self._runner.submit(_export, source, fmt, out)

    @Slot()
    def _on_export(self) -> None:
        source, fmt = self.source(), self.format_combo.currentData()
        if not source:
            self._on_result(("Choose a trained model first.", "error"))
            return
        out = self.choose_path(fmt, str(default_output(source, fmt)))
        if out:
            self.export(fmt, out)

    def _ask_path(self, fmt: str, default: str) -> str:
        if fmt == "package":  # a folder: ask where to put it, then name it after the default
            parent = QFileDialog.getExistingDirectory(self, "Put the model package in…", str(Path(default).parent))
            return str(Path(parent) / Path(default).name) if parent else ""
        suffix = SUFFIX[fmt]
        path, _ = QFileDialog.getSaveFileName(self, "Export the model", default, f"{fmt} files (*{suffix})")
        if path and not path.endswith(suffix):
            path += suffix
        return path

    @Slot(object)
    def _on_result(self, value: object) -> None:
        message, level = value  # type: ignore[misc]
        self.export_button.setEnabled(True)
        self.status.setText("")
        self.finished.emit(message, level)

    def shutdown(self) -> None:
        self._runner.shutdown()
