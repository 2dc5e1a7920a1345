"""The studio's one walk over a network's layers: what runs, in which order, with which output shape.

The Inspect pane's layer tree, the Model pane's table (`models.summarize`) and
every activation recording share it, so a layer is named and shaped the same
everywhere. Kept apart from `inspect` (which draws maps and Grad-CAM) so that
`models` can use it without an import circle; it imports nothing of the studio.
Hooks exist only inside `ActivationRecorder`'s context, so a model is never
left carrying them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

# Modules that change nothing a person would want to look at (in eval mode).
_HIDDEN = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout)


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer list or tree: found by running the model, listed in the order it ran.

    parent: the nearest enclosing listed module ("" at the top), so a view can build the tree;
    calls: how often it ran in one pass (a shared activation module runs several times; its
    recorded output is that of its last call).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: bool
    depth: int
    parent: str
    leaf: bool
    calls: int = 1
    finish: int = -1  # place in the order the modules' (last) calls finished

    @property
    def has_maps(self) -> bool:
        """True when the output is [C, H, W]: feature maps worth drawing."""
        return len(self.output_shape) == 3

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "output_shape": list(self.output_shape), "has_maps": self.has_maps}


def _first_tensor(output: object) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


class ActivationRecorder:
    """`with ActivationRecorder(model) as rec: model(x)` leaves each module's output in `rec.activations`.

    Outputs are copied to the CPU (a copy even there: an in-place ReLU after a BatchNorm would
    otherwise rewrite the BatchNorm's stored output). A container whose output is the very tensor
    its last child produced shares that child's copy instead of holding a second one. Every hook
    is removed on exit, also when the pass raised. Only calls from the thread that entered are
    recorded, so a prediction running meanwhile on the same model in another thread cannot slip
    its activations in.
    """

    def __init__(self, model: nn.Module, layers: Iterable[str] | None = None, *, store: bool = True) -> None:
        modules = dict(model.named_modules())
        names = [name for name in modules if name] if layers is None else list(layers)
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise ValueError(f"no layer named {', '.join(map(repr, unknown))} in this model")
        self.model = model
        self.store = store
        self._modules = [(name, modules[name]) for name in names]
        self.activations: dict[str, Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.order: list[str] = []  # first-call order: parents before their children
        self.calls: Counter[str] = Counter()
        self._finished: dict[str, None] = {}  # insertion order = order of each module's last finished call
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._last: tuple[Tensor, int, Tensor] | None = None

    def __enter__(self) -> ActivationRecorder:
        self._thread = threading.get_ident()
        try:
            for name, module in self._modules:
                self._handles.append(module.register_forward_pre_hook(partial(self._before, name)))
                self._handles.append(module.register_forward_hook(partial(self._after, name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._last = None

    def _before(self, name: str, module: nn.Module, inputs: object) -> None:
        if threading.get_ident() == self._thread and name not in self.calls:
            self.order.append(name)

    @property
    def finished(self) -> list[str]:
        """Module names in the order their last call finished (a container after its children)."""
        return list(self._finished)

    def _after(self, name: str, module: nn.Module, inputs: object, output: object) -> None:
        if threading.get_ident() != self._thread:
            return
        self.calls[name] += 1
        self._finished.pop(name, None)
        self._finished[name] = None
        tensor = _first_tensor(output)
        if tensor is None:
            return
        self.shapes[name] = tuple(tensor.shape[1:])
        if not self.store:
            return
        last = self._last
        if last is not None and last[0] is tensor and last[1] == tensor._version:
            copy = last[2]  # same tensor, unchanged since: a container passing on its last child's output
        else:
            copy = tensor.detach().to("cpu", copy=True)
        self.activations[name] = copy
        self._last = (tensor, tensor._version, copy)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for one pass, then every module's own mode back (frozen parts stay in eval)."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def _layer_infos(model: nn.Module, rec: ActivationRecorder, hidden: bool = False) -> list[LayerInfo]:
    modules = dict(model.named_modules())
    finish = {name: i for i, name in enumerate(rec.finished)}
    rows: list[LayerInfo] = []
    depth: dict[str, int] = {}
    for name in rec.order:  # parents start before their children, so a parent's depth is known first
        module = modules[name]
        if name not in rec.shapes or (isinstance(module, _HIDDEN) and not hidden):
            continue
        parts = name.split(".")
        parent = next((p for p in (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)) if p in depth), "")
        depth[name] = depth[parent] + 1 if parent else 0
        params = list(module.parameters())
        rows.append(LayerInfo(
            name=name, kind=type(module).__name__, output_shape=rec.shapes[name],
            params=sum(p.numel() for p in params), trainable=any(p.requires_grad for p in params),
            depth=depth[name], parent=parent, leaf=not any(True for _ in module.children()),
            calls=rec.calls[name], finish=finish.get(name, -1),
        ))
    return rows


def _layers_for(model: nn.Module, x: Tensor, hidden: bool = False) -> list[LayerInfo]:
    with _eval_mode(model), torch.no_grad(), ActivationRecorder(model, store=False) as rec:
        model(x)
    return _layer_infos(model, rec, hidden)


def list_layers(model: nn.Module, image_size: int, *, hidden: bool = False) -> list[LayerInfo]:
    """Every module worth showing, in the order it runs, with its output shape for one image.

    The one layer walk of the studio: the Inspect pane's tree and the Model pane's table
    (`models.summarize`) both come from it. Shapes come from a real pass (nothing is stored)
    because no formula covers padding rules, adaptive pools and custom blocks; a module that
    never runs has no row. `hidden` keeps the pass-through modules (dropout, identity) too.
    """
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    device = first.device if first is not None else None
    return _layers_for(model, torch.zeros(1, 3, image_size, image_size, device=device, dtype=dtype), hidden)
