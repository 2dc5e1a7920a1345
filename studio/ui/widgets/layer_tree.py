"""The model's layers as a tree, in the order they run, each with the shape of its output."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from studio.core.inspect import LayerInfo
from studio.core.layer_words import WordRow
from studio.core.words import plain_number

NAME_ROLE = Qt.ItemDataRole.UserRole


class QtLayerTree(QTreeWidget):
    """Built from `LayerInfo` rows (their `parent` gives the nesting); `layer_selected(name)` on a change.

    Layers without spatial maps (the flattened end, the classifier) stay listed but greyed, so the
    list shows the whole model; a module shared by several places is marked with how often it ran.
    """

    layer_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Layer (type)", "Output C×H×W"])
        self.setColumnHidden(1, False)
        self.setUniformRowHeights(True)
        self.setIndentation(14)
        header = self.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self._items: dict[str, QTreeWidgetItem] = {}
        self.currentItemChanged.connect(self._on_current_changed)

    def set_words(self, rows: list[WordRow], select: str) -> None:
        """The layers in words: stages (not selectable) holding their blocks, then summary and decision.

        Each block stands for the module `row.layer`; `select` may name any module inside a block.
        """
        self.blockSignals(True)
        self.clear()
        self._items = {}
        self.setHeaderLabels(["Part of the network", "Numbers learned"])
        stages: dict[int, QTreeWidgetItem] = {}
        for row in rows:
            item = QTreeWidgetItem([row.short, plain_number(row.params) if row.params else ""])
            item.setToolTip(0, f"{row.line}\n{plain_number(row.params)} numbers learned" if row.params else row.line)
            if row.is_stage:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                font = item.font(0)
                font.setBold(True)
                item.setFont(0, font)
                stages[row.stage] = item
                self.addTopLevelItem(item)
                continue
            item.setData(0, NAME_ROLE, row.layer)
            if len(row.shape) != 3:
                for col in range(2):
                    item.setForeground(col, self.palette().placeholderText())
            self._items[row.layer] = item
            (stages[row.stage].addChild if row.stage in stages else self.addTopLevelItem)(item)
        self.setColumnHidden(1, True)  # the list is narrow: the numbers learned are in each row's tooltip
        self.expandAll()
        self.setCurrentItem(None)
        self.blockSignals(False)
        blocks = [r for r in rows if not r.is_stage]
        target = select if select in self._items else next(
            (r.layer for r in blocks if any(select == m or select.startswith(f"{m}.") for m in r.modules)),
            blocks[0].layer if blocks else "")
        if target:
            self.select(target)
            self.scrollToItem(self._items[target])

    def set_layers(self, layers: list[LayerInfo], select: str) -> None:
        """Replace the list and select `select` (which emits `layer_selected`)."""
        self.blockSignals(True)
        self.clear()
        self.setHeaderLabels(["Layer (type)", "Output C×H×W"])
        self._items = {}
        for info in layers:
            self._items[info.name] = item = self._item(info)
            parent = self._items.get(info.parent)
            if parent is not None:
                parent.addChild(item)
            else:
                self.addTopLevelItem(item)
        self.expandToDepth(1 if len(layers) > 40 else 4)
        self.setCurrentItem(None)
        self.blockSignals(False)
        if select in self._items:
            self.select(select)
            self.scrollToItem(self._items[select])

    def _item(self, info: LayerInfo) -> QTreeWidgetItem:
        short = info.name[len(info.parent) + 1:] if info.parent else info.name
        runs = f" ×{info.calls}" if info.calls > 1 else ""
        item = QTreeWidgetItem([f"{short}  ({info.kind}){runs}", "×".join(str(v) for v in info.output_shape)])
        item.setData(0, NAME_ROLE, info.name)
        tip = [info.name, f"{info.kind}, {info.params:,} parameters" if info.params else info.kind]
        if info.calls > 1:
            tip.append(f"Runs {info.calls} times in one pass (the module is shared); shown: its last output")
        if not info.has_maps:
            tip.append("No spatial maps: its output is a vector of numbers")
            for col in range(2):
                item.setForeground(col, self.palette().placeholderText())
        item.setToolTip(0, "\n".join(tip))
        return item

    def names(self) -> list[str]:
        return list(self._items)

    def select(self, name: str) -> None:
        if name not in self._items:
            raise ValueError(f"no layer {name!r} in the list")
        self.setCurrentItem(self._items[name])

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _on_current_changed(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if item is not None:
            self.layer_selected.emit(item.data(0, NAME_ROLE))
