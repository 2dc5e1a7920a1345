"""Preparing a run: the project, the images, the split, the device, the model and the batches.

Everything here happens once, before the first epoch, and any of it may refuse
with one line for the user (a project inside the image folder, fewer than two
classes, a device that is not there). Kept apart from the stages so that the
order of a run is readable in `studio.core.train` and each step here alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.core import distributed as dist
from studio.core.augment import build_train_transform
from studio.core.callbacks import CallbackList, StopToken
from studio.core.config import RunConfig
from studio.core.dataset import ScanReport, scan, with_unusable
from studio.core.devices import pick_device, pick_precision
from studio.core.errors import TrainingError
from studio.core.loop import PixelBatches, make_criterion
from studio.core.models import StudioModel, build_model
from studio.core.project import Project, default_project_dir
from studio.core.randomness import private_init, seeded_global
from studio.core.rundata import RunPixels
from studio.core.runfiles import read_split
from studio.core.splits import SplitPlan, near_duplicate_ids, plan_split


def open_project(arg: Project | str | Path | None, cfg: RunConfig) -> Project:
    folder = arg.folder if isinstance(arg, Project) else Path(arg or default_project_dir()).expanduser().resolve()
    root = Path(cfg.data.root).expanduser().resolve()
    if folder == root or root in folder.parents:
        # Checked before the project folder is made: nothing may appear inside the images.
        raise TrainingError(f"--project {folder} is inside the image folder {root}; choose a folder "
                            "outside it — the studio never writes into your images.")
    return arg if isinstance(arg, Project) else Project(folder)


def scan_images(cfg: RunConfig, report: ScanReport | None, callbacks: CallbackList, stop: StopToken) -> ScanReport:
    """The window's scan when it is of the same folder, else a fresh one; at least two classes are needed.

    A fresh scan reads headers only: the run decodes every image right after, and that one
    decode checks the pixels (`with_decode_failures`), so no image is decoded twice.
    """
    if report is None or Path(report.root) != Path(cfg.data.root).expanduser().resolve():
        callbacks.on_status(f"Checking images in {cfg.data.root}")
        report = scan(cfg.data.root, should_stop=stop, check_pixels=False,
                      progress=lambda d, t: callbacks.on_progress(d, t, "checking images"))
    return require_classes(report)


def require_classes(report: ScanReport) -> ScanReport:
    if not report.usable:
        raise TrainingError(f"{report.root}: training needs at least two classes with usable images; "
                            f"found {len(report.classes)} ({', '.join(report.classes) or 'none'}).")
    return report


def with_decode_failures(report: ScanReport, paths: list[str], failures: dict[int, str]) -> ScanReport:
    """The report with the files the run's decode refused (cache position → reason) marked bad."""
    return require_classes(with_unusable(report, {paths[pos]: reason for pos, reason in failures.items()}))


def bad_files_note(report: ScanReport, shown: int = 5) -> str:
    """The report's line on skipped files: each named with its reason, up to `shown` of them."""
    bad = report.bad
    named = "; ".join(f"{r.path} ({r.problem})" for r in bad[:shown])
    more = f"; and {len(bad) - shown} more (`studio scan` lists them all)" if len(bad) > shown else ""
    return f"{len(bad)} unusable file(s) skipped: {named}{more}."


def plan_run_split(cfg: RunConfig, report: ScanReport, project: Project, callbacks: CallbackList,
                   stop: StopToken) -> SplitPlan:
    """Groups (declared units, near-duplicate clusters), the automatic test share and the split itself."""
    good = report.good
    duplicates = None
    if cfg.data.near_duplicates and len(good) > 1:
        callbacks.on_status("Looking for near-duplicate images")
        try:
            duplicates = near_duplicate_ids(str(project.folder), [str(report.abspath(r)) for r in good],
                                            progress=lambda d, t: callbacks.on_progress(d, t, "comparing images"),
                                            should_stop=stop)
        except ImportError:  # the feature store is an optional part of the install
            duplicates = None
    return plan_split([r.path for r in good], [r.class_name for r in good], [r.label for r in good],
                      val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction, seed=cfg.data.seed,
                      rule=cfg.data.group_by, duplicate_ids=duplicates)


def split_rows(run_dir: Path, plan: SplitPlan | None) -> tuple[list[tuple[str, str, str]], bool]:
    """(path, class, split) per usable image, and whether the split is new (a resumed run reads its own back)."""
    if plan is None:
        return read_split(run_dir), False
    return plan.rows, True


def run_device(cfg: RunConfig, world: int) -> tuple[torch.device, str]:
    """The device and the number format; under torchrun each process takes its own GPU."""
    if world > 1:
        device = torch.device("cuda", dist.local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = pick_device(cfg.train.device)
    return device, pick_precision(cfg.train.precision, device)


def build_run_model(cfg: RunConfig, n_classes: int, device: torch.device, resume: dict[str, Any] | None
                    ) -> tuple[StudioModel, bool]:
    """The network on its device, from its recorded weights when resuming; whether it runs channels-last."""
    with seeded_global(cfg.data.seed):
        model = build_model(cfg.model, n_classes, load_weights=resume is None)
    # The same config starts from the same weights, whatever other threads draw meanwhile: the layers
    # the run creates itself (the custom CNN, every new head) are re-drawn from a generator of its own.
    own = torch.Generator().manual_seed(cfg.data.seed)
    private_init(model if cfg.model.arch == "custom" else model.head, own)
    if resume:
        model.load_state_dict(resume["state_dict"])
    model.to(device)
    channels_last = cfg.train.channels_last and device.type in ("cpu", "cuda")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, channels_last


@dataclass
class BatchMaker:
    """Batches of one split: training batches augment, shuffle, balance and shard; the others do none of it."""

    cfg: RunConfig
    pixels: RunPixels
    device: torch.device
    channels_last: bool
    sample_weights: torch.Tensor | None
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        self.transform = build_train_transform(self.cfg.augment, self.cfg.model.image_size)

    def __call__(self, split: str, train: bool) -> PixelBatches:
        px = self.pixels
        pos = torch.tensor(px.split[split], dtype=torch.long)
        return PixelBatches(
            px.cache, pos, px.labels[pos], batch_size=self.cfg.train.batch_size, mean=px.mean, std=px.std,
            device=self.device, transform=self.transform if train else None, shuffle=train,
            sample_weights=self.sample_weights if train else None, channels_last=self.channels_last,
            seed=self.cfg.data.seed, rank=self.rank if train else 0, world=self.world if train else 1,
        )


def losses_and_batches(cfg: RunConfig, pixels: RunPixels, n_classes: int, device: torch.device,
                       channels_last: bool, rank: int, world: int) -> tuple[nn.Module, BatchMaker]:
    """The training loss (weighted, or with a balancing sampler) and the batch maker that goes with it."""
    criterion, sample_weights = make_criterion(cfg.train, pixels.labels[pixels.split["train"]], n_classes, device)
    return criterion, BatchMaker(cfg, pixels, device, channels_last, sample_weights, rank, world)

