"""Running the same `studio train` on several processes under `torchrun`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for every process; the trainer
asks this module instead of reading them itself. Without torchrun every
function here is a cheap no-op, so the single-process path stays plain.
Only rank 0 writes files, the database and console output.
"""

from __future__ import annotations

import os

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


def setup() -> tuple[int, int]:
    """Join the process group torchrun prepared; NCCL between GPUs, Gloo between CPUs."""
    if world_size() <= 1:
        return 0, 1
    if not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        tdist.init_process_group(backend=backend)
    return tdist.get_rank(), tdist.get_world_size()


def teardown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


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
    tdist.all_reduce(t)
    n = max(t[2].item(), 1.0)
    return t[0].item() / n, t[1].item() / n, int(t[2].item())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel averages gradients so every rank takes the same step."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
