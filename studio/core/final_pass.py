"""The one pass after training: every image once through the best weights, feeding all that follows.

The temperature, the familiarity check, the held-out accuracy and the evaluation in report.md
all need the best model's view of the same images. Computing it once, from the decode cache the
run already holds, replaces a pass per consumer and a second read of the files from disk.
The evaluation is then exactly what `evaluate_run` would compute, because the cache holds the
pixels prediction reads (`images.load_for_model`) and the pass runs in fp32 as prediction does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio.core.evaluate import Evaluation, Scored, Trust, build_evaluation, reference_flags
from studio.core.familiarity import Familiarity
from studio.core.loop import Rows, compute_features
from studio.core.runfiles import read_split
from studio.core.trust import stored_familiarity, stored_temperature

SPLIT_ORDER = ("train", "val", "test")


@dataclass
class SplitPass:
    """One split's images as the best model sees them, in the order of `positions`."""

    positions: list[int]  # cache positions, as the run's split lists them
    features: torch.Tensor  # [N, D] penultimate features, fp32, on the CPU
    logits: torch.Tensor  # [N, classes] fp32, before any temperature
    labels: torch.Tensor  # [N]

    @property
    def accuracy(self) -> float:
        return float((self.logits.argmax(1) == self.labels).float().mean()) if len(self.labels) else 0.0


@dataclass
class PassResult:
    """The final pass, with what the evaluation needs besides it; kept by the trainer until report.md is written."""

    passes: dict[str, SplitPass]
    paths: Sequence[str]  # the image path of every cache position
    classes: list[str]
    fields: Mapping[str, object]  # the trust fields best.pt carries now

    def evaluation(self, run_dir: Path, split: str, config: dict[str, object]) -> Evaluation | None:
        """What `evaluate_run(run_dir, split)` would return, without reading a file again; None if not known."""
        done = self.passes.get(split)
        trust = trust_of(self.fields)
        familiarity = stored_familiarity(self.fields)
        scored = scored_from_pass(run_dir, split, done, self.paths, familiarity) if done else None
        if scored is None:
            return None
        if familiarity is not None and familiarity.space == "reference":  # the project's stored features
            root = Path(str(config.get("data", {}).get("root", "")))  # type: ignore[union-attr]
            scored.unfamiliar = reference_flags(familiarity, run_dir, [Path(root, *p.split("/")) for p in scored.paths])
        return build_evaluation(run_dir, split, config=config, classes=self.classes, scored=scored, trust=trust,
                                checkpoint=str(run_dir / "best.pt"))


@torch.no_grad()
def final_pass(model: nn.Module, batches: Callable[[str], Iterable], split: Mapping[str, Sequence[int]],
               splits: Sequence[str] = SPLIT_ORDER, known: Mapping[str, torch.Tensor] | None = None,
               engine: Callable | None = None) -> dict[str, SplitPass]:
    """Features and logits of every image of `splits`, one forward pass each, in fp32 and eval mode.

    `known` holds backbone features already computed for a split, in its order, by a backbone that
    never changed since (a frozen one, whose features were computed once): only the head runs there.
    `engine` runs that frozen backbone for the other splits, as it did for those features.
    """
    model.eval()
    out: dict[str, SplitPass] = {}
    for name in splits:
        if not split.get(name):
            continue
        made = batches(name)
        if known is not None and name in known and len(known[name]) == len(split[name]):
            f = known[name].float()
            out[name] = SplitPass(list(split[name]), f.cpu(), model.head(f).float().cpu(), made.labels.cpu())
            continue
        if engine is not None:
            f = compute_features(model.backbone, made, engine)
            out[name] = SplitPass(list(split[name]), f, model.head(f).float().cpu(), made.labels.cpu())
            continue
        features, logits = Rows(made.images), Rows(made.images)
        for x, _ in made:
            f = model.backbone(x).float()
            features.add(f)
            logits.add(model.head(f).float())
        out[name] = SplitPass(list(split[name]), features.result(torch.zeros(0)), logits.result(torch.zeros(0)),
                              made.labels.cpu())
    return out


def scored_from_pass(run_dir: Path, split: str, done: SplitPass, paths_by_position: Sequence[str],
                     familiarity: Familiarity | None) -> Scored | None:
    """The evaluation's input for `split`, in split.csv's order; None when split.csv lists an image the pass
    did not see (a resumed run whose files changed): then the evaluation reads the files as before."""
    where = {paths_by_position[pos]: i for i, pos in enumerate(done.positions)}
    rows = [path for path, _, s in read_split(run_dir) if s == split]
    order = [where.get(path) for path in rows]
    if not rows or None in order:
        return None
    index = torch.tensor(order, dtype=torch.long)
    unfamiliar = 0
    if familiarity is not None and familiarity.space == "network":
        unfamiliar = int((familiarity.score(done.features[index]) > 1).sum())
    return Scored(paths=rows, labels=done.labels[index].tolist(), logits=done.logits[index], unfamiliar=unfamiliar,
                  rows=len(rows))


def trust_of(fields: Mapping[str, object]) -> Trust:
    """What a Predictor would read from a checkpoint carrying `fields`."""
    familiarity = stored_familiarity(fields)
    temperature = stored_temperature(fields)
    calibration = fields.get("calibration")
    stated = isinstance(calibration, Mapping) and "temperature" in calibration
    return Trust(temperature, familiarity.space if familiarity else "",
                 stated or temperature != 1.0 or familiarity is not None,
                 familiarity.share if familiarity is not None else 0.95)
