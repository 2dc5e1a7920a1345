"""Running the same `studio train` on several processes under `torchrun`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for every process; the trainer
asks this module instead of reading them itself. Without torchrun every
function here is a cheap no-op, so the single-process path stays plain.
Only rank 0 writes files, the database and console output.

No rank may wait forever for another: collectives time out (a stuck or dead
rank becomes an error on the others, with a message), decisions that end the
loop (early stopping) are rank 0's, broadcast, and a failing rank leaves
without a barrier, so torchrun ends the remaining ranks instead of all hanging.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch import nn


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


# How long a rank waits in one collective before it gives up ($STUDIO_COLLECTIVE_TIMEOUT_S overrides).
# An epoch's validation runs between collectives, so this must exceed the longest validation.
DEFAULT_COLLECTIVE_TIMEOUT_S = 600


def collective_timeout() -> timedelta:
    try:
        return timedelta(seconds=float(os.environ["STUDIO_COLLECTIVE_TIMEOUT_S"]))
    except (KeyError, ValueError):
        return timedelta(seconds=DEFAULT_COLLECTIVE_TIMEOUT_S)


def setup() -> tuple[int, int]:
    """Join the process group torchrun prepared; NCCL between GPUs, Gloo between CPUs."""
    if world_size() <= 1:
        return 0, 1
    if not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
            # Without it a timed-out NCCL collective blocks its stream instead of raising.
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        tdist.init_process_group(backend=backend, timeout=collective_timeout())
    return tdist.get_rank(), tdist.get_world_size()


def teardown(ok: bool = True) -> None:
    """Leave the group; after a failure without the barrier, which the other ranks would never reach."""
    if tdist.is_available() and tdist.is_initialized():
        if ok:
            tdist.barrier()
        tdist.destroy_process_group()


def broadcast_flag(value: bool) -> bool:
    """Rank 0's decision on every rank: a rank that decided alone would leave the others in a collective."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return value
    box = torch.tensor([1 if value else 0], dtype=torch.int32)
    if tdist.get_backend() == "nccl":
        box = box.cuda()
    tdist.broadcast(box, src=0)
    return bool(box.item())


def broadcast_str(value: str) -> str:
    """Rank 0's value on every rank (the run folder name, chosen once)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return value
    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return str(box[0])


def average_epoch(loss: float, accuracy: float, images: int) -> tuple[float, float, int]:
    """Each rank saw its own share of the epoch: combine them into the whole epoch's figures."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return loss, accuracy, images
    t = torch.tensor([loss * images, accuracy * images, float(images)], dtype=torch.float64)
    if tdist.get_backend() == "nccl":  # NCCL reduces device tensors only
        t = t.cuda()
    tdist.all_reduce(t)
    n = max(t[2].item(), 1.0)
    return t[0].item() / n, t[1].item() / n, int(t[2].item())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel averages gradients so every rank takes the same step."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
