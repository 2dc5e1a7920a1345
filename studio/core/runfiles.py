"""The plain files a run leaves beside its checkpoints, for people and spreadsheets."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_history(run_dir: Path, history: Sequence[dict[str, Any]]) -> None:
    lines = [",".join(HISTORY_FIELDS)]
    for row in history:
        lines.append(",".join("" if row.get(k) is None else f"{row[k]:.6g}" for k in HISTORY_FIELDS))
    _atomic_write(run_dir / "history.csv", "\n".join(lines) + "\n")


def read_history(run_dir: Path) -> list[dict[str, float | None]]:
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_split(run_dir: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """(relative path, class, split) for every image the run uses: the run's own record of its data."""
    path = run_dir / "split.csv"
    tmp = path.with_name(".split.csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("path", "class", "split"))
        writer.writerows(rows)
    os.replace(tmp, path)


def read_split(run_dir: Path) -> list[tuple[str, str, str]]:
    with (Path(run_dir) / "split.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return [(r[0], r[1], r[2]) for r in reader if len(r) == 3]


def split_counts(rows: Sequence[tuple[str, str, str]], classes: list[str]) -> dict[str, dict[str, int]]:
    """{split: {class: images}} for the splits that hold any image."""
    counts: dict[str, dict[str, int]] = {s: {c: 0 for c in classes} for s in ("train", "val", "test")}
    for _, cls, split in rows:
        counts[split][cls] += 1
    return {s: c for s, c in counts.items() if sum(c.values())}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def write_report(run_dir: Path, *, config: dict[str, Any], classes: list[str], counts: dict[str, dict[str, int]],
                 history: Sequence[dict[str, Any]], result: dict[str, Any], notes: Sequence[str]) -> None:
    """report.md: what a person reads after a run, without opening the studio."""
    model, train = config["model"], config["train"]
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- Status: **{result['status']}** after {result['epochs_done']} epoch(s), {result['seconds']:.0f} s",
        f"- Best validation accuracy: **{_pct(result.get('best_val_acc'))}** at epoch {result.get('best_epoch')}",
    ]
    if result.get("test_acc") is not None:
        lines.append(f"- Held-out test accuracy: **{_pct(result['test_acc'])}**")
    lines += [
        f"- Model: `{model['arch']}`, weights `{model['pretrained']}`, mode `{model['mode']}`, "
        f"{model['image_size']} px",
        f"- Training: {train['optimizer']} lr {train['lr']:g}, {train['schedule']} schedule, "
        f"batch {train['batch_size']}, augmentation `{config['augment']['preset']}`",
        f"- Data: `{config['data']['root']}`",
        "",
        "## Images per class and split",
        "",
        "| class | " + " | ".join(counts) + " |",
        "|---|" + "---:|" * len(counts),
    ]
    for cls in classes:
        lines.append(f"| {cls} | " + " | ".join(str(counts[s].get(cls, 0)) for s in counts) + " |")
    lines += ["", "## History", "", "| epoch | train loss | train acc | val loss | val acc | lr | s |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in history:
        val_loss = "—" if row.get("val_loss") is None else f"{row['val_loss']:.4f}"
        lines.append(
            f"| {row['epoch']} | {row['train_loss']:.4f} | {_pct(row['train_acc'])} | {val_loss} | "
            f"{_pct(row.get('val_acc'))} | {row['lr']:.2e} | {row['seconds']:.1f} |"
        )
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if result.get("message"):
        lines += ["", result["message"]]
    _atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")
