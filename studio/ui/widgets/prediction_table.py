"""The batch-prediction table: one row per file, filled as the worker reports, sortable, flaggable.

Rows stay plain data (`Prediction`s plus a thumbnail), so the table is what gets written to CSV;
sorting and the "only what needs a look" filter live in a proxy and never reorder that data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QVBoxLayout, QWidget

from studio.core.predict import UNFAMILIAR_MESSAGE, Prediction
from studio.ui.widgets.common import array_to_pixmap, hint

COLUMNS = ("Image", "File", "Predicted", "Confidence", "Like the training images?", "Top 3")
IMAGE, FILE, PREDICTED, CONFIDENCE, VERDICT, TOP3 = range(len(COLUMNS))
SORT_ROLE = Qt.ItemDataRole.UserRole
THUMB = 40
LOW_BACKGROUND, ERROR_FOREGROUND = QColor("#fff1d6"), QColor("#b3261e")
UNFAMILIAR_BACKGROUND = QColor("#fde2e0")
Index = QModelIndex | QPersistentModelIndex


class PredictionTableModel(QAbstractTableModel):
    """Predictions in arrival order; a row is flagged when unusable or below `low_confidence`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.predictions: list[Prediction] = []
        self.thumbs: list[QPixmap | None] = []
        self.low_confidence = 0.5

    # ------------------------------------------------------------------------------------ data in

    def clear(self) -> None:
        self.beginResetModel()
        self.predictions, self.thumbs = [], []
        self.endResetModel()

    def append(self, rows: list[tuple[Prediction, np.ndarray | None]]) -> None:
        if not rows:
            return
        start = len(self.predictions)
        self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
        for prediction, thumb in rows:
            self.predictions.append(prediction)
            self.thumbs.append(array_to_pixmap(thumb) if thumb is not None else None)
        self.endInsertRows()

    def set_low_confidence(self, threshold: float) -> None:
        self.low_confidence = threshold
        if self.predictions:
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1))

    def is_low(self, p: Prediction) -> bool:
        return not p.error and p.confidence < self.low_confidence

    def flagged(self) -> tuple[int, int]:
        """(unusable files, low-confidence predictions)."""
        errors = sum(1 for p in self.predictions if p.error)
        return errors, sum(1 for p in self.predictions if self.is_low(p))

    def unfamiliar_count(self) -> int:
        return sum(1 for p in self.predictions if p.unfamiliar)

    # ------------------------------------------------------------------------------------ Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.predictions)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 (Qt override)
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {CONFIDENCE: "The probability of the predicted class; click to sort, least sure first",
                    VERDICT: "Whether the image looks like the images the model was trained on. For an image "
                             "unlike them the predicted class is only a guess."}.get(section)
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p, col = self.predictions[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(p, col)
        if role == SORT_ROLE:
            return self._sort_key(p, col, index.row())
        if role == Qt.ItemDataRole.DecorationRole and col == IMAGE:
            return self.thumbs[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            if p.error:
                return f"{p.path}\nCannot be used: {p.error}"
            lines = [p.path] + [f"{c}: {100 * v:.2f}%" for c, v in p.top]
            if p.unfamiliar:
                lines.append(f"{UNFAMILIAR_MESSAGE} (unfamiliarity {p.score:.2f}; above 1 is unlike them)")
            if self.is_low(p):
                lines.append(f"Low confidence: below {100 * self.low_confidence:.0f}%")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.ForegroundRole and p.error and col != IMAGE:
            return QBrush(ERROR_FOREGROUND)
        if role == Qt.ItemDataRole.BackgroundRole and p.unfamiliar:
            return QBrush(UNFAMILIAR_BACKGROUND)
        if role == Qt.ItemDataRole.BackgroundRole and self.is_low(p):
            return QBrush(LOW_BACKGROUND)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == CONFIDENCE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, p: Prediction, col: int) -> str:
        if col == FILE:
            return Path(p.path).name
        if p.error:
            return {PREDICTED: "unusable", TOP3: p.error}.get(col, "")
        if col == PREDICTED:
            return f"{p.label}?" if p.unfamiliar else p.label
        if col == VERDICT:
            return {"unfamiliar": "⚠ No: treat with care", "familiar": "yes",
                    "unavailable": "not checked (older model)"}[p.verdict]
        if col == CONFIDENCE:
            return ("⚠ " if self.is_low(p) else "") + f"{100 * p.confidence:.1f}%"
        if col == TOP3:
            return " · ".join(f"{c} {100 * v:.0f}%" for c, v in p.top[:3])
        return ""

    @staticmethod
    def _sort_key(p: Prediction, col: int, row: int) -> Any:
        if col == CONFIDENCE:
            return -1.0 if p.error else p.confidence
        if col == VERDICT:
            return -1.0 if p.score is None else -p.score  # least like the training images first
        if col == PREDICTED:
            return ("\uffff" + p.error) if p.error else p.label.lower()  # unusable files last
        if col == FILE:
            return Path(p.path).name.lower()
        if col == TOP3:
            return p.error or " ".join(c for c, _ in p.top[:3]).lower()
        return row


class PredictionFilter(QSortFilterProxyModel):
    """Sorts by the model's sort keys; filters to flagged rows (unusable, unsure, unfamiliar) or unfamiliar ones."""

    def __init__(self, source: PredictionTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSourceModel(source)
        self.setSortRole(SORT_ROLE)
        self.only_flagged = False
        self.only_unfamiliar = False

    def set_only_flagged(self, on: bool) -> None:
        self._change(lambda: setattr(self, "only_flagged", on))

    def set_only_unfamiliar(self, on: bool) -> None:
        self._change(lambda: setattr(self, "only_unfamiliar", on))

    def _change(self, apply) -> None:
        if hasattr(self, "endFilterChange"):  # Qt 6.10+, where invalidateFilter() is deprecated
            self.beginFilterChange()
            apply()
            self.endFilterChange()
        else:
            apply()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:  # noqa: N802 (Qt override)
        source: PredictionTableModel = self.sourceModel()  # type: ignore[assignment]
        p = source.predictions[row]
        if self.only_unfamiliar and not p.unfamiliar:
            return False
        return not self.only_flagged or bool(p.error) or source.is_low(p) or bool(p.unfamiliar)


class QtPredictionTable(QWidget):
    """The table (in arrival order until a column title is clicked) and a one-line summary under it."""

    activated = Signal(object)  # the Prediction of a double-clicked row
    selection_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        self.model = PredictionTableModel(self)
        self.proxy = PredictionFilter(self.model, self)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # arrival order until the user sorts
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.view.verticalHeader().hide()
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(IMAGE, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(IMAGE, THUMB + 16)
        header.resizeSection(FILE, 260)
        header.resizeSection(CONFIDENCE, 100)
        header.resizeSection(VERDICT, 190)
        header.setStretchLastSection(True)
        self.view.doubleClicked.connect(self._on_double_clicked)
        self.view.selectionModel().selectionChanged.connect(self.selection_changed)
        col.addWidget(self.view, 1)
        self.summary = hint("")
        col.addWidget(self.summary)

    def prediction_at(self, proxy_row: int) -> Prediction:
        return self.model.predictions[self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()]

    def selected(self) -> Prediction | None:
        rows = self.view.selectionModel().selectedRows()
        return self.prediction_at(rows[0].row()) if rows else None

    def update_summary(self, expected: int) -> None:
        errors, low = self.model.flagged()
        parts = [f"{self.model.rowCount()} of {expected} image(s)"]
        unfamiliar = self.model.unfamiliar_count()
        if unfamiliar:
            parts.append(f"⚠ {unfamiliar} not like the training images (red rows: treat their answers with care)")
        if low:
            parts.append(f"⚠ {low} below {100 * self.model.low_confidence:.0f}% (amber rows: the model is unsure; "
                         "it names one of its classes even for a picture of something else)")
        if errors:
            parts.append(f"{errors} unusable (red rows, with the reason)")
        self.summary.setText(" · ".join(parts) + ". Click a column title to sort, double-click a row to inspect it.")

    @Slot(QModelIndex)
    def _on_double_clicked(self, index: QModelIndex) -> None:
        self.activated.emit(self.prediction_at(index.row()))
