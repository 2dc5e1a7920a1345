"""What is in a data folder: classes, usable images, bad files and how to split them.

The folder layout is torchvision's `ImageFolder` (one sub-folder per class, classes in
sorted order, the same extensions plus GIF), so a model trained here lines up with tools that
read the folder the same way. Unlike `ImageFolder`, nothing here fails on a bad file:
every file is checked through `studio.core.images` and reported with its reason (pipes,
sockets and devices are refused without being opened), and
the user's folder is only ever read.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import DatasetError, ImageError, ScanCancelled
from studio.core.images import check_image, has_image_extension
from studio.core.words import count

# Below this many images a class is learned poorly even with transfer learning.
MIN_IMAGES_PER_CLASS = 20
# Largest/smallest class ratio from which accuracy alone starts to mislead.
IMBALANCE_WARN_RATIO = 3.0
# Operating-system droppings that are not dot-files but are no more the user's data.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
# Decoding threads: Pillow releases the GIL while decoding, two keep a small machine busy.
_WORKERS = 2
_PROGRESS_EVERY = 50


@dataclass
class ImageRecord:
    """One candidate file; `path` is relative to the data root with POSIX separators."""

    path: str
    label: int
    class_name: str
    ok: bool
    problem: str = ""
    width: int = 0
    height: int = 0


@dataclass
class ScanReport:
    """Everything a scan found, good and bad, in a deterministic order."""

    root: str
    classes: list[str]
    records: list[ImageRecord]
    empty_classes: list[str] = field(default_factory=list)
    hidden_skipped: int = 0
    stray_files: list[str] = field(default_factory=list)

    @property
    def good(self) -> list[ImageRecord]:
        return [r for r in self.records if r.ok]

    @property
    def bad(self) -> list[ImageRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def usable(self) -> bool:
        """A classifier needs at least two classes to tell apart."""
        return len(self.classes) >= 2

    def abspath(self, record: ImageRecord) -> Path:
        return Path(self.root, *record.path.split("/"))

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for record in self.good:
            counts[record.class_name] += 1
        return counts

    def imbalance_ratio(self) -> float:
        """Largest over smallest usable class; 1.0 for a balanced (or trivial) data set."""
        sizes = [n for n in self.counts().values() if n > 0]
        return max(sizes) / min(sizes) if sizes else 1.0

    def warnings(self) -> list[str]:
        counts = self.counts()
        found: list[str] = []
        if not self.usable:
            have = {0: "no class folder has", 1: "only 1 class folder has"}.get(
                len(self.classes), f"only {len(self.classes)} class folders have")
            found.append(f"{have} usable images: a classifier needs at least two")
        for name, n in counts.items():
            if n < MIN_IMAGES_PER_CLASS:
                found.append(f"class '{name}' has only {n} image{'s' if n != 1 else ''}: "
                             f"aim for at least {MIN_IMAGES_PER_CLASS}")
        ratio = self.imbalance_ratio()
        if self.usable and ratio >= IMBALANCE_WARN_RATIO:
            largest = max(counts, key=lambda c: counts[c])
            smallest = min(counts, key=lambda c: counts[c])
            found.append(f"classes are imbalanced: '{largest}' has {ratio:.1f}".removesuffix(".0")
                         + f"× more images than '{smallest}': consider class weighting or a balanced sampler")
        found.extend(f"folder '{name}' has no usable images and is left out" for name in self.empty_classes)
        if self.bad:
            found.append(f"{count(len(self.bad), 'file')} cannot be used and will be skipped")
        if self.stray_files:
            found.append(f"{count(len(self.stray_files), 'file')} directly in the data folder "
                         f"{'is' if len(self.stray_files) == 1 else 'are'} ignored: "
                         "images belong inside a class folder")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"format": "studio-scan", "version": 1, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanReport:
        return cls(
            root=str(data["root"]),
            classes=list(data["classes"]),
            records=[ImageRecord(**record) for record in data["records"]],
            empty_classes=list(data.get("empty_classes", [])),
            hidden_skipped=int(data.get("hidden_skipped", 0)),
            stray_files=list(data.get("stray_files", [])),
        )

    def format_table(self, bar_width: int = 30) -> str:
        """The report `studio scan DIR` prints: per-class counts with a balance bar, problems, warnings."""
        counts = self.counts()
        bad_per_folder: dict[str, int] = {}
        for record in self.bad:
            bad_per_folder[record.class_name] = bad_per_folder.get(record.class_name, 0) + 1
        folders = sorted(set(self.classes) | set(self.empty_classes) | set(bad_per_folder))
        name_width = max([_display_width(n) for n in folders] + [len("class"), len("total")])
        most = max(counts.values(), default=0)
        lines = [f"Data folder: {self.root}", "",
                 f"{_pad('class', name_width)}  {'images':>6}  {'bad':>4}  balance"]
        for name in folders:
            n = counts.get(name, 0)
            bar = "#" * max(1, round(bar_width * n / most)) if n else "(no usable images)"
            lines.append(f"{_pad(name, name_width)}  {n:>6}  {bad_per_folder.get(name, 0):>4}  {bar}")
        lines.append(f"{_pad('total', name_width)}  {sum(counts.values()):>6}  {len(self.bad):>4}")
        if self.bad:
            lines += ["", f"Skipped files ({len(self.bad)}):"]
            path_width = max(_display_width(r.path) for r in self.bad)
            lines += [f"  {_pad(r.path, path_width)}  {r.problem}" for r in self.bad]
        if self.hidden_skipped or self.stray_files:
            lines.append("")
            if self.hidden_skipped:
                lines.append(f"Hidden or system files skipped: {self.hidden_skipped}")
            if self.stray_files:
                lines.append(f"Files outside class folders, ignored: {', '.join(self.stray_files)}")
        warnings = self.warnings()
        if warnings:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in warnings]
        return "\n".join(lines)


def scan(
    root: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    check_pixels: bool = True,
) -> ScanReport:
    """Find and check every image under `root`; never writes inside it.

    `progress(done, total)` is called before the first file, every 50 files and at the end;
    `should_stop()` is polled per file and makes the scan raise `ScanCancelled`.
    `check_pixels=False` reads headers only: much faster, but truncated files pass.
    """
    top = _open_root(root)
    folders, stray, hidden = _top_level(top)
    stop = should_stop or (lambda: False)
    # Real paths already walked: symlinked folders are followed (as ImageFolder does) but each
    # directory is entered once, so a link back to a parent cannot loop forever.
    visited = {os.path.realpath(top)} | {os.path.realpath(top / name) for name in folders}
    found: list[ImageRecord] = []
    for name in folders:
        files, walk_hidden = _walk_class(top, name, visited, stop)
        found.extend(files)
        hidden += walk_hidden
    _check_pixels(top, [r for r in found if r.ok], check_pixels, progress, stop)

    order = {name: i for i, name in enumerate(folders)}
    found.sort(key=lambda r: (order[r.class_name], r.path))
    classes = [name for name in folders if any(r.ok and r.class_name == name for r in found)]
    label_of = {name: i for i, name in enumerate(classes)}
    for record in found:
        record.label = label_of[record.class_name] if record.ok else -1
    return ScanReport(
        root=str(top),
        classes=classes,
        records=found,
        empty_classes=[name for name in folders if name not in label_of],
        hidden_skipped=hidden,
        stray_files=stray,
    )


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Seeded per-class split into sorted index lists; negative labels (unusable) go nowhere.

    Each class gives round(n × fraction) images to val and test, but a class of two or more
    always gets one validation image (three or more: one test image) when that split is
    asked for, and keeps at least one training image whatever the fractions say.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
                         "between 0 and 1 and leave room for training images")
    rng = np.random.default_rng(seed)
    array = np.asarray(labels, dtype=np.int64)
    split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(array[array >= 0]):
        members = np.flatnonzero(array == label)
        members = members[rng.permutation(len(members))]
        n = len(members)
        n_val = round(n * val_fraction)
        n_test = round(n * test_fraction)
        if val_fraction > 0 and n >= 2:
            n_val = max(1, n_val)
        if test_fraction > 0 and n >= 3:
            n_test = max(1, n_test)
        n_test = max(0, min(n_test, n - 1 - n_val))  # test gives way first, then val, to keep train ≥ 1
        n_val = max(0, min(n_val, n - 1 - n_test))
        split["val"].extend(members[:n_val].tolist())
        split["test"].extend(members[n_val:n_val + n_test].tolist())
        split["train"].extend(members[n_val + n_test:].tolist())
    return {name: sorted(indices) for name, indices in split.items()}


def _open_root(root: str | Path) -> Path:
    top = Path(root).expanduser().absolute()
    hint = "Choose the folder that holds one sub-folder per class."
    if not top.exists():
        raise DatasetError(f"{top}: folder not found. {hint}")
    if not top.is_dir():
        raise DatasetError(f"{top}: this is a file, not a folder. {hint}")
    if not os.access(top, os.R_OK | os.X_OK):
        raise DatasetError(f"{top}: cannot read the folder (permission denied). Check its permissions.")
    return top


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM_FILES


def _top_level(top: Path) -> tuple[list[str], list[str], int]:
    """Class folders (sorted, as ImageFolder), stray files and the hidden count at the root."""
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{top}: cannot read the folder ({exc.strerror or exc}).") from None
    folders: list[str] = []
    stray: list[str] = []
    hidden = 0
    for entry in entries:
        if _is_hidden(entry.name):
            hidden += 1
        elif entry.is_dir():
            folders.append(entry.name)
        else:
            stray.append(entry.name)
    if not folders:
        images = sum(has_image_extension(name) for name in stray)
        found = f" It holds {images} image file(s) directly." if images else ""
        raise DatasetError(f"{top}: no class sub-folders found.{found} Put each class's images in a "
                           f"sub-folder named after the class, e.g. {top / 'cats'} and {top / 'dogs'}.")
    return folders, stray, hidden


def _walk_class(top: Path, name: str, visited: set[str], stop: Callable[[], bool]
                ) -> tuple[list[ImageRecord], int]:
    """Candidate files of one class folder, recursively; images are marked ok until checked."""
    records: list[ImageRecord] = []
    hidden = 0

    def unreadable(exc: OSError) -> None:
        rel = Path(exc.filename).relative_to(top).as_posix() if exc.filename else name
        records.append(ImageRecord(rel, -1, name, False, f"folder unreadable: {(exc.strerror or str(exc)).lower()}"))

    for dirpath, dirnames, filenames in os.walk(top / name, onerror=unreadable, followlinks=True):
        if stop():
            raise ScanCancelled(f"{top}: scan cancelled.")
        kept = []
        for sub in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, sub))
            if _is_hidden(sub):
                hidden += 1
            elif real not in visited:
                visited.add(real)
                kept.append(sub)
        dirnames[:] = kept
        base = Path(dirpath).relative_to(top)
        for filename in filenames:
            if _is_hidden(filename):
                hidden += 1
                continue
            rel = (base / filename).as_posix()
            if has_image_extension(filename):
                records.append(ImageRecord(rel, -1, name, True))
            else:
                suffix = Path(filename).suffix.lower() or "no extension"
                records.append(ImageRecord(rel, -1, name, False, f"not an image file ({suffix})"))
    return records, hidden


def _check_pixels(top: Path, records: list[ImageRecord], decode: bool,
                  progress: Callable[[int, int], None] | None, stop: Callable[[], bool]) -> None:
    """Fill in size or problem for each record, decoding on a small thread pool in order."""

    def check(record: ImageRecord) -> tuple[int, int, str]:
        try:
            return (*check_image(top / record.path, decode=decode), "")
        except ImageError as exc:
            return 0, 0, exc.reason

    total = len(records)
    if progress:
        progress(0, total)
    pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="studio-scan")
    try:
        for done, (record, (width, height, problem)) in enumerate(zip(records, pool.map(check, records)), 1):
            record.width, record.height, record.ok, record.problem = width, height, not problem, problem
            if progress and (done % _PROGRESS_EVERY == 0 or done == total):
                progress(done, total)
            if done < total and stop():
                raise ScanCancelled(f"{top}: scan cancelled.")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _display_width(text: str) -> int:
    """Terminal columns: CJK class names take two each, so the table stays aligned."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _display_width(text))

