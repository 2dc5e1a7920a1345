"""A network as a person can read it: stages of blocks of pattern detectors, not module classes.

"Block 3 — 64 pattern detectors, each looking at 16 × 16 positions." The grouping is found from
the network itself, so every architecture in the registry is described the same way:

- the *units* are the children of the backbone, where plain containers (Sequential, ModuleList)
  that hold blocks are opened up; a container of plain layers (conv, norm, activation, pool) is
  one unit, as is any block class (a residual or MBConv block);
- a unit with no weights of its own that keeps the previous unit's output size (normalization,
  activation, a pooling step after a stem convolution) is folded into the unit before it;
- blocks with output maps are numbered in the order they run and grouped into *stages*: a run of
  blocks that keep the same map size. A network whose every stage holds one block (the custom
  CNN) shows blocks only;
- what follows the last maps (global pooling, the new classifier) is told as "summary" and
  "decision".

Nothing here needs Qt; shapes come from one recorded pass (or from a finished `Inspection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from studio.core.inspect import ActivationRecorder, _eval_mode
from studio.core.words import count, plain_number

_CONTAINERS = (nn.Sequential, nn.ModuleList)


@dataclass(frozen=True)
class WordRow:
    """One line of the layers-in-words list.

    layer: the module whose output the row stands for (what Inspect draws for it); "" for a stage.
    modules: every module the row covers, so a view can map a PyTorch name back to its row.
    """

    title: str
    text: str
    params: int
    layer: str
    modules: tuple[str, ...]
    shape: tuple[int, ...]
    stage: int = 0
    is_stage: bool = False

    @property
    def line(self) -> str:
        return f"{self.title} — {self.text}"

    @property
    def short(self) -> str:
        """The line for a narrow list: "Block 3 — 64 detectors, each at 16 × 16 positions"."""
        return f"{self.title} — {self.brief or self.text}"

    brief: str = ""


def _units(root: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The root's children, opening plain containers that hold blocks (see the module docstring)."""
    out: list[tuple[str, nn.Module]] = []
    for name, child in root.named_children():
        full = f"{prefix}.{name}" if prefix else name
        grand = list(child.children())
        if type(child) in _CONTAINERS and any(any(True for _ in g.children()) for g in grand):
            out.extend(_units(child, full))
        else:
            out.append((full, child))
    return out


def _own_weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules())


def _run(model: nn.Module, names: list[str], image_size: int) -> ActivationRecorder:
    """One pass on a blank image: the units' output shapes, the order they ran in, how often each ran."""
    first = next(model.parameters(), None)
    x = torch.zeros(1, 3, image_size, image_size, device=first.device if first is not None else None,
                    dtype=first.dtype if first is not None and first.is_floating_point() else None)
    with _eval_mode(model), torch.no_grad(), ActivationRecorder(model, names, store=False) as rec:
        model(x)
    return rec


def _is_map(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and (shape[1] > 1 or shape[2] > 1)


def _groups(units: dict[str, nn.Module], rec: ActivationRecorder) -> list[list[str]]:
    """Units in the order they ran, weightless helpers (norm, activation, pooling) folded into the one before.

    A module that runs several times (an activation shared by the whole network) marks no place of
    its own and is left out; so is one that never ran (an emptied classifier).
    """
    groups: list[list[str]] = []
    for name in rec.order:
        if name not in units or name not in rec.shapes or rec.calls[name] > 1:
            continue
        shape = rec.shapes[name]
        before = rec.shapes[groups[-1][-1]] if groups else ()
        helper = groups and not _has_conv(units[name]) and (
            (_is_map(shape) and _is_map(before) and shape[0] == before[0])  # norm, activation, stem pooling
            or (not _is_map(shape) and not _is_map(before)))  # flatten, dropout after the global pooling
        if helper:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups


def _detectors(shape: tuple[int, ...]) -> str:
    channels, height, width = shape
    return f"{count(channels, 'pattern detector')}, each looking at {height} × {width} positions"


def layers_in_words(model: nn.Module, image_size: int) -> list[WordRow]:
    """The rows of the layers-in-words list for a `StudioModel` (backbone + head) at image_size px."""
    backbone = getattr(model, "backbone", model)
    units = dict(_units(backbone, "backbone" if backbone is not model else ""))
    head = getattr(model, "head", None)
    rec = _run(model, [*units, *(["head"] if head is not None else [])], image_size)
    shapes = rec.shapes
    blocks: list[WordRow] = []
    tail: list[WordRow] = []
    maps = 0
    for group in _groups(units, rec):
        shape = shapes[group[-1]]
        params = sum(_own_weights(units[n]) for n in group)
        if _is_map(shape):
            maps += 1
            blocks.append(WordRow(f"Block {maps}", _detectors(shape), params, group[-1], tuple(group), shape,
                                  brief=f"{shape[0]:,} detectors, each at {shape[1]} × {shape[2]} positions"))
        else:
            size = count(shape[0] if shape else 0, "number")
            text = (f"those numbers mixed once more into {size}" if tail else
                    f"{size} describe the whole picture, one average per detector")
            tail.append(WordRow("Summary", text, params, group[0], tuple(group), shape,
                                brief=f"{size} for the whole picture"))
    if head is not None and "head" in shapes:
        classes = shapes["head"][0]
        tail.append(WordRow("Decision", f"weighs those numbers into {count(classes, 'class score')}",
                            _own_weights(head), "head", ("head",), shapes["head"],
                            brief=count(classes, "class score")))
    return _with_stages(blocks) + tail


def _with_stages(blocks: list[WordRow]) -> list[WordRow]:
    """Stage rows before their blocks, one stage per run of blocks with the same map size."""
    runs: list[list[WordRow]] = []
    for row in blocks:
        if runs and runs[-1][-1].shape[1:] == row.shape[1:]:
            runs[-1].append(row)
        else:
            runs.append([row])
    if all(len(run) == 1 for run in runs):
        return blocks
    out: list[WordRow] = []
    for number, run in enumerate(runs, start=1):
        _, height, width = run[-1].shape
        first, last = run[0].title.split()[-1], run[-1].title.split()[-1]
        which = f"block {first}" if first == last else f"blocks {first}–{last}"
        params = sum(r.params for r in run)
        text = f"{which}, at {height} × {width} positions"
        modules = tuple(m for r in run for m in r.modules)
        out.append(WordRow(f"Stage {number}", text, params, "", modules, run[-1].shape, number, True))
        out.extend(WordRow(r.title, r.text, r.params, r.layer, r.modules, r.shape, number, brief=r.brief)
                   for r in run)
    return out


def params_in_words(n: int) -> str:
    """The parameter column in words: "5,124 numbers learned", "3.4 million"."""
    return plain_number(n) if n else ""
