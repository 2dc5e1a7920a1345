"""The automatic recipe: settings chosen from the data, the computer and the time the user gives.

A newcomer presses Train and should get a good model, not a lesson in hyper-parameters. The
recipe looks at what matters: how many images per class, their native size (training 32-px
images at 64 px is four times the work for nothing), colour or grey, whether they look like
photographs, what the computer can do (GPU, cores; bf16 is never counted on for speed) and a
time budget. A cheap probe settles the main question, "do ready-made image features already
separate these classes?": a cross-validated linear classifier on the project's cached
EfficientNet-Lite0 features of the training and validation images (never the test images).
Every time estimate comes from a short measurement of the chosen network on this computer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.core.config import AugmentConfig, RunConfig

BUDGET_SECONDS = {"minute": 60.0, "ten-minutes": 600.0, "best": 3600.0}
BUDGET_LABELS = {"minute": "about a minute", "ten-minutes": "about 10 minutes", "best": "as good as possible"}
# A linear classifier on frozen features this good leaves little for a network trained from scratch.
PROBE_GOOD = 0.9
_PROFILE_SAMPLE = 48


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda", "mps" or "cpu"
    cores: int
    bf16: bool  # fast bf16 on this CPU (AVX-512 BF16 / AMX); noted, never relied on for speed

    def describe(self) -> str:
        if self.device != "cpu":
            return {"cuda": "a GPU", "mps": "an Apple GPU"}[self.device]
        return f"a {self.cores}-core CPU"


def detect_hardware(choice: str = "auto") -> Hardware:
    from studio.core.loop import cpu_has_fast_bf16, pick_device

    device = pick_device(choice).type
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Hardware(device, cores, cpu_has_fast_bf16())


@dataclass(frozen=True)
class DataProfile:
    per_class: dict[str, int]
    native_size: int  # median shorter side of the images
    grey: bool
    photo_like: bool

    @property
    def images(self) -> int:
        return sum(self.per_class.values())


def profile_images(files: Sequence[Path], sizes: Sequence[tuple[int, int]], per_class: dict[str, int],
                   seed: int = 0) -> DataProfile:
    """Native size from the scan; colour and photo-likeness from a small seeded sample of decoded images.

    Photo-like means a rich spread of tones (histogram entropy): drawings, scans of text and
    digits on a plain ground have few.
    """
    from studio.core.images import load_rgb

    short = [min(w, h) for w, h in sizes if w and h]
    native = int(np.median(short)) if short else 64
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(_PROFILE_SAMPLE, len(files)), replace=False) if files else []
    grey_votes, entropies = [], []
    for i in pick:
        try:
            img = load_rgb(files[int(i)])
            img.thumbnail((96, 96))  # never enlarged: upscaling would invent tones
            arr = np.asarray(img.convert("RGB"), dtype=np.int16)
        except Exception:  # noqa: BLE001 — an unreadable sample image only shrinks the sample
            continue
        grey_votes.append(np.abs(arr - arr.mean(axis=2, keepdims=True)).mean() < 4)
        hist = np.bincount(arr.mean(axis=2).astype(np.int64).ravel(), minlength=256) / arr[..., 0].size
        entropies.append(float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum()))
    grey = bool(np.mean(grey_votes) > 0.5) if grey_votes else False
    photo = bool(np.median(entropies) > 5.0 and not grey) if entropies else True
    return DataProfile(dict(per_class), native, grey, photo)


def linear_probe(features: np.ndarray, labels: Sequence[int], folds: int = 3, seed: int = 0) -> float | None:
    """Cross-validated accuracy of a linear classifier on frozen features; None if too few images."""
    import torch

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    keep = np.isfinite(x).all(axis=1)
    x, y = x[keep], y[keep]
    if len(y) < 2 * folds or len(np.unique(y)) < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    n_classes = int(y.max()) + 1
    for k in range(folds):
        test = order[k::folds]
        head = _fit_linear(x[np.setdiff1d(order, test)], y[np.setdiff1d(order, test)], n_classes)
        with torch.no_grad():
            correct += int((head(torch.from_numpy(x[test])).argmax(1).numpy() == y[test]).sum())
    return correct / len(y)


def _fit_linear(x: np.ndarray, y: np.ndarray, n_classes: int):
    """A lightly regularised softmax classifier, fitted to convergence by L-BFGS."""
    import torch

    head = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(head.parameters(), lr=1, max_iter=100)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(xt), yt) + 1e-3 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


@dataclass
class Recipe:
    """What the recipe chose; `apply` writes it into a run config, leaving pinned settings alone."""

    settings: dict[str, object]
    augment_preset: str
    estimate_seconds: float
    reason: str
    probe_accuracy: float | None = None
    notes: list[str] = field(default_factory=list)

    def apply(self, cfg: RunConfig) -> RunConfig:
        pinned = set(cfg.recipe.pinned)
        # A network the user picked keeps the settings that go with it, not the recipe's.
        own_model = bool(pinned & {"model.arch", "model.pretrained"})
        for key, value in self.settings.items():
            if key not in pinned and not (own_model and (key.startswith("model.") or key in _SOLVER_KEYS)):
                section, name = key.split(".")
                setattr(getattr(cfg, section), name, value)
        if not any(p.startswith("augment.") for p in pinned):
            cfg.augment = AugmentConfig.from_preset(self.augment_preset)
        solvable = cfg.model.mode == "head" and not cfg.augment.needs_pixels
        if cfg.train.optimizer == "lbfgs" and not solvable and "train.optimizer" not in pinned:
            # The user's augmentation or mode changes what the last layer sees each epoch: walk, don't solve.
            cfg.train.optimizer, cfg.train.weight_decay = "adamw", 1e-4
            if "train.epochs" not in pinned:
                cfg.train.epochs = 30
        cfg.recipe.mode = "applied"
        cfg.recipe.reason = self.reason
        return cfg.validate()


# How the last layer is fitted belongs to the network: an exact solve suits only a frozen one.
_SOLVER_KEYS = ("train.optimizer", "train.weight_decay")

# (arch, image size, step) -> images per second; step is "augmented" or "plain" (a training step with or
# without augmentation) or "forward" (a pass without gradients, as a frozen network's features are computed).
RateFn = Callable[[str, int, str], float]


def choose(profile: DataProfile, hardware: Hardware, budget: str, *, probe: float | None, rate: RateFn,
           spent: float = 0.0) -> Recipe:
    """The policy itself, pure given its inputs, so tests can drive it with made-up data and computers."""
    seconds = max(10.0, BUDGET_SECONDS[budget] - spent)
    n_train = max(1, int(profile.images * 0.6))
    n_all = profile.images
    augment = "natural" if profile.photo_like and not profile.grey else "medical"
    smallest = min(profile.per_class.values()) if profile.per_class else 0
    if probe is not None and probe >= PROBE_GOOD:
        return _pretrained(profile, hardware, budget, seconds, probe, rate, n_train, n_all, augment)
    if probe is not None and profile.photo_like and smallest < 50 and budget != "minute":
        return _pretrained(profile, hardware, budget, seconds, probe, rate, n_train, n_all, augment)
    return _scratch(profile, hardware, budget, seconds, probe, rate, n_train, n_all, augment)


def _scratch(profile: DataProfile, hardware: Hardware, budget: str, seconds: float, probe: float | None,
             rate: RateFn, n_train: int, n_all: int, augment: str) -> Recipe:
    size = int(min(96, max(24, 8 * round(profile.native_size / 8))))
    blocks = 3 if size <= 48 else 4
    per_epoch = n_train / rate("custom", size, "augmented") + (n_all - n_train) / (3 * rate("custom", size, "plain"))
    # "About a minute" is a ceiling, not a target: a small network on small images has converged by about
    # 15 one-cycle epochs (digits held out: 98.7 % at 12, 99.1 % at 15, 99.3 % at 20), and more only spends
    # the user's time.
    cap = {"minute": 15, "ten-minutes": 120, "best": 300}[budget]
    # Fewer epochs than this leave a network learned from scratch half-trained, whatever the clock says.
    epochs = int(max(12, min(cap, 0.85 * seconds / max(per_epoch, 1e-3))))
    settings = {"model.arch": "custom", "model.pretrained": "none", "model.mode": "full", "model.features": "final",
                "model.image_size": size, "train.optimizer": "adamw", "train.weight_decay": 1e-4,
                "model.blocks": blocks, "model.width": 32, "model.dropout": 0.2, "train.epochs": epochs,
                "train.lr": 3e-3, "train.schedule": "onecycle", "train.warmup_epochs": 1.0,
                "train.batch_size": 64, "train.early_stopping": 0 if budget != "best" else 25,
                "train.time_limit": _limit(budget, epochs * per_epoch), "train.precision": _precision(hardware)}
    why = (f"features of a ready-made network separate these classes only {100 * probe:.0f}% of the time"
           if probe is not None else "ready-made image features were not available")
    kind = "photographs" if profile.photo_like else ("grey drawings or scans" if profile.grey else "drawn images")
    reason = (f"A small network trained from scratch at {size} px (the images' own size is {profile.native_size} px), "
              f"{epochs} epochs with {_AUG_WORDS[augment]}: {why}, and these look like {kind}; "
              f"fits {BUDGET_LABELS[budget]} on {hardware.describe()}.")
    return Recipe(settings, augment, epochs * per_epoch, reason, probe)


def _pretrained(profile: DataProfile, hardware: Hardware, budget: str, seconds: float, probe: float | None,
                rate: RateFn, n_train: int, n_all: int, augment: str) -> Recipe:
    fast = hardware.device != "cpu"
    if budget == "minute" and not fast:
        # Frozen backbone, no augmentation: its features are computed once and only the last layer learns.
        # It reads every stage, not only the last: surfaces as well as objects (photo crops held out, linear
        # head at 160 px: 92.5 % against 87.9 % from the last layer alone; 3-7 points ahead on three other
        # crop sets). 160 px even for smaller
        # images: upscaled small photos separated held-out images better (88.7 % against 87.1 % at 128 px).
        size = 160
        extract = n_all / rate("efficientnet_lite0", size, "forward")
        # The last layer is then solved exactly, with the L2 penalty of a C = 0.1 softmax regression
        # (1 / (C n) per image): it fits fewer images more cautiously.
        settings = {"model.mode": "head", "model.features": "stages", "train.optimizer": "lbfgs",
                    "train.weight_decay": float(min(1.0, 10.0 / n_train)), "train.epochs": 10,
                    "train.lr": 3e-3, "train.schedule": "cosine"}
        augment, estimate = "none", extract + 5.0
        how = ("its last layer fitted exactly to the network's view of each picture (objects and surface "
               "texture), computed once")
    else:
        size = 224 if fast or budget == "best" else 160
        per_epoch = n_train / rate("efficientnet_lite0", size, "augmented") + \
            (n_all - n_train) / (3 * rate("efficientnet_lite0", size, "plain"))
        cap = {"minute": 10, "ten-minutes": 30, "best": 60}[budget]
        epochs = int(max(3, min(cap, 0.85 * seconds / max(per_epoch, 1e-3))))
        settings = {"model.mode": "two-stage", "model.features": "final", "train.optimizer": "adamw",
                    "train.weight_decay": 1e-4, "train.epochs": epochs,
                    "train.head_epochs": min(2, epochs - 1),
                    "train.lr": 1e-3, "train.schedule": "cosine"}
        estimate, how = epochs * per_epoch, f"fine-tuned for {epochs} epochs with {_AUG_WORDS[augment]}"
    settings.update({"model.arch": "efficientnet_lite0", "model.pretrained": "imagenet", "model.image_size": size,
                     "train.batch_size": 32 if size > 160 else 64, "train.warmup_epochs": 1.0,
                     "train.early_stopping": 0 if budget != "best" else 8,
                     "train.time_limit": _limit(budget, estimate), "train.precision": _precision(hardware)})
    found = f"{100 * probe:.0f}%" if probe is not None else "well"
    reason = (f"EfficientNet-Lite0, pretrained on ImageNet, at {size} px, {how}: its ready-made features already "
              f"tell these classes apart {found} of the time; fits {BUDGET_LABELS[budget]} on {hardware.describe()}.")
    return Recipe(settings, augment, estimate, reason, probe)


def _limit(budget: str, estimate: float) -> float:
    """A hard stop well past the estimate: it guards against a machine far slower than measured."""
    return 0.0 if budget == "best" else round(max(1.5 * BUDGET_SECONDS[budget], 2 * estimate))


def _precision(hardware: Hardware) -> str:
    """On a CPU the estimate was measured in fp32, so the run uses fp32: bf16 speed is never counted on."""
    return "fp32" if hardware.device == "cpu" else "auto"


_AUG_WORDS = {"natural": "photo augmentation (flips, small turns, crops, colour)",
              "medical": "gentle augmentation (small turns and crops, no flips)", "none": "no augmentation"}


def measure_rate(arch: str, image_size: int, step: str, *, device: str = "cpu", n_classes: int = 10,
                 batch: int = 32, repeats: int = 2) -> float:
    """Images per second of `arch` at `image_size` here, for one kind of `step` (see RateFn): a few timed
    steps on random pixels. A forward pass alone costs a third of a training step or less, and timing the
    network it estimates costs a third as much: on a 2-core CPU, 1 s instead of 8 s for Lite0 at 160 px."""
    import torch

    from studio.core.augment import augment_batch, build_train_transform
    from studio.core.config import ModelConfig
    from studio.core.models import build_model

    pretrained = "imagenet" if arch != "custom" else "none"
    cfg = ModelConfig(arch=arch, pretrained=pretrained, mode="full", image_size=image_size,
                      blocks=3 if image_size <= 48 else 4)
    model = build_model(cfg, n_classes, load_weights=False).to(device)
    augmented = step == "augmented"
    transform = build_train_transform(AugmentConfig.from_preset("natural"), image_size) if augmented else None
    if step == "forward":
        model.eval()
        batch = min(batch, 16)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = torch.randint(0, 255, (batch, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.randint(0, n_classes, (batch,))
    timings = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        x = augment_batch(pixels, transform, torch.Generator().manual_seed(0))
        x = (x.float() / 255).to(device)
        if step == "forward":
            with torch.inference_mode():
                model(x)
        else:
            loss = torch.nn.functional.cross_entropy(model(x), labels.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return batch / max(min(timings[1:]), 1e-6)  # the first step pays for warm-up


def recommend(cfg: RunConfig, root: str, rows: Sequence[tuple[str, str, str]], sizes: Sequence[tuple[int, int]],
              classes: Sequence[str], *, project_folder: str, spent: float = 0.0,
              on_status: Callable[[str], None] = lambda message: None,
              should_stop: Callable[[], bool] | None = None) -> Recipe:
    """Look at the run's own images (train and validation only: the test share is never read here)."""
    seen = [i for i, row in enumerate(rows) if row[2] != "test"]
    files = [Path(root, *rows[i][0].split("/")) for i in seen]
    labels = [list(classes).index(rows[i][1]) for i in seen]
    per_class = {c: 0 for c in classes}
    for row in rows:
        per_class[row[1]] += 1
    started = time.time()
    on_status("Looking at the images to choose the settings")
    profile = profile_images(files, [sizes[i] for i in seen], per_class, cfg.data.seed)
    hardware = detect_hardware(cfg.train.device)
    probe = None
    try:
        from studio.core.features import FeatureStore

        features = FeatureStore(project_folder).embed_files([str(f) for f in files], should_stop=should_stop)
        on_status("Trying a quick classifier on ready-made image features")
        probe = linear_probe(features, labels, seed=cfg.data.seed)
    except ImportError:
        pass
    on_status("Timing the candidate networks on this computer")
    rates: dict[tuple[str, int, str], float] = {}

    def rate(arch: str, size: int, step: str) -> float:
        key = (arch, size, step)
        if key not in rates:
            rates[key] = measure_rate(arch, size, step, device=hardware.device, n_classes=len(classes))
        return rates[key]

    recipe = choose(profile, hardware, cfg.recipe.budget, probe=probe, rate=rate,
                    spent=spent + time.time() - started)
    return recipe


def estimate_sentence(recipe: Recipe) -> str:
    """The estimate shown before training starts, rounded the way a person would say it."""
    s = recipe.estimate_seconds
    when = f"about {max(5, int(round(s / 5) * 5))} seconds" if s < 90 else f"about {int(round(s / 60))} minutes"
    return f"Estimated training time: {when}."
