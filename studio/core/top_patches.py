"""What a channel responds to: the training-image patches that excite it most, and where they are.

A learned filter deeper than the first layer is a stack of small kernels no person can read. What
one can read is the evidence: run (a sample of) the training images through the model once, and
for every channel of a layer keep the images where its strongest response is highest, with the
place of that response. The patch of the image around that place, as large as the region the
channel can see, is "what this channel looks for".

The region a channel can see is measured, not derived from layer arithmetic (padding rules,
dilations and skip connections differ per architecture): the gradient of one output position
with respect to the input is non-zero exactly over that position's receptive field.

The result is small (per channel: k image indices, positions and values) and is cached in the
run folder, keyed by layer, image size, sample and the checkpoint's identity, so a second look
at a layer is instant and survives restarting the studio.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from studio.core import atomic
from studio.core.inspect import ActivationRecorder, _eval_mode

SAMPLE = 200  # training images per pass: enough for varied evidence, a few seconds on a CPU
TOP_K = 9


@dataclass
class ChannelPatches:
    """Per channel, the k strongest responses over the sample: which image, where, how strong.

    index[c, j]: position in `paths` (or in the pixel batch) of the j-th strongest image for channel c;
    top[c, j], left[c, j]: the patch's top-left corner in model-input pixels; value[c, j]: the response.
    """

    layer: str
    image_size: int
    side: int
    paths: list[str]
    index: np.ndarray
    top: np.ndarray
    left: np.ndarray
    value: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.index.shape[0])

    def patches(self, pixels: np.ndarray | Tensor, channel: int) -> list[np.ndarray]:
        """uint8 H×W×3 crops of `pixels` ([N, 3, S, S], the sample in `paths` order) for one channel."""
        arr = pixels.numpy() if isinstance(pixels, Tensor) else np.asarray(pixels)
        out = []
        for j in range(self.index.shape[1]):
            if self.value[channel, j] == -np.inf:
                continue  # fewer images than k
            i, y, x = int(self.index[channel, j]), int(self.top[channel, j]), int(self.left[channel, j])
            out.append(np.ascontiguousarray(arr[i, :, y:y + self.side, x:x + self.side].transpose(1, 2, 0)))
        return out


def receptive_side(model: nn.Module, layer: str, image_size: int) -> int:
    """The side, in input pixels, of the square one position of `layer` sees (measured by a gradient)."""
    module = dict(model.named_modules())[layer]
    captured: list[Tensor] = []

    def hook(_m: nn.Module, _i: object, output: object) -> None:
        captured[:] = [output if isinstance(output, Tensor) else output[0]]  # type: ignore[index]

    first = next(model.parameters(), None)
    x = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    x = x.to(device=first.device if first is not None else None).requires_grad_(True)
    handle = module.register_forward_hook(hook)
    try:
        with _eval_mode(model), torch.enable_grad():
            model(x)
            out = captured[0]
            if out.ndim != 4:
                raise ValueError(f"layer {layer!r} keeps no map of the image")
            h, w = out.shape[-2:]
            (grad,) = torch.autograd.grad(out[0, :, h // 2, w // 2].sum(), x)
    finally:
        handle.remove()
    seen = grad[0].abs().sum(0)
    rows = torch.nonzero(seen.sum(1) > 0).flatten()
    cols = torch.nonzero(seen.sum(0) > 0).flatten()
    if len(rows) == 0:
        return max(1, image_size // max(h, w))
    side = max(int(rows[-1] - rows[0]) + 1, int(cols[-1] - cols[0]) + 1, image_size // max(h, w))
    return min(side, image_size)


def find_top_patches(
    model: nn.Module, layer: str, pixels: Tensor, normalize: Callable[[Tensor], Tensor], *,
    k: int = TOP_K, batch_size: int = 32, paths: Sequence[str] = (), should_stop: Callable[[], bool] | None = None,
) -> ChannelPatches:
    """One pass over `pixels` (uint8 [N, 3, S, S]); per channel of `layer`, the k images it responds to most.

    Each image counts once per channel, at the place of its strongest response, so the k patches
    show k different images rather than k neighbouring positions of one.
    """
    n, _, size, _ = pixels.shape
    side = receptive_side(model, layer, size)
    device = next(model.parameters()).device
    best_val = best_idx = best_pos = None
    grid = (0, 0)
    with _eval_mode(model), torch.no_grad():
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped")
            chunk = pixels[start:start + batch_size]
            with ActivationRecorder(model, [layer]) as rec:
                model(normalize(chunk.to(device)))
            act = rec.activations[layer].float()  # [B, C, H, W]
            if act.ndim != 4:
                raise ValueError(f"layer {layer!r} keeps no map of the image")
            b, c, h, w = act.shape
            grid = (h, w)
            peak, where = act.reshape(b, c, h * w).max(dim=2)  # [B, C]
            vals = peak.T  # [C, B]
            idx = torch.arange(start, start + b).expand(c, b)
            pos = where.T
            if best_val is not None:
                vals, idx, pos = (torch.cat([best_val, vals], 1), torch.cat([best_idx, idx], 1),
                                  torch.cat([best_pos, pos], 1))
            keep = torch.topk(vals, min(k, vals.shape[1]), dim=1).indices
            best_val, best_idx, best_pos = vals.gather(1, keep), idx.gather(1, keep), pos.gather(1, keep)
    if best_val is None:
        raise ValueError("no images to look at")
    h, w = grid
    ys, xs = (best_pos // w).numpy(), (best_pos % w).numpy()
    top = np.clip(((ys + 0.5) * size / h - side / 2).round(), 0, size - side).astype(np.int64)
    left = np.clip(((xs + 0.5) * size / w - side / 2).round(), 0, size - side).astype(np.int64)
    value, index = best_val.numpy().astype(np.float32), best_idx.numpy().astype(np.int64)
    if value.shape[1] < k:  # fewer images than k: pad so every channel has k slots
        pad = ((0, 0), (0, k - value.shape[1]))
        value = np.pad(value, pad, constant_values=-np.inf)
        index, top, left = (np.pad(a, pad) for a in (index, top, left))
    return ChannelPatches(layer, size, side, list(paths), index, top, left, value)


# ---------------------------------------------------------------- per run: sample, pass, cache


def sample_training_images(run_dir: Path, root: str, count: int = SAMPLE, seed: int = 0) -> list[str]:
    """A seeded sample of the run's own training images (absolute paths), from its split file."""
    from studio.core.runfiles import read_split

    rows = [p for p, _, split in read_split(run_dir) if split == "train"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(rows), size=min(count, len(rows)), replace=False).tolist()) if rows else []
    return [str(Path(root, *rows[i].split("/"))) for i in chosen]


def load_pixels(paths: Sequence[str], size: int) -> tuple[Tensor, list[str]]:
    """uint8 [N, 3, size, size] of the images that still read; unreadable ones are left out."""
    from studio.core.images import ImageError, load_for_model, to_tensor

    tensors, kept = [], []
    for path in paths:
        try:
            tensors.append(to_tensor(load_for_model(path, size)))
        except (ImageError, OSError):
            continue
        kept.append(path)
    if not tensors:
        raise ValueError("none of the sampled training images can be read now")
    return torch.stack(tensors), kept


def _cache_file(run_dir: Path, checkpoint: Path, layer: str, size: int, paths: Sequence[str], k: int) -> Path:
    stat = checkpoint.stat()
    key = json.dumps([str(checkpoint.name), stat.st_size, stat.st_mtime_ns, layer, size, list(paths), k])
    return Path(run_dir) / "inspect" / f"top-patches-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def run_top_patches(run_dir: str | Path, checkpoint: str | Path, model: nn.Module, layer: str, image_size: int,
                    normalize: Callable[[Tensor], Tensor], root: str, *, k: int = TOP_K, sample: int = SAMPLE,
                    should_stop: Callable[[], bool] | None = None) -> tuple[ChannelPatches, Tensor]:
    """Top patches of `layer` over a sample of the run's training images, from the cache when it has them.

    Returns the result and the sample's pixels (which the patches are cut from).
    """
    run_dir, checkpoint = Path(run_dir), Path(checkpoint)
    pixels, paths = load_pixels(sample_training_images(run_dir, root, sample), image_size)
    cache = _cache_file(run_dir, checkpoint, layer, image_size, paths, k)
    if cache.is_file():
        try:
            with np.load(cache) as z:
                return ChannelPatches(layer, image_size, int(z["side"]), paths, z["index"], z["top"], z["left"],
                                      z["value"]), pixels
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is computed again
    result = find_top_patches(model, layer, pixels, normalize, k=k, paths=paths, should_stop=should_stop)
    buffer = io.BytesIO()
    np.savez(buffer, side=result.side, index=result.index, top=result.top, left=result.left, value=result.value)
    try:
        cache.parent.mkdir(exist_ok=True)
        atomic.write_bytes(cache, buffer.getvalue())
    except OSError:
        pass  # a read-only or full disk: the answer is still shown, only not remembered
    return result, pixels
