"""Data-parallel fine-tuning across processes, as the original's ``torchrun`` runs it.

The authors train on 2/4/8 GPUs (``train_llm.sh``) and, inside the loss, ``all_gather`` the
anchors', positives' and hard negatives' embeddings of every rank (``ft_llm.py`` l.180-200), so
one InfoNCE term sees the whole batch; DDP then averages the ranks' gradients. :class:`Ranks`
gives the trainer those two collective operations; :func:`launch` starts the processes of one
job (one process per GPU, or gloo on CPU for tests) without a separate ``torchrun`` command, so
a Slurm job with N GPUs runs one Snakemake script that spawns N workers.

Gradient scale (the original's, reproduced): each rank's loss is the full-batch loss but its
gradient flows only through its own rows; DDP's average over ranks therefore gives
``full-batch gradient / world_size``, and the Trainer's clipping at ``max_grad_norm`` 1.0 acts on
that scaled gradient. One process with gradient caching gets the full-batch gradient itself:
with Adam (scale-invariant up to ``eps``) that run equals the original on ``world_size`` GPUs
when ``max_grad_norm`` is ``world_size`` x 1.0 (``tests/test_finetune_distributed.py``).
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel job (``world_size`` 1: a single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather_rows(self, tensor):
        """Every rank's rows concatenated in rank order (equal row counts on every rank).
        No gradient flows through the result: the trainer differentiates the loss with respect
        to the gathered rows itself and keeps only its own slice (gradient caching)."""
        if self.world_size == 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    def average_gradients(self, params: Sequence[Any]) -> None:
        """Replace each parameter's gradient by its mean over ranks (what DDP does), in one
        flattened all-reduce."""
        if self.world_size == 1:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


#: The Ranks of a job that runs in one process.
SINGLE_PROCESS = Ranks()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the process group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, backend: str, fn: Callable, args: tuple):
    import torch.distributed as dist

    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    if backend == "nccl":
        import torch

        torch.cuda.set_device(rank)
    # Rank 0 scores STS-B dev checkpoints while the others wait at a barrier: a long
    # timeout, so a slow checkpoint on a big model is not taken for a hung rank.
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(hours=2),
    )
    try:
        fn(Ranks(rank, world_size), *args)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], world_size: int, args: tuple = (), backend: str | None = None):
    """Run ``fn(ranks, *args)`` in ``world_size`` processes of one process group on this node
    (``world_size`` 1: in this process, no group). ``backend``: nccl when CUDA is available,
    else gloo. A failing worker raises here (torch.multiprocessing's ProcessRaisedException)."""
    if world_size == 1:
        return fn(SINGLE_PROCESS, *args)
    import torch
    import torch.multiprocessing as mp

    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        from ..errors import ConfigError

        raise ConfigError(
            f"finetune.world_size {world_size} needs {world_size} GPUs; this job sees "
            f"{torch.cuda.device_count()} (the Slurm job asks for world_size GPUs)"
        )
    mp.start_processes(
        _worker,
        args=(world_size, free_port(), backend, fn, args),
        nprocs=world_size,
        join=True,
        start_method="spawn",
    )
    return None
