"""Distributed data parallel under torchrun: gloo on CPU, NCCL on CUDA; a no-op for a single process."""

import gc
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """Where this process runs and which share of the work it has."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def setup(requested_device: str | None) -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size <= 1:
        return Dist(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # torch.distributed.nn binds `group.WORLD` as a default argument when it is first imported. DDP imports it
    # (through FSDP's sharded tensors); imported after the group exists, it would hold the group past
    # destroy_process_group, and with it the group's worker threads (see teardown). Before, it binds None.
    importlib.import_module("torch.distributed.nn")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, device)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def all_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """Sum a tensor over all processes (the tensor itself when alone)."""
    if d.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(obj, d: Dist) -> list:
    """Every process's picklable `obj`, in rank order ([obj] when alone)."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    """Leave the process group and end its worker threads while the interpreter still runs.

    A gloo worker thread lets go of a finished collective (and of the earlier ones a barrier waited for) only
    after the caller has seen it complete; their tensors belong to Python, so letting go takes the GIL. Were
    the group still alive when the interpreter finalizes, the finalizing interpreter would end that thread in
    the middle of a C++ destructor, which aborts the process ("terminate called without an active
    exception"). Destroying the group joins its threads; for that, nothing else may still hold it: the
    caller drops its DDP model first, and collecting garbage frees what reference cycles kept of it.
    """
    if d.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
