"""PyTorch's own distributed engine, read from torchrun's environment.

    torchrun --nproc_per_node=2 -m desample train ...                      # one machine
    torchrun --nnodes=1:4 --nproc_per_node=1 --rdzv-backend=c10d \\
             --rdzv-endpoint=HOST:29400 --max-restarts=3 -m desample train ...  # several, elastic

Without torchrun (no WORLD_SIZE) it is one process and nothing here costs anything. gloo on CPU,
nccl when every rank has a GPU. Rank 0 alone logs, validates and writes checkpoints; the others
get its checkpoint by broadcast, so machines need not share a disk.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj):
        """Rank 0's object on every rank (pickled; tensors included)."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def total(self, value: float) -> float:
        """The sum of a number over all ranks (every rank must call it at the same point)."""
        if not self.active:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            # All ranks leave together: a rank that tore gloo down while rank 0 was still writing its
            # checkpoint aborted now and then ("terminate called without an active exception", SIGABRT).
            dist.barrier()
            dist.destroy_process_group()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around the model when there are several ranks."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # No buffer broadcast before each forward: the net's only buffer is the fixed bicubic kernel, the
        # same on every rank, and broadcasting it failed once channels-last (bf16 training) had made
        # it overlap in memory ("some elements ... refer to a single memory location").
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def init_distributed(timeout_minutes: float = 30) -> Dist:
    """Join torchrun's process group when launched by it (WORLD_SIZE > 1), else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = torch.cuda.is_available() and torch.cuda.device_count() > local_rank
    if gpu:
        torch.cuda.set_device(local_rank)
    # Rank 0 validates while the others wait in the next all-reduce: the timeout must cover it.
    timeout = timedelta(minutes=timeout_minutes)
    dist.init_process_group("nccl" if gpu else "gloo", timeout=timeout, **_restart_safe_store(rank, world, timeout))
    device = torch.device("cuda", local_rank) if gpu else torch.device("cpu")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def _restart_safe_store(rank: int, world: int, timeout: timedelta) -> dict:
    """A store whose keys can't be a previous attempt's, where torchrun would hand out a stale one.

    torchrun shares one TCPStore across elastic restarts (PyTorch issue 135712): a restarted group
    can read the dead ranks' addresses and fail with "Connection refused". On one machine every
    worker knows the restart count, so a prefix per attempt isolates them. Across machines the
    counts can differ: there only `TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1` (torchrun's environment)
    helps, and we say so.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) == 0:
        return {}
    if int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != world:
        if rank == 0:
            print("warning: elastic restarts across machines: start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                  "in its environment, or a restarted group may fail to connect (PyTorch issue 135712)")
        return {}
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"desample/attempt_{attempt}", store), "rank": rank, "world_size": world}


def no_sync_unless(last: bool, model: torch.nn.Module):
    """DDP's no_sync() for all micro-batches but the last: gradients are all-reduced once per step."""
    if last or not hasattr(model, "no_sync"):
        return nullcontext()
    return model.no_sync()
