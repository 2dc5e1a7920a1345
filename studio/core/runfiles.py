"""The plain files a run leaves beside its checkpoints, for people and spreadsheets."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from studio.core.atomic import write_bytes, write_text
from studio.core.words import percent

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
# The heading after which the evaluation owns report.md; the trainer's part comes before it.
EVALUATION_HEADING = "## Evaluation"

# report.md has two writers in one process (the trainer's thread and the Evaluate page); each
# reads, changes its own part and writes back, so the read and the write must not interleave.
_REPORT_LOCK = threading.Lock()


def update_report(run_dir: Path, change: Callable[[str | None], str]) -> None:
    """Read report.md (None when absent), let `change` rewrite its own part, write it back whole."""
    path = Path(run_dir) / "report.md"
    with _REPORT_LOCK:
        try:
            old: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        write_text(path, change(old))


def write_history(run_dir: Path, history: Sequence[dict[str, Any]]) -> None:
    lines = [",".join(HISTORY_FIELDS)]
    for row in history:
        lines.append(",".join("" if row.get(k) is None else f"{row[k]:.6g}" for k in HISTORY_FIELDS))
    write_text(run_dir / "history.csv", "\n".join(lines) + "\n")


def read_history(run_dir: Path) -> list[dict[str, float | None]]:
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_split(run_dir: Path, rows: Sequence[tuple[str, str, str]], groups: Sequence[int] | None = None) -> None:
    """(relative path, class, split, group) for every image the run uses: the run's own record of its data.

    The group column says which images the split kept together, so a reader can check that no
    group straddles train and validation.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    if groups is None:
        writer.writerow(("path", "class", "split"))
        writer.writerows(rows)
    else:
        writer.writerow(("path", "class", "split", "group"))
        writer.writerows((*row, g) for row, g in zip(rows, groups))
    write_bytes(run_dir / "split.csv", buffer.getvalue().encode("utf-8"))  # bytes: csv chose the line ends


def read_split(run_dir: Path) -> list[tuple[str, str, str]]:
    with (Path(run_dir) / "split.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return [(r[0], r[1], r[2]) for r in reader if len(r) in (3, 4)]


def read_split_groups(run_dir: Path) -> list[int | None]:
    """The group column of split.csv, in row order; None for runs recorded before groups."""
    with (Path(run_dir) / "split.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        return [int(r[3]) if len(r) == 4 and r[3] else None for r in reader if len(r) in (3, 4)]


def split_counts(rows: Sequence[tuple[str, str, str]], classes: list[str]) -> dict[str, dict[str, int]]:
    """{split: {class: images}} for the splits that hold any image."""
    counts: dict[str, dict[str, int]] = {s: {c: 0 for c in classes} for s in ("train", "val", "test")}
    for _, cls, split in rows:
        counts[split][cls] += 1
    return {s: c for s, c in counts.items() if sum(c.values())}


def write_report(run_dir: Path, *, config: dict[str, Any], classes: list[str], counts: dict[str, dict[str, int]],
                 history: Sequence[dict[str, Any]], result: dict[str, Any], notes: Sequence[str]) -> None:
    """report.md: what a person reads after a run, without opening the studio."""
    model, train = config["model"], config["train"]
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- Status: **{result['status']}** after {result['epochs_done']} epoch(s), {result['seconds']:.0f} s",
    ]
    if result.get("test_acc") is not None:
        lines.append(f"- **Test accuracy: {percent(result['test_acc'])}**: the figure to trust, measured on "
                     "held-out images that nothing in the run used to choose its epochs or settings")
    best = f"{percent(result.get('best_val_acc'))} at epoch {result.get('best_epoch')}"
    lines.append(f"- Best validation accuracy: {best}"
                 + (" (it chose the epoch, so it flatters a little)" if result.get("test_acc") is not None else ""))
    features = f", reads `{model['features']}`" if model.get("features", "final") != "final" else ""
    # An exact solve has no learning rate, schedule or batches: its penalty is what shapes the answer.
    how = (f"last layer solved exactly (lbfgs), L2 penalty {train['weight_decay']:.3g}"
           if train["optimizer"] == "lbfgs" else
           f"{train['optimizer']} lr {train['lr']:g}, {train['schedule']} schedule, batch {train['batch_size']}")
    lines += [
        f"- Model: `{model['arch']}`, weights `{model['pretrained']}`, mode `{model['mode']}`, "
        f"{model['image_size']} px{features}",
        f"- Training: {how}, augmentation `{config['augment']['preset']}`",
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
            f"| {row['epoch']} | {row['train_loss']:.4f} | {percent(row['train_acc'])} | {val_loss} | "
            f"{percent(row.get('val_acc'))} | {row['lr']:.2e} | {row['seconds']:.1f} |"
        )
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if result.get("message"):
        lines += ["", result["message"]]
    head = "\n".join(lines) + "\n"
    update_report(run_dir, lambda old: head + _evaluation_part(old))


def _evaluation_part(text: str | None) -> str:
    """The evaluation section of an existing report, kept when the trainer rewrites its own part."""
    marker = f"\n{EVALUATION_HEADING}\n"
    if not text or marker not in text:
        return ""
    return "\n" + EVALUATION_HEADING + "\n" + text.split(marker, 1)[1]
