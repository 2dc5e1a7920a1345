"""`studio evaluate` and `studio export`: what a finished run is worth, and shipping it.

Thin over `studio.core.evaluate` and `studio.core.export`; a failure the user can
fix ends as one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

Command = Callable[[argparse.Namespace], int]


def _plain_errors(fn: Command) -> Command:
    """Our own user-facing errors become one line; those of the rest of core reach cli.main's handler."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        from studio.core.errors import EvaluationError, ExportError

        try:
            return fn(args)
        except (EvaluationError, ExportError) as exc:
            print(f"studio {args.command}: error: {exc}", file=sys.stderr)
            return 1

    return run


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `evaluate` and `export` on the `studio` parser's sub-commands (see MODEL_COMMANDS)."""
    p = sub.add_parser("evaluate", help="measure a finished run on its validation (or test) images and "
                       "write confusion.png and an Evaluation section into its report.md")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", choices=("val", "test", "train"), default="val")
    p.add_argument("--data", metavar="DIR", help="measure it instead on a folder of new labelled images it never "
                   "saw (one sub-folder per class, named as the run's classes): your own test of it, written "
                   "into report.md beside the run's own figures")
    p.add_argument("--json", action="store_true", help="print the full evaluation as JSON")
    p.add_argument("--no-write", action="store_true", help="print only; leave report.md and confusion.png alone")

    p = sub.add_parser("export", help="write a model package (ONNX model, model card, predict.py), or an ONNX or "
                       "PyTorch (.pt2) file, with resizing, normalization and softmax inside")
    p.add_argument("run_dir", metavar="RUN_DIR_or_CHECKPOINT")
    p.add_argument("--format", choices=("package", "onnx", "pt2", "torchscript"), default="package",
                   help="package (a folder for people who ship: model.onnx, model.json, README.md model card, "
                   "predict.py needing only onnxruntime, Pillow and numpy), onnx (ONNX Runtime, OpenCV, other "
                   "languages), pt2 (PyTorch's torch.export format), torchscript (legacy: deprecated by PyTorch)")
    p.add_argument("--out", metavar="PATH", help="default: model-package/, model.onnx, model.pt2 or model.pt in the "
                   "run folder")


@_plain_errors
def cmd_evaluate(args: argparse.Namespace) -> int:
    from studio.core.evaluate import evaluate_run
    from studio.core.evaluation_report import write_evaluation
    from studio.core.new_images import evaluate_folder

    evaluation = evaluate_folder(args.run_dir, args.data) if args.data else evaluate_run(args.run_dir, args.split)
    written = () if args.no_write else write_evaluation(evaluation)
    if args.json:
        print(json.dumps(evaluation.to_dict(), indent=2))
        return 0
    print(format_evaluation(evaluation))
    if written:
        print(f"\nwrote {written[0]} and {written[1]}")
    return 0


def format_evaluation(ev) -> str:  # noqa: ANN001 - an Evaluation; imported lazily to keep startup light
    m = ev.metrics
    width = max(12, *(len(c) for c in ev.classes))
    what = f"new images in {ev.data_root}" if ev.split == "new" else ev.split
    lines = [f"{what}: {m.total} images, accuracy {100 * m.accuracy:.1f}%, macro F1 {m.macro_f1:.3f}", "",
             f"{'class':<{width}}  precision  recall     F1  images"]
    lines += [f"{r.name:<{width}}  {100 * r.precision:8.1f}%  {100 * r.recall:5.1f}%  {r.f1:.3f}  {r.support:6d}"
              for r in m.per_class]
    lines += ["", "confusion matrix (rows: true class, columns: predicted):"]
    short = [c[:8] for c in ev.classes]
    lines.append(" " * (width + 2) + " ".join(f"{c:>8}" for c in short))
    lines += [f"{c:<{width}}  " + " ".join(f"{int(v):>8d}" for v in row) for c, row in zip(ev.classes, m.confusion)]
    if ev.most_wrong:
        lines += ["", "most confident mistakes:"]
        lines += [f"  {w.path}: {ev.classes[w.true]} taken for {ev.classes[w.predicted]} "
                  f"({100 * w.p_predicted:.0f}%)" for w in ev.most_wrong[:10]]
    lines += [""] + [f"[{d.severity}] {d.title}. {d.detail}" + (f"\n    try: {d.advice}" if d.advice else "")
                     for d in ev.diagnostics]
    c = ev.calibration
    if c is not None and c.space:
        lines.append(f"{c.unfamiliar} of these images ({100 * c.unfamiliar / max(m.total, 1):.0f}%) look unlike the "
                     "training images: answers on them deserve care")
    lines += [f"note: {n}" for n in ev.notes]
    lines += [f"  {path}: {reason}" for path, reason in ev.skipped[:10]]
    if len(ev.skipped) > 10:
        lines.append(f"  and {len(ev.skipped) - 10} more (report.md lists up to 20)")
    return "\n".join(lines)


@_plain_errors
def cmd_export(args: argparse.Namespace) -> int:
    from studio.core.package import export_model

    exported = export_model(args.run_dir, args.format, Path(args.out) if args.out else None)
    if exported.format == "package":
        print(f"wrote the model package {exported.path}: model.onnx, model.json, README.md (model card), predict.py")
    else:
        print(f"wrote {exported.path} ({exported.format}) and {exported.sidecar}")
    return 0


# For cli.COMMANDS: known before parsing, because `studio WORD` opens the window unless WORD is a command.
MODEL_COMMANDS: dict[str, Command] = {"evaluate": cmd_evaluate, "export": cmd_export}
