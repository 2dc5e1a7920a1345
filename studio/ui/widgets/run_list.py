"""The project's previous runs as a table; selecting one or two shows or compares their curves."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from studio.core.project import RunRow
from studio.core.run_words import status_word

COLUMNS = ("Run", "Started", "Model", "Status", "Epochs", "Accuracy")


def run_label(run: RunRow) -> str:
    """"#3 first try", or "#3" when the run has no name of its own (it is then named after its folder)."""
    return f"#{run.id} {run.name}" if run.name and run.name != Path(run.folder).name else f"#{run.id}"


class QtRunList(QTableWidget):
    """One row per run, newest first; `selection_changed` carries the chosen `RunRow`s (at most two)."""

    selection_changed = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setDefaultSectionSize(24)
        self.horizontalHeaderItem(5).setToolTip(
            "Test accuracy, on held-out images the run never chose anything by: the figure to trust. "
            "Runs without a test share show their best validation accuracy (val).")
        self.setToolTip("Select a run to show its curves; select two (Ctrl+click) to compare them.")
        self.rows: list[RunRow] = []
        self.itemSelectionChanged.connect(self._on_selection)

    def set_runs(self, runs: list[RunRow]) -> None:
        keep = {r.id for r in self.selected_runs()}
        self.blockSignals(True)
        self.rows = sorted(runs, key=lambda r: r.id, reverse=True)
        self.setRowCount(len(self.rows))
        for i, run in enumerate(self.rows):
            when = time.strftime("%d %b %H:%M", time.localtime(run.started_at)) if run.started_at else ""
            best = "—" if run.best_metric is None else f"{100 * run.best_metric:.1f}% val"
            if run.test_acc is not None:
                best = f"{100 * run.test_acc:.1f}% test"
            cells = (run_label(run), when, run.arch, status_word(run.status), str(run.epochs_done), best)
            tip = f"{run.name}\n{run.folder}" + (f"\n{run.message}" if run.message else "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                if col >= 4:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, col, item)
        self.clearSelection()
        for i, run in enumerate(self.rows):
            if run.id in keep:
                self.selectRow(i)
        self.blockSignals(False)

    def selected_runs(self) -> list[RunRow]:
        rows = sorted({index.row() for index in self.selectedIndexes()})
        return [self.rows[r] for r in rows if r < len(self.rows)][:2]

    def select_ids(self, ids: list[int]) -> None:
        self.clearSelection()
        mode = self.selectionMode()
        self.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for i, run in enumerate(self.rows):
            if run.id in ids:
                self.selectRow(i)
        self.setSelectionMode(mode)

    def _on_selection(self) -> None:
        self.selection_changed.emit(self.selected_runs())
