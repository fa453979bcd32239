"""Gradient caching: the full-batch contrastive loss and its exact gradients, whatever the
memory (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup").

The loss of a contrastive batch couples every row, so it cannot be split into micro-batches the
way a per-row loss can. Instead: (1) embed all rows without a graph, micro-batch by
micro-batch; (2) compute the loss on the whole batch of (gathered) embeddings and its gradient
with respect to each embedding; (3) re-run each micro-batch with a graph and backpropagate its
cached embedding gradients. The parameter gradients equal the full-batch ones (float rounding
aside). Dropout draws the same masks in (1) and (3): each micro-batch's random state is saved
before (1) and restored before (3).

Written by hand (the GradCache package targets encoders with ``model(**inputs)`` and its own
loss wrapper) because it is ~40 lines around our embedder and must compose with the
cross-process gather of :mod:`.distributed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .distributed import SINGLE_PROCESS, Ranks


class RandomState:
    """The CPU and (for a CUDA device) the device's generator states at construction."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


def cached_backward(
    embed: Callable[[Any], torch.Tensor],
    chunks: Sequence[Any],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    *,
    ranks: Ranks = SINGLE_PROCESS,
    device: torch.device,
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
) -> float:
    """Backpropagate ``loss_of(all rows)`` into the parameters behind ``embed``; the loss value.

    ``embed(chunk)`` -> the chunk's rows (any layout ``loss_of`` understands along dim 1,
    e.g. ``(3, m, d)`` for anchor/positive/negative). Rows of all chunks are concatenated
    along dim 1, gathered across ``ranks`` (rank order), and the loss differentiated with
    respect to them; this process's slice of that gradient flows back through its chunks.
    ``backward(surrogate)`` runs the backward pass (e.g. through an fp16 GradScaler). One
    chunk keeps its graph from the first pass (no second forward)."""
    single = len(chunks) == 1
    states, parts = [], []
    with torch.set_grad_enabled(single):
        for chunk in chunks:
            states.append(RandomState(device))
            parts.append(embed(chunk))
    local = torch.cat([p.detach().float() for p in parts], dim=1)
    gathered = torch.stack([ranks.gather_rows(rows) for rows in local])  # (k, B, d)
    gathered.requires_grad_(True)
    with torch.enable_grad():
        loss = loss_of(gathered)
        (grad,) = torch.autograd.grad(loss, gathered)
    n_local = local.shape[1]
    grad = grad[:, ranks.rank * n_local : (ranks.rank + 1) * n_local]
    offset = 0
    for state, part, chunk in zip(states, parts, chunks, strict=True):
        width = part.shape[1]
        g = grad[:, offset : offset + width]
        offset += width
        if not single:
            state.restore()
            with torch.enable_grad():
                part = embed(chunk)
        backward((part.float() * g).sum())
    return float(loss.detach())
