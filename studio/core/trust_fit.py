"""The step after the last epoch: fit temperature and familiarity on the run's own images, store them.

Kept out of the trainer so that the order of a run stays readable there and this step can be
read (and tested) alone. It never fails a run: a model without these fields still predicts,
so a problem here becomes a status line and the checkpoint is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from studio.core.cache import Cancelled
from studio.core.callbacks import Callback
from studio.core.checkpoint import load_checkpoint, save_checkpoint
from studio.core.config import RunConfig
from studio.core.final_pass import SplitPass, final_pass
from studio.core.trust import SPACE_WORDS, TrustFit, choose_space, fit_trust, save_neighbours


def fit_after_training(*, passes: dict[str, SplitPass], split: dict[str, list[int]],
                       rows: Sequence[tuple[str, str, str]], root: str | Path, run_dir: Path, config: RunConfig,
                       project_folder: Path, callbacks: Callback,
                       should_stop: Callable[[], bool] | None = None) -> TrustFit | None:
    """Fit on the best weights' features and logits (`final_pass`) and add the result to best.pt."""
    best = run_dir / "best.pt"
    if not best.is_file() or "train" not in passes:
        return None
    callbacks.on_status("Measuring how sure the model should be, and what its training images look like")
    try:
        fit, space_features = _fit(passes, split, rows, root, config, project_folder, callbacks, should_stop)
        data = load_checkpoint(best)
        data.pop("path", None)
        data.update(fit.checkpoint_fields())
        save_checkpoint(data, best)
        save_neighbours(run_dir, space_features, [rows[i][0] for i in split["train"]],
                        [rows[i][1] for i in split["train"]])
    except Cancelled:
        callbacks.on_status("Stopped before the familiarity check was fitted: the model predicts without it.")
        return None
    except Exception as exc:  # noqa: BLE001 - a model without the verdict still predicts: never fail the run here
        callbacks.on_status(f"Could not fit the familiarity check: {exc}. Predictions still work, "
                            "without the 'unlike the training images' verdict.")
        return None
    for note in fit.notes:
        callbacks.on_status(note)
    callbacks.on_status(f"Familiarity measured in {SPACE_WORDS[fit.familiarity.space]}; temperature "
                        f"{fit.temperature:.2f}")
    return fit


def _fit(passes, split, rows, root, config, project_folder, callbacks, should_stop
         ) -> tuple[TrustFit, torch.Tensor]:
    from studio.core.reference import reference_available, reference_embedder

    feats = {s: passes[s].features for s in ("train", "val") if s in passes}
    labels = {s: passes[s].labels for s in feats}
    val_logits = passes["val"].logits if "val" in passes else torch.zeros(0, 1)
    space = choose_space(config.train.familiarity_space, reference_available())
    space_feats = dict(feats)
    size = None
    if space == "reference":
        from studio.core.features import size_for_files

        paths = {s: [Path(root, *rows[i][0].split("/")) for i in split[s]] for s in feats}
        # One size for both parts, chosen by all of them, as the split's near-copy pass chose it.
        size = size_for_files([p for s in feats for p in paths[s]])
        embedder = reference_embedder(project_folder, size)
        for s in feats:
            space_feats[s] = embedder.embed_files(
                paths[s], should_stop=should_stop,
                progress=lambda d, t, s=s: callbacks.on_progress(d, t, f"reference features ({s})"))
    fit = fit_trust(val_logits=val_logits, val_labels=labels.get("val", torch.zeros(0, dtype=torch.long)),
                    train_features=space_feats["train"], train_labels=labels["train"],
                    val_features=space_feats.get("val"), share=config.train.familiar_share, space=space)
    if size is not None:
        fit.familiarity.reference_size = size
    return fit, space_feats["train"]


def refit_run(run_dir: str | Path, *, space: str | None = None, share: float | None = None,
              project_folder: str | Path | None = None, callbacks: Callback | None = None) -> TrustFit:
    """Fit (again) for a finished run from its split.csv: for runs made before this existed, or another space.

    The images are read again from the run's data folder, exactly as prediction reads them.
    """
    from studio.core.callbacks import CallbackList
    from studio.core.evaluate import EvaluationError, read_config
    from studio.core.loop import PixelBatches
    from studio.core.predict import Predictor
    from studio.core.runfiles import read_split

    run = Path(run_dir)
    config = RunConfig.from_dict(read_config(run))
    if space is not None:
        config.train.familiarity_space = space
    if share is not None:
        config.train.familiar_share = share
    config.train.validate()
    predictor = Predictor(run)
    root = Path(config.data.root)
    rows = [r for r in read_split(run) if r[1] in predictor.classes and r[2] in ("train", "val")]
    if not root.is_dir() or not rows:
        raise EvaluationError(f"{run}: the run's training images in {root} are needed and are not there")
    from studio.core.cache import build_cache

    cache = build_cache(root, [r[0] for r in rows], predictor.image_size)
    split = {s: [i for i, r in enumerate(rows) if r[2] == s and i not in cache.failures] for s in ("train", "val")}
    labels = torch.tensor([predictor.classes.index(r[1]) for r in rows])

    def batches(s: str) -> PixelBatches:
        pos = torch.tensor(split[s], dtype=torch.long)
        return PixelBatches(cache, pos, labels[pos], batch_size=64, mean=predictor.mean, std=predictor.std,
                            device=torch.device("cpu"))

    folder = Path(project_folder) if project_folder else run.parent.parent
    passes = final_pass(predictor.model, batches, split, ("train", "val"))
    fit = fit_after_training(passes=passes, split=split, rows=rows, root=root,
                             run_dir=run, config=config, project_folder=folder,
                             callbacks=callbacks or CallbackList([]))
    if fit is None:
        raise EvaluationError(f"{run}: the familiarity check could not be fitted")
    return fit
