"""The Data page's sample images: the first few usable images of each class, decoded off the UI thread."""

from __future__ import annotations

import numpy as np

from studio.core.dataset import ScanReport
from studio.core.errors import ImageError
from studio.core.images import load_for_model

THUMBS_PER_CLASS = 6
THUMB_CLASSES = 40
THUMB_SIZE = 72


def load_class_samples(report: ScanReport, per_class: int = THUMBS_PER_CLASS, size: int = THUMB_SIZE
                       ) -> tuple[str, list[tuple[str, list[tuple[np.ndarray, str]]]]]:
    """The first few usable images of each class as small square pixels (runs on a worker thread)."""
    counts = report.counts()
    picked: dict[str, list] = {name: [] for name in report.classes[:THUMB_CLASSES]}
    for record in report.good:
        chosen = picked.get(record.class_name)
        if chosen is not None and len(chosen) < per_class:
            chosen.append(record)
    rows = []
    for name, records in picked.items():
        images = []
        for record in records:
            try:
                images.append((np.asarray(load_for_model(report.abspath(record), size)), record.path))
            except ImageError:
                continue  # changed on disk since the scan; the scan table already says what is usable
        rows.append((f"{name}\n{counts[name]} images", images))
    return report.root, rows
