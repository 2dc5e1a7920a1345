"""The Trainer: one run from a config to checkpoints, history and a report.

It owns the order of things (scan, split, decode, normalize, build, train,
evaluate, save) and turns every outcome into a callback: the CLI prints
them, the window draws them, tests record them. Failures become a plain
message through `on_failed` and a `TrainingError`, never a stray traceback.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.core import distributed as dist
from studio.core.augment import build_train_transform
from studio.core.cache import Cancelled
from studio.core.callbacks import Callback, CallbackList, EpochEnd, RunResult, RunStarted, StopToken
from studio.core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from studio.core.config import ConfigError, RunConfig
from studio.core.dataset import DatasetError, ScanCancelled, ScanReport, scan
from studio.core.loop import (
    FeatureBatches,
    NonFiniteLoss,
    PixelBatches,
    Schedule,
    autocast_for,
    compute_features,
    describe_device,
    evaluate,
    make_criterion,
    pick_device,
    pick_precision,
    plan_stages,
    train_one_epoch,
)
from studio.core.models import build_model, count_parameters
from studio.core.project import Project, default_project_dir
from studio.core.recipe import estimate_sentence, recommend
from studio.core.rundata import TrainingError, prepare_pixels
from studio.core.runfiles import read_split, split_counts, write_history, write_report, write_split
from studio.core.splits import SplitPlan, near_duplicate_ids, plan_split
from studio.core.weights import WeightsUnavailable


@dataclass
class _State:
    """What changes epoch by epoch, and what a resume needs back."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_key: tuple[float, float] = (-1.0, float("-inf"))
    bad_epochs: int = 0


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
        self._state = _State()
        self._db_run: int | None = None
        self.split_plan = None

    @classmethod
    def resume(cls, run_dir: str | Path, **kwargs: Any) -> Trainer:
        run_dir = Path(run_dir)
        last = run_dir / "last.pt"
        if not last.is_file():
            raise TrainingError(f"{run_dir}: nothing to resume — no last.pt in this folder")
        data = load_checkpoint(last)
        config = RunConfig.from_dict(data["config"])
        kwargs.setdefault("project", run_dir.parent.parent)
        trainer = cls(config, **kwargs)
        trainer._resume = data
        trainer.run_dir = run_dir
        return trainer

    # ----------------------------------------------------------------------------------------- public

    def run(self) -> RunResult:
        started = time.time()
        try:
            return self._run(started)
        except (Cancelled, ScanCancelled):
            return self._stopped(started)
        except NonFiniteLoss as exc:
            lr = self.config.train.lr
            message = (f"Training stopped: the loss became NaN (not a number) at epoch {self._state.epoch + 1}, "
                       f"{exc}. The learning rate ({lr:g}) is probably too high — try {lr / 10:g}. "
                       "The last good checkpoint was kept.")
            return self._fail(message)
        except (ConfigError, DatasetError, WeightsUnavailable, TrainingError, ValueError, RuntimeError) as exc:
            self._log_traceback()
            return self._fail(str(exc))
        except Exception as exc:  # a bug or a broken disk: still a message, a finished record, a log
            self._log_traceback()
            return self._fail(f"Unexpected error ({type(exc).__name__}): {exc}. Details are in error.log "
                              "in the run folder.")

    # ----------------------------------------------------------------------------------------- stages

    def _run(self, started: float) -> RunResult:
        self._started = started
        cfg = self.config.validate()
        self.rank, self.world = dist.setup()
        if not dist.is_main():
            self.callbacks = CallbackList([])  # one voice: rank 0 reports for all
        self._state = _State()
        project = self._open_project(cfg)
        report = self._scan(cfg)
        # A resumed run keeps its own classes, even if the folder gained or lost some since.
        classes = list(self._resume["classes"]) if self._resume else report.classes
        ids = project.record_scan(report) if dist.is_main() else {}
        plan = None if self._resume else self._plan_split(cfg, report)
        if plan is not None and cfg.recipe.mode == "recommended":
            self._recommend(cfg, report, plan, started)
        self._make_run_dir(project, cfg, report.root)
        rows = self._split_rows(plan)
        good = {r.path: r for r in report.good}
        rows = [row for row in rows if row[0] in good and row[1] in classes]
        notes: list[str] = []
        if report.bad:
            notes.append(f"{len(report.bad)} unusable file(s) skipped; the scan report lists each with its reason.")
        if plan is not None:
            notes.extend(plan.notes)
        if cfg.recipe.reason:
            notes.append(cfg.recipe.reason)

        if self.world > 1:
            device = torch.device("cuda", dist.local_rank()) if torch.cuda.is_available() else torch.device("cpu")
        else:
            device = pick_device(cfg.train.device)
        precision = pick_precision(cfg.train.precision, device)
        autocast = autocast_for(device, precision)

        data = prepare_pixels(cfg, report.root, rows, classes, cache_dir=project.cache_dir, callbacks=self.callbacks,
                              should_stop=self.stop, resume=self._resume)
        cache, split_pos, labels_all, mean, std = data.cache, data.split, data.labels, data.mean, data.std
        notes.extend(data.notes)
        if dist.is_main() and self._db_run is not None:
            project.record_split(self._db_run, [(ids[row[0]], row[2]) for row in rows if row[0] in ids])

        self.callbacks.on_status(f"Building {cfg.model.arch}")
        torch.manual_seed(cfg.data.seed)  # the same config starts from the same weights
        model = build_model(cfg.model, len(classes), load_weights=self._resume is None)
        if self._resume:
            model.load_state_dict(self._resume["state_dict"])
            self._restore_state(self._resume["training"])
        model.to(device)
        use_cl = cfg.train.channels_last and device.type in ("cpu", "cuda")
        if use_cl:
            model.to(memory_format=torch.channels_last)
        self.model = model

        criterion, sample_weights = make_criterion(cfg.train, labels_all[split_pos["train"]], len(classes), device)
        plain_loss = nn.CrossEntropyLoss()
        transform = build_train_transform(cfg.augment, cfg.model.image_size)

        def pixels(split: str, train: bool) -> PixelBatches:
            pos = torch.tensor(split_pos[split], dtype=torch.long)
            return PixelBatches(
                cache, pos, labels_all[pos], batch_size=cfg.train.batch_size, mean=mean, std=std, device=device,
                transform=transform if train else None, shuffle=train,
                sample_weights=sample_weights if train else None, channels_last=use_cl, seed=cfg.data.seed,
                rank=self.rank if train else 0, world=self.world if train else 1,
            )

        stages = plan_stages(cfg.model.mode, cfg.train.epochs, cfg.train.head_epochs)
        train_batches = pixels("train", True)
        val_batches = pixels("val", False) if split_pos["val"] else None
        pending = [st for st in stages if st[2] > self._state.epoch] or stages[-1:]
        model.set_trainable(pending[0][0])
        feature_cache = not cfg.augment.needs_pixels and self.world == 1
        if pending[0][0] == "head" and feature_cache:
            notes.append("Backbone frozen and no augmentation: its features are computed once per image.")
        total_params, _ = count_parameters(model)
        self.callbacks.on_run_start(RunStarted(
            run_dir=str(self.run_dir), classes=classes, train_images=len(split_pos["train"]),
            val_images=len(split_pos["val"]), test_images=len(split_pos["test"]), device=describe_device(device),
            precision=precision, epochs=cfg.train.epochs, start_epoch=self._state.epoch,
            batches_per_epoch=len(train_batches), parameters=total_params,
            trainable_parameters=count_parameters(model)[1], notes=notes,
        ))

        self._ctx = dict(cfg=cfg, classes=classes, mean=mean, std=std, device=device, notes=notes,
                         counts=split_counts(rows, classes))
        status = "finished"
        for stage_name, first, last in stages:
            if self._state.epoch >= last:
                continue
            model.set_trainable(stage_name)
            net, tr, va = model, train_batches, val_batches
            if stage_name == "head" and feature_cache:
                # Frozen backbone, unchanging pixels: compute its features once, train the head on them.
                self.callbacks.on_status("Computing backbone features once for the frozen backbone")
                feats = {s: compute_features(model.backbone, pixels(s, False), autocast)
                         for s in ("train", "val") if split_pos[s]}
                tr = FeatureBatches(feats["train"], train_batches.labels, batch_size=cfg.train.batch_size,
                                    shuffle=True, sample_weights=sample_weights, seed=cfg.data.seed)
                va = FeatureBatches(feats["val"], val_batches.labels, batch_size=cfg.train.batch_size) \
                    if val_batches else None
                net = model.head
            status = self._train_stage(net, model, tr, va, criterion, plain_loss, autocast, device, precision,
                                       stage_name, first, last, lr_scale=1.0 if stage_name == "head" else None)
            if status == "time-up":
                notes.append(f"Training ended at epoch {self._state.epoch} of {cfg.train.epochs} to stay within "
                             f"the time budget ({cfg.train.time_limit:.0f} s); the best epoch's weights are kept.")
                status = "finished"
                break
            if status == "early-stopped":
                break

        # The best weights, not the last, are what the user gets.
        if (self.run_dir / "best.pt").exists():
            best = load_checkpoint(self.run_dir / "best.pt")
            model.load_state_dict(best["state_dict"])
        test_acc = None
        if split_pos["test"]:
            stats, _ = evaluate(model, pixels("test", False), plain_loss, autocast=contextlib.nullcontext)
            test_acc = stats.accuracy
        return self._finish(status, started, test_acc)

    def _train_stage(self, net, model, train_batches, val_batches, criterion, plain_loss, autocast, device,
                     precision, stage, first, last, lr_scale) -> str:
        cfg = self.config.train
        groups = model.param_groups(cfg.lr, cfg.backbone_lr_scale if lr_scale is None else lr_scale,
                                    cfg.weight_decay)
        for g in groups:
            g["base_lr"] = g["lr"]
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        training = (self._resume or {}).get("training", {})
        if training.get("optimizer") and training.get("stage") == stage and self._state.epoch > first:
            optimizer.load_state_dict(training["optimizer"])
            for g, base in zip(optimizer.param_groups, groups):
                g["base_lr"] = base["base_lr"]
        if self.world > 1:
            net = dist.wrap(net, device)
        steps = len(train_batches)
        schedule = Schedule(cfg.schedule, total_steps=steps * (last - first),
                            warmup_steps=int(cfg.warmup_epochs * steps), steps_per_epoch=steps,
                            step_epochs=cfg.step_epochs, step_gamma=cfg.step_gamma)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        st = self._state
        while st.epoch < last:
            epoch = st.epoch + 1
            train_batches.set_epoch(epoch)
            # Dropout and augmentation draw from the global generator: seeding per epoch makes a
            # resumed run retrace the uninterrupted one.
            torch.manual_seed(self.config.data.seed * 7919 + epoch)

            def on_batch(i, n, loss, lr, ips, epoch=epoch):
                from studio.core.callbacks import BatchEnd
                self.callbacks.on_batch_end(BatchEnd(epoch, i, n, loss, lr, ips))

            stats, _ = train_one_epoch(
                net, train_batches, optimizer, criterion, schedule=schedule, step=(st.epoch - first) * steps,
                autocast=autocast, scaler=scaler, grad_clip=cfg.grad_clip, should_stop=self.stop,
                on_batch=on_batch)
            if self.world > 1:
                stats.loss, stats.accuracy, stats.images = dist.average_epoch(stats.loss, stats.accuracy,
                                                                             stats.images)
            # Validation in fp32, as prediction and evaluation run: the accuracy a run reports is the
            # accuracy the user later measures on the same images.
            val = evaluate(net, val_batches, plain_loss, autocast=contextlib.nullcontext)[0] if val_batches else None
            st.epoch = epoch
            key = (val.accuracy, -val.loss) if val else (stats.accuracy, -stats.loss)
            # Better accuracy, or the same accuracy with a clearly lower loss: noise must not reset patience.
            is_best = key[0] > st.best_key[0] or (key[0] == st.best_key[0] and key[1] > st.best_key[1] + 1e-3)
            if is_best:
                st.best_key, st.best_epoch, st.bad_epochs = key, epoch, 0
            else:
                st.bad_epochs += 1
            row = {"epoch": epoch, "train_loss": stats.loss, "train_acc": stats.accuracy,
                   "val_loss": val.loss if val else None, "val_acc": val.accuracy if val else None,
                   "lr": stats.lr, "seconds": stats.seconds + (val.seconds if val else 0.0)}
            st.history.append(row)
            self._save_epoch(model, optimizer, stage, is_best, row)
            self.callbacks.on_epoch_end(EpochEnd(
                epoch=epoch, epochs=self.config.train.epochs, train_loss=stats.loss, train_acc=stats.accuracy,
                val_loss=row["val_loss"], val_acc=row["val_acc"], lr=stats.lr, seconds=row["seconds"],
                images_per_second=stats.images / max(stats.seconds, 1e-9), is_best=is_best, stage=stage))
            if cfg.early_stopping and st.bad_epochs >= cfg.early_stopping:
                return "early-stopped"
            # Another epoch like this one would overrun the time budget: end here, with the best weights.
            if cfg.time_limit and st.epoch < last and \
                    time.time() - self._started + row["seconds"] > cfg.time_limit * 1.05:
                return "time-up"
        return "finished"

    # ----------------------------------------------------------------------------------------- helpers

    def _open_project(self, cfg: RunConfig) -> Project:
        arg = self._project_arg
        folder = arg.folder if isinstance(arg, Project) else Path(arg or default_project_dir()).expanduser().resolve()
        root = Path(cfg.data.root).expanduser().resolve()
        if folder == root or root in folder.parents:
            # Checked before the project folder is made: nothing may appear inside the images.
            raise TrainingError(f"--project {folder} is inside the image folder {root}; choose a folder "
                                "outside it — the studio never writes into your images.")
        self.project = arg if isinstance(arg, Project) else Project(folder)
        return self.project

    def _scan(self, cfg: RunConfig) -> ScanReport:
        report = self.scan_report
        if report is None or Path(report.root) != Path(cfg.data.root).expanduser().resolve():
            self.callbacks.on_status(f"Checking images in {cfg.data.root}")
            report = scan(cfg.data.root, should_stop=self.stop,
                          progress=lambda d, t: self.callbacks.on_progress(d, t, "checking images"))
        if not report.usable:
            raise TrainingError(f"{report.root}: training needs at least two classes with usable images; "
                                f"found {len(report.classes)} ({', '.join(report.classes) or 'none'}).")
        self.scan_report = report
        return report

    def _make_run_dir(self, project: Project, cfg: RunConfig, root: str) -> None:
        if self.run_dir is None:
            if dist.is_main():
                _, self.run_dir = project.new_run_folder(cfg.name or cfg.model.arch)
            self.run_dir = Path(dist.broadcast_str(str(self.run_dir or "")))
        if dist.is_main():
            cfg.save(self.run_dir / "config.json")
            existing = project.run_id_for_folder(self.run_dir)
            if existing is None:
                self._db_run = project.add_run(cfg.name or self.run_dir.name, self.run_dir, root, cfg.to_dict())
            else:
                self._db_run = existing
                project.mark_running(existing)

    def _plan_split(self, cfg: RunConfig, report: ScanReport) -> SplitPlan:
        good = report.good
        paths = [r.path for r in good]
        duplicates = self._near_duplicates(cfg, report, paths)
        self.split_plan = plan_split(paths, [r.class_name for r in good], [r.label for r in good],
                                     val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
                                     seed=cfg.data.seed, rule=cfg.data.group_by, duplicate_ids=duplicates)
        return self.split_plan

    def _split_rows(self, plan: SplitPlan | None) -> list[tuple[str, str, str]]:
        if plan is None:
            return read_split(self.run_dir)
        if dist.is_main():
            write_split(self.run_dir, plan.rows, plan.groups)
        return plan.rows

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

    def _near_duplicates(self, cfg: RunConfig, report: ScanReport, paths: list[str]):
        """Cluster ids from the project's image features, or None when switched off or unavailable."""
        if not cfg.data.near_duplicates or len(paths) < 2:
            return None
        self.callbacks.on_status("Looking for near-duplicate images")
        try:
            return near_duplicate_ids(str(self.project.folder), [str(report.abspath(r)) for r in report.good],
                                      progress=lambda d, t: self.callbacks.on_progress(d, t, "comparing images"),
                                      should_stop=self.stop)
        except ImportError:
            return None

    def _restore_state(self, training: dict[str, Any]) -> None:
        st = self._state
        st.epoch = int(training.get("epoch", 0))
        st.history = list(training.get("history", []))
        st.best_epoch = int(training.get("best_epoch", 0))
        st.best_key = tuple(training.get("best_key", (-1.0, float("-inf"))))
        st.bad_epochs = int(training.get("bad_epochs", 0))

    def _save_epoch(self, model, optimizer, stage: str, is_best: bool, row: dict[str, Any]) -> None:
        if not dist.is_main():
            return
        ctx, st = self._ctx, self._state
        metrics = {k: v for k, v in row.items() if v is not None}
        training = {"epoch": st.epoch, "history": st.history, "best_epoch": st.best_epoch,
                    "best_key": list(st.best_key), "bad_epochs": st.bad_epochs, "stage": stage,
                    "optimizer": optimizer.state_dict()}
        common = dict(model=model, config=self.config, classes=ctx["classes"], mean=ctx["mean"], std=ctx["std"],
                      metrics=metrics)
        save_checkpoint(make_checkpoint(**common, training=training), self.run_dir / "last.pt")
        if is_best:
            save_checkpoint(make_checkpoint(**common), self.run_dir / "best.pt")
        write_history(self.run_dir, st.history)
        if self._db_run is not None:
            self.project.record_epoch(self._db_run, row)

    def _result(self, status: str, started: float, test_acc: float | None, message: str = "") -> RunResult:
        st = self._state
        best = st.history[st.best_epoch - 1] if 0 < st.best_epoch <= len(st.history) else {}
        ckpt = self.run_dir / ("best.pt" if (self.run_dir / "best.pt").exists() else "last.pt") \
            if self.run_dir else Path("")
        return RunResult(run_dir=str(self.run_dir or ""), status=status, epochs_done=st.epoch,
                         best_epoch=st.best_epoch, best_val_acc=best.get("val_acc"),
                         best_val_loss=best.get("val_loss"), test_acc=test_acc, seconds=time.time() - started,
                         checkpoint=str(ckpt), history=list(st.history), message=message)

    def _finish(self, status: str, started: float, test_acc: float | None, message: str = "") -> RunResult:
        result = self._result(status, started, test_acc, message)
        if dist.is_main() and self.run_dir is not None and hasattr(self, "_ctx"):
            write_report(self.run_dir, config=self.config.to_dict(), classes=self._ctx["classes"],
                         counts=self._ctx["counts"], history=self._state.history, result=result.to_dict(),
                         notes=self._ctx["notes"])
            if status != "stopped" and self._ctx["counts"].get("val"):
                self._write_evaluation()
        if self._db_run is not None:
            metric = result.best_val_acc if result.best_val_acc is not None else None
            self.project.finish_run(self._db_run, status, best_metric=metric, best_epoch=result.best_epoch or None,
                                    message=message)
        dist.teardown()
        self.callbacks.on_finished(result)
        return result

    def _write_evaluation(self) -> None:
        """confusion.png and the Evaluation section of report.md, so every finished run explains itself."""
        from studio.core.evaluate import EvaluationError, evaluate_run, write_evaluation

        self.callbacks.on_status("Evaluating the best model on the validation images")
        try:
            write_evaluation(evaluate_run(self.run_dir, "val"), self.run_dir)
        except (EvaluationError, OSError) as exc:
            self.callbacks.on_status(f"Could not write the evaluation: {exc}")

    def _stopped(self, started: float) -> RunResult:
        message = "Stopped by the user; `studio train --resume RUN_DIR` continues from the last completed epoch."
        return self._finish("stopped", started, None, message)

    def _fail(self, message: str) -> RunResult:
        if getattr(self, "_db_run", None) is not None:
            self.project.finish_run(self._db_run, "failed", message=message)
        if self.run_dir is not None and hasattr(self, "_ctx") and dist.is_main():
            result = self._result("failed", time.time(), None, message)
            write_report(self.run_dir, config=self.config.to_dict(), classes=self._ctx["classes"],
                         counts=self._ctx["counts"], history=self._state.history, result=result.to_dict(),
                         notes=self._ctx["notes"])
        dist.teardown()
        self.callbacks.on_failed(message)
        raise TrainingError(message)

    def _log_traceback(self) -> None:
        if self.run_dir is not None and self.run_dir.exists() and dist.is_main():
            (self.run_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
