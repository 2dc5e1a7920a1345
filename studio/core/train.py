"""The Trainer: one run from a config to checkpoints, history and a report.

It owns the order of things (scan, split, decode, normalize, build, train,
evaluate, save) and turns every outcome into a callback: the CLI prints
them, the window draws them, tests record them. Failures become a plain
message through `on_failed` and a `TrainingError`, never a stray traceback.

The steps themselves live elsewhere: preparing a run in `runprep`, one
training stage in `stage`, every file and database row in `recording`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from studio.core import distributed as dist
from studio.core.atomic import StorageError
from studio.core.callbacks import Callback, CallbackList, RunResult, RunStarted, StopToken
from studio.core.checkpoint import load_checkpoint
from studio.core.config import RunConfig
from studio.core.dataset import ScanReport
from studio.core.devices import autocast_for, describe_device
from studio.core.errors import (
    Cancelled,
    ConfigError,
    DatasetError,
    NonFiniteLoss,
    ScanCancelled,
    TrainingError,
    WeightsUnavailable,
)
from studio.core.labels import apply_overlay, record_labels_version
from studio.core.loop import evaluate, plan_stages
from studio.core.models import count_parameters
from studio.core.project import Project, ProjectError
from studio.core.randomness import RunRandom, private_dropout
from studio.core.recipe import estimate_sentence, recommend
from studio.core.recording import Recorder, RunSummary, build_result, log_traceback, make_run_folder
from studio.core.run_words import time_up_sentence
from studio.core.rundata import RunPixels, decode_images, prepare_pixels
from studio.core.runfiles import split_counts
from studio.core.runprep import (
    BatchMaker,
    bad_files_note,
    build_run_model,
    losses_and_batches,
    open_project,
    plan_run_split,
    run_device,
    scan_images,
    split_rows,
    with_decode_failures,
)
from studio.core.splits import SplitPlan
from studio.core.stage import Stage, StageContext, TrainState, feature_stage, frozen_backbone_engine, run_stage
from studio.core.words import stage_sentence

__all__ = ["Trainer", "TrainingError"]  # TrainingError is defined in studio.core.errors; importable here as before


class Trainer:
    """Drive a run. `Trainer(config).run()` trains; `Trainer.resume(run_dir).run()` continues."""

    def __init__(self, config: RunConfig, *, project: Project | str | Path | None = None,
                 callbacks: list[Callback] | None = None, stop: StopToken | None = None,
                 scan_report: ScanReport | None = None) -> None:
        self.config = config
        self.callbacks = CallbackList(callbacks)
        self.stop = stop or StopToken()
        self.scan_report = scan_report
        self._project_arg = project
        self._resume: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.model: nn.Module | None = None
        self.project: Project | None = None
        self.rank, self.world = 0, 1
        self._state = TrainState()
        self._rec: Recorder | None = None
        self._continuing = False  # resuming a run folder that already exists
        self._device: tuple[Any, str] = (None, "fp32")  # (torch device, precision), once the recipe has spoken
        self._final: Any = None  # the final pass (final_pass.PassResult), for the evaluation in report.md
        # Backbone features of train and val computed once by a frozen backbone: the final pass reuses them.
        self._frozen_features: dict[str, Tensor] = {}
        self._frozen_engine: Any = None  # the frozen backbone's faster engine, for the final pass's test images

    @classmethod
    def resume(cls, run_dir: str | Path, *, epochs: int | None = None, **kwargs: Any) -> Trainer:
        """Continue a run in its own folder and database row; `epochs` trains it further than planned.

        A run killed before its first epoch ended has no last.pt yet: it starts again from its
        config.json and split.csv, still as the same run.
        """
        run_dir = Path(run_dir).expanduser().resolve()
        last = run_dir / "last.pt"
        data = load_checkpoint(last) if last.is_file() else None
        if data is not None:
            config = RunConfig.from_dict(data["config"])
        elif (run_dir / "config.json").is_file():
            config = RunConfig.load(run_dir / "config.json")
        else:
            raise TrainingError(f"{run_dir}: nothing to resume — no last.pt or config.json in this folder")
        if epochs is not None:
            done = int(data["training"].get("epoch", 0)) if data else 0
            if epochs <= done:
                raise TrainingError(f"--epochs {epochs}: this run has already trained {done} epoch(s); "
                                    "give a larger number to train it further")
            config.train.epochs = epochs
        kwargs.setdefault("project", run_dir.parent.parent)
        trainer = cls(config, **kwargs)
        trainer._resume = data
        trainer.run_dir = run_dir
        trainer._continuing = True
        return trainer

    def run(self) -> RunResult:
        started = time.time()
        try:
            return self._run(started)
        except (Cancelled, ScanCancelled):
            message = "Stopped by the user; `studio train --resume RUN_DIR` continues from the last completed epoch."
            return self._finish("stopped", started, None, message)
        except NonFiniteLoss as exc:
            lr = self.config.train.lr
            message = (f"Training stopped: the loss became NaN (not a number) at epoch {self._state.epoch + 1}, "
                       f"{exc}. The learning rate ({lr:g}) is probably too high — try {lr / 10:g}. "
                       "The last good checkpoint was kept.")
            return self._fail(message)
        except (StorageError, ProjectError) as exc:  # a full disk, a read-only folder: the line says it all
            return self._fail(str(exc))
        except (ConfigError, DatasetError, WeightsUnavailable, TrainingError, ValueError, RuntimeError) as exc:
            log_traceback(self.run_dir)
            return self._fail(str(exc))
        except Exception as exc:  # a bug or a broken disk: still a message, a finished record, a log
            where = (" Details are in error.log in the run folder." if log_traceback(self.run_dir) else "")
            return self._fail(f"Unexpected error ({type(exc).__name__}): {exc}.{where}")

    # ----------------------------------------------------------------------------------------- the run

    def _run(self, started: float) -> RunResult:
        cfg = self.config.validate()
        self.rank, self.world = dist.setup()
        if not dist.is_main():
            self.callbacks = CallbackList([])  # one voice: rank 0 reports for all
        self._state = TrainState()
        self.project = open_project(self._project_arg, cfg)
        report, classes, rows, notes, pixels = self._prepare(cfg, started)
        ctx, make = self._context(cfg, pixels, classes)
        stages = self._start(ctx, make, pixels, classes, notes)
        self._rec.summary = RunSummary(classes, pixels.mean, pixels.std, split_counts(rows, classes), notes)
        status = self._train_stages(ctx, make, stages)
        test_acc = self._after_training(ctx, make, pixels, report.root, classes)
        return self._finish(status, started, test_acc)

    def _prepare(self, cfg: RunConfig, started: float
                 ) -> tuple[ScanReport, list[str], list[tuple[str, str, str]], list[str], RunPixels]:
        """Scan, split, settings, run folder, the one decode: everything before the model exists."""
        report = scan_images(cfg, self.scan_report, self.callbacks, self.stop)
        # Labels corrected in the studio (relabelled, left out) apply to every run; the folder stays as it is.
        report, labels_version = apply_overlay(report, self.project)
        # A resumed run keeps its own classes, even if the folder gained or lost some since.
        classes = list(self._resume["classes"]) if self._resume else report.classes
        ids = self.project.record_scan(report) if dist.is_main() else {}
        # Split, then settings: the recipe may look only at what the split leaves outside the test share,
        # and its choices are in config.json and the run's name from the start.
        has_split = self._continuing and self.run_dir is not None and (self.run_dir / "split.csv").exists()
        plan = None if has_split else plan_run_split(cfg, report, self.project, self.callbacks, self.stop)
        if plan is not None and cfg.recipe.mode == "recommended":
            self._recommend(cfg, report, plan, started)
        self.run_dir = make_run_folder(self.project, cfg, self.run_dir)
        self._rec = rec = Recorder(self.project, self.run_dir, cfg, ids)
        rec.open(report)
        record_labels_version(self.project, rec.db_run, labels_version)
        self._device = run_device(cfg, self.world)  # here, after the recipe: an unusable device fails before decoding
        # One decode per image: it fills the cache and is the pixel check (a run's own scan reads headers only).
        paths = [r.path for r in report.good if r.class_name in classes]
        cache = decode_images(cfg, report.root, paths, cache_dir=self.project.cache_dir, callbacks=self.callbacks,
                              should_stop=self.stop)
        if cache.failures:
            report = with_decode_failures(report, paths, cache.failures)
            classes = list(self._resume["classes"]) if self._resume else report.classes
            rec.scan_ids = self.project.record_scan(report) if dist.is_main() else {}
        self.scan_report = report
        rows = self._rows(report, classes, plan)
        notes = [bad_files_note(report)] if report.bad else []
        notes += (plan.notes if plan else []) + ([cfg.recipe.reason] if cfg.recipe.reason else [])
        pixels = prepare_pixels(cfg, cache, paths, rows, classes, callbacks=self.callbacks, resume=self._resume)
        rec.record_split(rows)
        return report, classes, rows, notes, pixels

    def _context(self, cfg: RunConfig, pixels: RunPixels, classes: list[str]) -> tuple[StageContext, BatchMaker]:
        """The model (fresh or resumed), its loss and batches, and what every stage shares."""
        device, precision = self._device
        self.callbacks.on_status(f"Building {cfg.model.arch}")
        model, channels_last = build_run_model(cfg, len(classes), device, self._resume)
        if self._resume:
            self._state = TrainState.from_training(self._resume["training"])
        if self._continuing:
            self._rec.reconcile(self._state.history)  # a kill between checkpoint and database row left a gap
        random = RunRandom(cfg.data.seed, device)
        private_dropout(model, random.dropout)
        self.model = model
        criterion, make = losses_and_batches(cfg, pixels, len(classes), device, channels_last, self.rank, self.world)
        rec = self._rec
        ctx = StageContext(
            config=cfg, model=model, criterion=criterion, plain_loss=nn.CrossEntropyLoss(),
            autocast=autocast_for(device, precision), device=device, precision=precision, state=self._state,
            callbacks=self.callbacks, stop=self.stop, world=self.world,
            save_epoch=lambda opt, stage, best, row: rec.save_epoch(model, opt, stage, best, row, self._state),
            resume_training=(self._resume or {}).get("training", {}), random=random,
            deadline=time.time() + cfg.train.time_limit if cfg.train.time_limit else 0.0)
        return ctx, make

    def _after_training(self, ctx: StageContext, make: BatchMaker, pixels: RunPixels, root: str,
                        classes: list[str]) -> float | None:
        """One pass of every image through the best weights: temperature, familiarity, test accuracy, evaluation.

        The best weights, not the last, are what the user gets, so the last epoch's validation pass is
        not reused: it was made with other weights whenever the best epoch was an earlier one. A frozen
        backbone's features are: no epoch changed it, so only its new last layer runs on them again.
        """
        model = ctx.model
        if (self.run_dir / "best.pt").exists():
            model.load_state_dict(load_checkpoint(self.run_dir / "best.pt")["state_dict"])
        if not dist.is_main():
            if not pixels.split["test"]:
                return None
            stats, _ = evaluate(model, make("test", False), ctx.plain_loss, autocast=contextlib.nullcontext)
            return stats.accuracy
        from studio.core.final_pass import PassResult, final_pass
        from studio.core.trust_fit import fit_after_training

        known = self._frozen_features if ctx.config.model.mode == "head" else None
        passes = final_pass(model, lambda s: make(s, False), pixels.split, known=known,
                            engine=self._frozen_engine if known is not None else None)
        held = ctx.cross_fitted.get("val")
        if held is not None and "val" in passes and len(held) == len(passes["val"].labels):
            # The refitted layer saw the validation images: the temperature is fitted on logits that did not.
            passes["val"].logits = held.float()
        fit = fit_after_training(passes=passes, split=pixels.split, rows=pixels.rows, root=root,
                                 run_dir=self.run_dir, config=ctx.config, project_folder=self.project.folder,
                                 callbacks=self.callbacks, should_stop=self.stop)
        # Else the evaluation reads the checkpoint and the files itself: best.pt may carry older fields, or
        # (under torchrun) this rank's batches held only its share of the images.
        if fit is not None and self.world == 1:
            self._final = PassResult(passes, [row[0] for row in pixels.rows], classes, fit.checkpoint_fields())
        return passes["test"].accuracy if "test" in passes else None

    def _rows(self, report: ScanReport, classes: list[str], plan: SplitPlan | None) -> list[tuple[str, str, str]]:
        """The split, written down before any pixel is decoded; only images still usable and of a known class."""
        rows, fresh = split_rows(self.run_dir, plan)
        good = {r.path for r in report.good}
        keep = [i for i, row in enumerate(rows) if row[0] in good and row[1] in classes]
        if fresh:  # written without the images the decode refused, so split.csv lists what was trained on
            groups = [plan.groups[i] for i in keep]
            self._rec.write_split([rows[i] for i in keep], groups)
        return [rows[i] for i in keep]

    def _start(self, ctx: StageContext, make: BatchMaker, pixels: RunPixels, classes: list[str],
               notes: list[str]) -> list[Stage]:
        """Plan the stages, then tell the world what is about to run."""
        cfg, model = ctx.config, ctx.model
        train = make("train", True)
        val = make("val", False) if pixels.split["val"] else None
        stages = [Stage(name, first, last, model, train, val, lr_scale=1.0 if name == "head" else None)
                  for name, first, last in plan_stages(cfg.model.mode, cfg.train.epochs, cfg.train.head_epochs)]
        pending = [s for s in stages if s.last > self._state.epoch] or stages[-1:]
        model.set_trainable(pending[0].name)
        total_params, trainable = count_parameters(model)
        self.callbacks.on_run_start(RunStarted(
            run_dir=str(self.run_dir), classes=classes, train_images=len(pixels.split["train"]),
            val_images=len(pixels.split["val"]), test_images=len(pixels.split["test"]),
            device=describe_device(ctx.device), precision=ctx.precision, epochs=cfg.train.epochs,
            start_epoch=self._state.epoch, batches_per_epoch=len(train), parameters=total_params,
            trainable_parameters=trainable, notes=notes,
        ))
        return stages

    def _features_once(self, cfg: RunConfig) -> bool:
        return not cfg.augment.needs_pixels and self.world == 1

    def _train_stages(self, ctx: StageContext, make: BatchMaker, stages: list[Stage]) -> str:
        status = "finished"
        total = count_parameters(ctx.model)[0]
        for number, stage in enumerate(stages, start=1):
            if self._state.epoch >= stage.last:
                continue
            ctx.model.set_trainable(stage.name)
            once = stage.name == "head" and self._features_once(ctx.config)
            # Said when the stage starts, so the log never repeats a stage that is over.
            self.callbacks.on_status(stage_sentence(
                number, len(stages), stage.name, count_parameters(ctx.model)[1], total,
                pretrained=ctx.model.pretrained, backbone_scale=ctx.config.train.backbone_lr_scale,
                features_once=once))
            if once:
                # Frozen backbone, unchanging pixels: compute its features once, train the head on them.
                self.callbacks.on_status("Computing the pretrained part's features once per image")
                self._frozen_engine = frozen_backbone_engine(ctx.model, ctx.config.model.image_size,
                                                             sum(map(len, make.pixels.split.values())))
                stage = feature_stage(stage, ctx.model, make, ctx.config, make.sample_weights, self._frozen_engine)
                self._frozen_features = {"train": stage.train.features}
                if stage.val is not None:
                    self._frozen_features["val"] = stage.val.features
            status = run_stage(ctx, stage)
            if status == "time-up":
                said = time_up_sentence(self._state.epoch, ctx.config.train.epochs)
                self._rec.summary.notes.append(said)
                self.callbacks.on_status(said)
                return "finished"
            if status == "early-stopped":
                break
        return status

    def _recommend(self, cfg: RunConfig, report: ScanReport, plan: SplitPlan, started: float) -> None:
        """Let the automatic recipe fill in what the user did not set; one process decides for all."""
        if self.world > 1:
            cfg.recipe.mode = "manual"
            self.callbacks.on_status("Several processes: the settings are used as given, not recommended.")
            return
        sizes = {r.path: (r.width, r.height) for r in report.good}
        recipe = recommend(cfg, report.root, plan.rows, [sizes[row[0]] for row in plan.rows], report.classes,
                           project_folder=str(self.project.folder), spent=time.time() - started,
                           on_status=self.callbacks.on_status, should_stop=self.stop)
        recipe.apply(cfg)
        self.callbacks.on_status(f"{recipe.reason} {estimate_sentence(recipe)}")

    # ----------------------------------------------------------------------------------------- endings

    def _finish(self, status: str, started: float, test_acc: float | None, message: str = "") -> RunResult:
        result = build_result(self._state, self.run_dir, status, started, test_acc, message)
        if self._rec is not None:
            self._rec.write_report(result, self._state.history)
            if status != "stopped":
                self._rec.write_evaluation(self.callbacks, self._final)
            self._rec.finish(status, result, message)
        dist.teardown()
        self.callbacks.on_finished(result)
        return result

    def _fail(self, message: str) -> RunResult:
        if self._rec is not None:
            self._rec.fail(message)
            self._rec.write_report(build_result(self._state, self.run_dir, "failed", time.time(), None, message),
                                   self._state.history, quiet=True)
        dist.teardown(ok=False)  # no barrier: the other ranks may never reach it; torchrun ends them
        self.callbacks.on_failed(message)
        raise TrainingError(message)
