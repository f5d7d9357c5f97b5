"""Process groups and FSDP2 for the trainer.

One process on CPU needs nothing; under `torchrun` (WORLD_SIZE > 1, or RANK set) the default process group
is created from torchrun's environment: NCCL on CUDA, gloo on CPU. Sharding is PyTorch's FSDP2
(`torch.distributed.fsdp.fully_shard`): each JetMoE block is one FSDP unit, then the root (embedding +
final norm), so at most a block's parameters are gathered at a time.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init() -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; start the process group when there is more than one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # Checkpoint hashing and val of a large run can keep ranks apart for minutes; the default 10 min
        # NCCL timeout is too tight for an 8B checkpoint on a slow filesystem.
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60),
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj, info: DistInfo):
    """Rank 0's small Python object (a decision, a path) to every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj, info: DistInfo) -> list:
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def use_fsdp(mode: str, info: DistInfo) -> bool:
    if mode == "true":
        if not info.distributed:
            raise ValueError("parallel.fsdp = true needs more than one rank: launch with torchrun "
                             "--nproc-per-node N, or set parallel.fsdp = \"auto\"")
        return True
    return mode == "auto" and info.distributed


def checkpoint_activations(model: torch.nn.Module) -> torch.nn.Module:
    """Recompute each block's internals in backward instead of keeping them (per-block activation
    checkpointing, as torchtitan applies it): activation memory drops to the blocks' inputs plus one block."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for i, block in enumerate(model.layers):
        model.layers[i] = checkpoint_wrapper(block, preserve_rng_state=False)
    return model


def shard_model(model: torch.nn.Module, reshard_after_forward: bool) -> torch.nn.Module:
    """FSDP2: one unit per block, then the root. Mixed precision is left to autocast so that one
    process and N ranks run the same arithmetic."""
    from torch.distributed.fsdp import fully_shard

    for block in model.layers:
        fully_shard(block, reshard_after_forward=reshard_after_forward)
    fully_shard(model, reshard_after_forward=reshard_after_forward)
    return model
