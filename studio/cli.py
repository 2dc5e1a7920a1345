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

from studio import cli_audit, cli_doctor, cli_evaluate_export
from studio.cli_options import add_config_options, apply_options, given
from studio.core.config import BUDGETS, FAMILIARITY_SPACES


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
    p.add_argument("--config", metavar="RUN_JSON", help="start from a saved config.json; other options override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--project", metavar="DIR", help="project folder for runs and the database")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--budget", choices=BUDGETS, help="time for the recommended settings: minute (default), "
                   "ten-minutes or best")
    p.add_argument("--manual", action="store_true",
                   help="use the settings as given instead of the recommended ones")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(p)  # every config field, from its metadata: --epochs, --val, --momentum, --hflip, ...

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
    cli_evaluate_export.add_parsers(sub)
    cli_doctor.add_parsers(sub)
    cli_audit.add_parsers(sub)
    return parser


class CliError(Exception):
    pass


def _config_from_args(args: argparse.Namespace):
    from studio.core.config import RunConfig
    from studio.core.policies import arch_defaults, mode_for_weights

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    values = given(args)
    before = cfg.model.pretrained
    apply_options(cfg, values)
    if not cfg.data.root:
        raise CliError("--data: give the image folder (one sub-folder per class)")
    if not args.config:  # a saved config already made these choices
        cfg.recipe.mode = "manual" if args.manual else "recommended"
        if "model.arch" in values and "model.image_size" not in values:
            cfg.model.image_size = arch_defaults(cfg.model.arch, pick_weights=False)["image_size"]
        if "model.pretrained" in values and "model.mode" not in values:
            cfg.model.mode = mode_for_weights(cfg.model.pretrained, before, cfg.model.mode)
    if args.budget:
        cfg.recipe.budget = args.budget
    # What the user set by hand the recipe leaves alone; the data folder and the split are not its choice anyway.
    pinned = set(cfg.recipe.pinned) | {key for key in values if key != "data.root"}
    if "model.arch" in values and "model.image_size" not in values:
        pinned.add("model.image_size")
    cfg.recipe.pinned = sorted(pinned)
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
    if not args.json and report.usable:
        from studio.core.policies import gpu_likely, recommendation

        print("\nAdvice: " + recommendation(report, gpu=gpu_likely()))  # torch-free: scan stays quick
    return 0 if report.usable else 1


def _resume_epochs(args: argparse.Namespace) -> int | None:
    """A resumed run keeps its own settings: --epochs trains it further, anything else is refused, never ignored."""
    names = args.cfg_options  # field -> its option, as generated for this parser
    given_options = sorted(names[key] for key in given(args) if key != "train.epochs")
    given_options += ["--" + name for name in ("config", "name", "budget", "manual") if getattr(args, name, None)]
    if given_options:
        option = given_options[0]
        raise CliError(f"{option}: a resumed run continues with its own settings (only --epochs can change); "
                       f"to change {option}, start a new run: studio train --config RUN_DIR/config.json {option} ...")
    return given(args).get("train.epochs")


def cmd_train(args: argparse.Namespace) -> int:
    from studio.cli_console import ConsoleCallback
    from studio.core.callbacks import StopToken
    from studio.core.train import Trainer

    stop = StopToken()
    console = ConsoleCallback(quiet=args.quiet or args.json)

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.stopped:
            raise KeyboardInterrupt
        from studio.core.run_words import STOPPING

        print(f"\n{STOPPING} Press Ctrl-C again to abort.", file=sys.stderr)
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
    elif not quiet:
        from studio.core.trust import SPACE_WORDS

        print(f"note: each image is compared with the training images by {SPACE_WORDS[predictor.space]}",
              file=sys.stderr)
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
    from studio.core.run_words import status_word
    from studio.core.words import percent

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
        status, test, best = status_word(r.status), percent(r.test_acc), percent(r.best_metric)
        print(f"{r.id:>3}  {Path(r.folder).name:<32} {r.arch:<20} {status:<14} {r.epochs_done:>6} {test:>8} {best:>12}")
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
COMMANDS.update(cli_evaluate_export.MODEL_COMMANDS)
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
