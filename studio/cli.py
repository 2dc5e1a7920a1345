"""`studio` on the command line: thin over `studio.core`, same results as the window.

`studio` alone opens the window; `scan`, `train`, `predict` and `runs` work
headless. Every failure ends as one readable line on stderr and a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from studio import cli_audit, cli_doctor, cli_model
from studio.core.config import (
    AUGMENT_PRESETS,
    BUDGETS,
    FAMILIARITY_SPACES,
    IMBALANCE,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TRANSFER_MODES,
)


def _architectures() -> list[str]:
    from studio.core.architectures import list_architectures  # torch-free: `--help` stays fast

    return list_architectures()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Classification Studio: train image classifiers "
                                     "from folders of labelled images. Without a command, opens the window.")
    parser.add_argument("--open", dest="folder", metavar="DIR",
                        help="open the window with this image folder loaded (also: studio DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("scan", help="check a class-per-folder image tree and count its classes")
    p.add_argument("data", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("train", help="train a model on a class-per-folder image tree")
    p.add_argument("--data", metavar="DIR", help="image folder: one sub-folder per class")
    p.add_argument("--config", metavar="RUN_JSON", help="start from a saved config.json; other options override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--project", metavar="DIR", help="project folder for runs and the database")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--arch", choices=_architectures())
    p.add_argument("--pretrained", metavar="imagenet|none|PATH")
    p.add_argument("--mode", choices=TRANSFER_MODES)
    p.add_argument("--image-size", type=int)
    p.add_argument("--blocks", type=int, help="custom CNN: number of conv blocks")
    p.add_argument("--width", type=int, help="custom CNN: channels of the first block")
    p.add_argument("--dropout", type=float)
    p.add_argument("--kernel-size", type=int)
    p.add_argument("--augment", choices=AUGMENT_PRESETS, metavar="PRESET", help=f"one of {', '.join(AUGMENT_PRESETS)}")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--warmup", type=float, metavar="EPOCHS")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--imbalance", choices=IMBALANCE)
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE")
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--val", type=float, metavar="FRACTION", help="share of images for validation (default 0.2)")
    p.add_argument("--test", type=float, metavar="FRACTION", help="share of images held out for a final test")
    p.add_argument("--seed", type=int)
    p.add_argument("--group-by", metavar="folder|folder:N|PATTERN",
                   help="keep related images on one side of the split: the sub-folder below each class folder "
                        "(folder, or folder:N for deeper), or a file-name pattern with one group, e.g. '^(P\\d+)_'")
    p.add_argument("--no-near-duplicates", action="store_true",
                   help="do not group near-copies of one picture when splitting")
    p.add_argument("--budget", choices=BUDGETS, help="time for the recommended settings: minute (default), "
                   "ten-minutes or best")
    p.add_argument("--manual", action="store_true",
                   help="use the settings as given instead of the recommended ones")
    p.add_argument("--device", metavar="auto|cpu|cuda|cuda:N|mps", help="where to train (default: automatic)")
    p.add_argument("--backbone-lr-scale", type=float, metavar="FACTOR",
                   help="a pretrained backbone learns at the learning rate times this (default 0.1)")
    p.add_argument("--head-epochs", type=int, metavar="EPOCHS",
                   help="two-stage mode: epochs in which only the new last layer learns (default 2)")
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--familiar-share", type=float, metavar="SHARE",
                   help="share of validation images the 'unlike the training images' limit lets pass (default 0.95)")
    p.add_argument("--familiarity-space", choices=FAMILIARITY_SPACES,
                   help="features the familiarity is measured in: auto (default), network or reference")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("predict", help="classify images with a trained model")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_or_DIR")
    p.add_argument("--model", required=True, metavar="RUN_DIR_or_CHECKPOINT")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--csv", metavar="OUT")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("calibrate", help="fit a finished run's confidence calibration and its 'unlike the "
                       "training images' check again (for runs made before they existed, or another setting)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--familiar-share", type=float, metavar="SHARE",
                   help="share of validation images the limit lets pass (default: the run's, 0.95)")
    p.add_argument("--familiarity-space", choices=FAMILIARITY_SPACES)

    p = sub.add_parser("sample", help="draw the built-in sample data set (4 shape classes) into a folder")
    p.add_argument("folder", nargs="?", metavar="DIR", help="where to write it (default: the user cache)")
    p.add_argument("--per-class", type=int, default=60)

    p = sub.add_parser("runs", help="list the project's runs, or the images of one run's split")
    p.add_argument("--project", metavar="DIR")
    p.add_argument("--images", metavar="RUN", help="list the images a run used (id or folder name)")
    p.add_argument("--split", choices=("train", "val", "test"), help="with --images: one split only")
    p.add_argument("--json", action="store_true")
    cli_model.add_parsers(sub)
    cli_doctor.add_parsers(sub)
    cli_audit.add_parsers(sub)
    return parser


class CliError(Exception):
    pass


def _config_from_args(args: argparse.Namespace):
    from studio.core.config import AugmentConfig, RunConfig

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if args.data:
        cfg.data.root = str(Path(args.data).expanduser().resolve())
    if not cfg.data.root:
        raise CliError("--data: give the image folder (one sub-folder per class)")
    if args.augment:
        cfg.augment = AugmentConfig.from_preset(args.augment)
    mapping = {
        "arch": ("model", "arch"), "pretrained": ("model", "pretrained"), "mode": ("model", "mode"),
        "image_size": ("model", "image_size"), "blocks": ("model", "blocks"), "width": ("model", "width"),
        "dropout": ("model", "dropout"), "kernel_size": ("model", "kernel_size"), "epochs": ("train", "epochs"),
        "batch_size": ("train", "batch_size"), "lr": ("train", "lr"), "optimizer": ("train", "optimizer"),
        "weight_decay": ("train", "weight_decay"), "schedule": ("train", "schedule"),
        "warmup": ("train", "warmup_epochs"), "label_smoothing": ("train", "label_smoothing"),
        "imbalance": ("train", "imbalance"), "early_stopping": ("train", "early_stopping"),
        "grad_clip": ("train", "grad_clip"), "device": ("train", "device"), "precision": ("train", "precision"),
        "backbone_lr_scale": ("train", "backbone_lr_scale"), "head_epochs": ("train", "head_epochs"),
        "familiar_share": ("train", "familiar_share"), "familiarity_space": ("train", "familiarity_space"),
        "val": ("data", "val_fraction"), "test": ("data", "test_fraction"), "seed": ("data", "seed"),
        "group_by": ("data", "group_by"), "budget": ("recipe", "budget"),
    }
    if not args.config:
        cfg.recipe.mode = "manual" if args.manual else "recommended"
    pinned = set(cfg.recipe.pinned)
    for arg, (section, key) in mapping.items():
        value = getattr(args, arg)
        if value is not None:
            setattr(getattr(cfg, section), key, value)
            pinned.add(f"{section}.{key}")
    if args.augment:
        pinned.add("augment.preset")
    if args.no_near_duplicates:
        cfg.data.near_duplicates = False
    cfg.recipe.pinned = sorted(pinned)
    if args.pretrained and args.pretrained not in ("none", "imagenet"):
        cfg.model.pretrained = str(Path(args.pretrained).expanduser().resolve())
    if args.arch and args.image_size is None and not args.config:
        from studio.core.models import architecture_info

        cfg.model.image_size = architecture_info(args.arch).default_image_size
    if args.pretrained and args.pretrained != "none" and args.mode is None and not args.config:
        cfg.model.mode = "two-stage"  # a sensible default for transfer learning
    if args.name:
        cfg.name = args.name
    return cfg.validate()


def cmd_scan(args: argparse.Namespace) -> int:
    from studio.core.dataset import scan

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rchecking images {done}/{total}", end="", file=sys.stderr, flush=True)

    report = scan(args.data, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_table())
    return 0 if report.usable else 1


# What `train --resume` accepts besides the run folder; every other option is refused by name.
_RESUME_OPTIONS = {"command", "folder", "resume", "project", "epochs", "json", "quiet"}


def _resume_epochs(args: argparse.Namespace) -> int | None:
    """A resumed run keeps its own settings: --epochs trains it further, anything else is refused, never ignored."""
    given = sorted(name for name, value in vars(args).items()
                   if name not in _RESUME_OPTIONS and value not in (None, False))
    if given:
        option = "--" + given[0].replace("_", "-")
        raise CliError(f"{option}: a resumed run continues with its own settings (only --epochs can change); "
                       f"to change {option}, start a new run: studio train --config RUN_DIR/config.json {option} ...")
    return args.epochs


def cmd_train(args: argparse.Namespace) -> int:
    from studio.cli_console import ConsoleCallback
    from studio.core.callbacks import StopToken
    from studio.core.train import Trainer

    stop = StopToken()
    console = ConsoleCallback(quiet=args.quiet or args.json)

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.stopped:
            raise KeyboardInterrupt
        print("\nStopping after this batch (the last finished epoch is kept); Ctrl-C again to abort.",
              file=sys.stderr)
        stop.stop()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        if args.resume:
            trainer = Trainer.resume(args.resume, epochs=_resume_epochs(args), callbacks=[console], stop=stop,
                                     **({"project": args.project} if args.project else {}))
        else:
            trainer = Trainer(_config_from_args(args), project=args.project, callbacks=[console], stop=stop)
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    from studio.core.distributed import is_main

    if args.json and is_main():
        print(json.dumps(result.to_dict(), indent=2))
    return 130 if result.status == "stopped" else 0


def cmd_predict(args: argparse.Namespace) -> int:
    from studio.core.predict import Predictor, expand_inputs, to_json, write_csv

    if args.top_k < 1:
        raise CliError("--top-k: must be 1 or more")
    predictor = Predictor(args.model)
    files = expand_inputs(args.inputs)
    if not files:
        raise CliError(f"no image files found in {', '.join(args.inputs)}")
    predictions = []
    quiet = args.json or args.csv
    if not quiet and predictor.familiarity is None:
        print("note: this model predates the familiarity check; every verdict is 'unavailable' "
              "(retrain to get one)", file=sys.stderr)
    for p in predictor.predict_paths(files, top_k=args.top_k):
        predictions.append(p)
        if not quiet:
            print(_predict_line(p))
    if args.csv:
        write_csv(predictions, args.csv, args.top_k)
        flagged = sum(1 for p in predictions if p.unfamiliar)
        print(f"wrote {len(predictions)} rows to {args.csv}"
              + (f" ({flagged} not like the training images)" if flagged else ""))
    if args.json:
        print(json.dumps([to_json(p) for p in predictions], indent=2))
    return 1 if all(p.error for p in predictions) else 0


def _predict_line(p: Any) -> str:
    from studio.core.predict import UNFAMILIAR_MESSAGE

    if p.error:
        return f"{p.path}: unusable — {p.error}"
    classes = ", ".join(f"{c} {100 * v:.1f}%" for c, v in p.top)
    if p.unfamiliar:
        return f"{p.path}: UNFAMILIAR (score {p.score:.2f}) — {UNFAMILIAR_MESSAGE}; its guess: {classes}"
    if p.unfamiliar is None:
        return f"{p.path}: {classes}"
    return f"{p.path}: {classes} (familiar, score {p.score:.2f})"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from studio.cli_console import ConsoleCallback
    from studio.core.trust import SPACE_WORDS
    from studio.core.trust_fit import refit_run

    fit = refit_run(args.run_dir, space=args.familiarity_space, share=args.familiar_share,
                    callbacks=ConsoleCallback(quiet=True))
    print(f"temperature {fit.temperature:.3f}; calibration error on validation {100 * fit.before.ece:.1f}% -> "
          f"{100 * fit.after.ece:.1f}%; familiarity measured in {SPACE_WORDS[fit.familiarity.space]}, "
          f"limit set so {100 * fit.familiarity.share:.0f}% of validation images pass")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from studio.core.project import Project, default_project_dir

    folder = Path(args.project) if args.project else default_project_dir()
    if not (folder / "project.sqlite").exists():
        raise CliError(f"--project: {folder} holds no project.sqlite (no runs yet)")
    project = Project(folder)
    if args.images:
        try:
            run = project.find_run(args.images)
        except KeyError as exc:
            raise CliError(f"--images: {exc.args[0]}") from None
        rows = project.split_images(run.id, args.split)
        if args.json:
            print(json.dumps([{"path": p, "class": c, "split": s} for p, c, s in rows], indent=2))
        else:
            for path, cls, split in rows:
                print(f"{split}\t{cls}\t{path}")
        return 0
    runs = project.runs()
    if args.json:
        print(json.dumps([r.__dict__ for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {project.folder}")
        return 0
    print(f"{'id':>3}  {'run':<32} {'arch':<20} {'status':<14} {'epochs':>6} {'test acc':>8} {'best val acc':>12}")
    for r in runs:
        best = "—" if r.best_metric is None else f"{100 * r.best_metric:.1f}%"
        test = "—" if r.test_acc is None else f"{100 * r.test_acc:.1f}%"
        print(f"{r.id:>3}  {Path(r.folder).name:<32} {r.arch:<20} {r.status:<14} {r.epochs_done:>6} {test:>8} "
              f"{best:>12}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from studio.core.sample import make_sample_dataset

    if args.per_class < 2:
        raise CliError("--per-class: must be 2 or more")
    print(make_sample_dataset(args.folder, per_class=args.per_class))
    return 0


def cmd_window(args: argparse.Namespace) -> int:
    from studio.core.display import WindowUnavailable, check_window_can_start

    try:  # before Qt loads its platform plugin, which aborts the process when a library is missing
        check_window_can_start()
    except WindowUnavailable as exc:
        print(f"studio: {exc}", file=sys.stderr)
        return 3
    try:
        from studio.ui.app import run_app
    except ImportError as exc:
        raise CliError(f"the window needs PySide6 ({exc}); `pip install PySide6-Essentials`") from None
    return run_app(args.folder)


COMMANDS = {"scan": cmd_scan, "train": cmd_train, "predict": cmd_predict, "runs": cmd_runs, "sample": cmd_sample,
            "calibrate": cmd_calibrate}
COMMANDS.update(cli_model.MODEL_COMMANDS)
COMMANDS.update(cli_doctor.COMMANDS)
COMMANDS.update(cli_audit.AUDIT_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv = ["--open", *argv]  # `studio DIR` opens the window on DIR
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = COMMANDS
    from studio.core.errors import user_errors

    try:
        return commands.get(args.command, cmd_window)(args)
    except (*user_errors(), CliError) as exc:
        print(f"studio {args.command or ''}: error: {exc}".replace("  ", " "), file=sys.stderr)
        return 2 if isinstance(exc, (CliError,)) else 1
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `studio predict ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
