"""The evaluation written where a person looks: the Evaluation section of report.md and confusion.png.

Kept apart from `evaluate`, which computes an `Evaluation`: the window, the CLI and the end of a
run all compute, and then some of them write.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studio.core.atomic import write_with
from studio.core.calibration import plot_reliability
from studio.core.evaluate import NEW, RELIABILITY_PNG, SECTION, Evaluation
from studio.core.runfiles import update_report
from studio.core.words import percent

NEW_SECTION = "## Evaluation on new images"


def picture_names(split: str) -> tuple[str, str]:
    """(confusion matrix, reliability diagram) file names in the run folder: new images have their own, beside
    the run's."""
    return ("confusion-new.png", f"new-{RELIABILITY_PNG}") if split == NEW else ("confusion.png", RELIABILITY_PNG)


def write_evaluation(evaluation: Evaluation, run_dir: str | Path | None = None) -> tuple[Path, Path]:
    """confusion.png and the "## Evaluation" section of report.md; running it again replaces both. An evaluation
    on new images from a folder has a section and pictures of its own, beside the run's own figures."""
    run = Path(run_dir or evaluation.run_dir)
    new = evaluation.split == NEW
    png, reliability_png = (run / name for name in picture_names(evaluation.split))
    what = f"new images in {Path(evaluation.data_root).name}" if new else evaluation.split
    plot_confusion(evaluation.confusion, evaluation.classes, png,
                   title=f"Confusion matrix — {what}, {evaluation.metrics.total} images")
    if evaluation.calibration is not None:
        c = evaluation.calibration
        plot_reliability(c.before, c.after, reliability_png,
                         title=f"Confidence against accuracy — {what}, {evaluation.metrics.total} images")
    report = run / "report.md"
    section = evaluation_markdown(evaluation, png.name, reliability_png.name)
    heading = NEW_SECTION if new else SECTION
    update_report(run, lambda text: replace_section(text or f"# Run {run.name}\n", section, heading))
    return report, png


def replace_section(text: str, section: str, heading: str = SECTION) -> str:
    """Put `section` (starting with `heading`) in place of the old one, or at the end.

    The old section runs to the next second-level heading, so what the trainer wrote and any
    section after ours survive untouched.
    """
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    body = section.rstrip("\n") + "\n"
    if pattern.search(text):
        return pattern.sub(lambda _: body + "\n", text, count=1).rstrip("\n") + "\n"
    return text.rstrip("\n") + "\n\n" + body


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def evaluation_markdown(ev: Evaluation, confusion_png: str = "confusion.png",
                        reliability_png: str = RELIABILITY_PNG) -> str:
    m = ev.metrics
    if ev.split == NEW:
        opening = [NEW_SECTION, "", f"Best checkpoint `{Path(ev.checkpoint).name}` on **new images** from "
                   f"`{ev.data_root}`, which the run never saw: {m.total} images, accuracy **{percent(m.accuracy)}**, "
                   f"macro F1 {m.macro_f1:.3f}. When these come from where future images will (other patients, "
                   "plots, batches), this is the figure to trust."]
    else:
        opening = [SECTION, "", f"Best checkpoint `{Path(ev.checkpoint).name}` on the **{ev.split}** split: "
                   f"{m.total} images, accuracy **{percent(m.accuracy)}**, macro F1 {m.macro_f1:.3f}."]
    lines = [
        *opening, "",
        f"![Confusion matrix: rows are the true class, columns the predicted one]({confusion_png})", "",
        "### Per class", "",
        "| class | precision | recall | F1 | images |", "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {_cell(r.name)} | {percent(r.precision)} | {percent(r.recall)} | {r.f1:.3f} | {r.support} |"
              for r in m.per_class]
    lines += [f"| **macro average** | {percent(m.macro_precision)} | {percent(m.macro_recall)} | {m.macro_f1:.3f} | "
              f"{m.total} |", "", "### What to look at", ""]
    for d in ev.diagnostics:
        advice = f" *Try:* {d.advice}" if d.advice else ""
        lines.append(f"- **{d.severity.capitalize()}: {d.title}.** {d.detail}{advice}")
    lines += confidence_markdown(ev, reliability_png)
    if ev.most_wrong:
        lines += ["", "### Most confident mistakes", "", "| image | true | predicted | confidence |",
                  "|---|---|---|---:|"]
        lines += [f"| `{_cell(w.path)}` | {_cell(ev.classes[w.true])} | {_cell(ev.classes[w.predicted])} | "
                  f"{percent(w.p_predicted)} |" for w in ev.most_wrong]
    if ev.notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in ev.notes]
        lines += [f"  - `{_cell(p)}`: {r}" for p, r in ev.skipped[:20]]
    return "\n".join(lines) + "\n"


def confidence_markdown(ev: Evaluation, reliability_png: str = RELIABILITY_PNG) -> list[str]:
    c = ev.calibration
    if c is None:
        return ["", "### Confidence", "", "This model predates calibration: its probabilities are as trained, and "
                "it cannot say when an image is unlike its training images."]
    lines = ["", "### Confidence", "",
             f"Calibration error (ECE: the average gap between the confidence given and the share of answers that "
             f"were right) on these {ev.metrics.total} images: **{percent(c.before.ece)}** as trained, "
             f"**{percent(c.after.ece)}** with the fitted temperature ({c.temperature:.2f}), which every prediction "
             "uses.",
             "", f"![Reliability diagram: confidence against observed accuracy]({reliability_png})"]
    if c.space:
        from studio.core.trust import SPACE_WORDS

        lines += ["", f"{c.unfamiliar} of these images ({percent(c.unfamiliar / max(ev.metrics.total, 1))}) are "
                  f"flagged as not like the training images, compared by {SPACE_WORDS.get(c.space, c.space)}. "
                  f"The limit lets about {percent(c.share)} of new images like the training images pass; the "
                  "training and validation images it was fitted on are flagged less often."]
    return lines


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A PNG a person can read: counts in the cells, colour by share of the true class.

    Colour by row share keeps a small class's mistakes visible beside a large class; the
    figure grows with the class count and long names are shortened. Uses the Agg canvas
    directly (no pyplot), so it is safe off the main thread and never opens a window.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from studio.core.fonts import use_system_fonts

    use_system_fonts()  # class names in Chinese, Arabic, ... draw as letters where the system has a font

    cm = np.asarray(cm)
    n = len(classes)
    labels = [c if len(c) <= 18 else c[:16] + "…" for c in classes]
    side = min(max(4.0, 0.45 * n + 2.5), 24.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 30:
        size = 10 if n <= 10 else 7
        for i in range(n):
            for j in range(n):
                if cm[i, j] or i == j:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=size,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    path = Path(path)
    with warnings.catch_warnings():
        # A class name in a script the installed fonts lack draws as boxes; say so once, not per glyph.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        write_with(path, lambda handle: fig.savefig(handle, format="png"))
    return path
