"""The contrastive loss and the training loop around one loaded model."""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import io, prompts
from ..adapters import save_adapter
from ..options import SENTEVAL_SEED, EmbedOptions
from .batches import rank_rows, step_rows, training_prompt, truncate_sentences
from .distributed import SINGLE_PROCESS, Ranks
from .gradcache import cached_backward
from .model import add_lora
from .recipe import FinetuneRecipe, planned_steps
from .triplets import Triplets

log = logging.getLogger(__package__)


def info_nce(anchor, positive, negative=None, temperature: float = 0.05):
    """SimCSE's supervised InfoNCE: row i of ``anchor`` against every positive (and every hard
    negative) of the batch by cosine similarity / ``temperature``; its own positive is the
    target. Mean cross-entropy over the batch, computed in float32."""
    import torch
    import torch.nn.functional as F

    a = F.normalize(anchor.float(), dim=-1)
    candidates = positive if negative is None else torch.cat([positive, negative], dim=0)
    c = F.normalize(candidates.float(), dim=-1)
    logits = a @ c.T / temperature
    target = torch.arange(len(a), device=logits.device)
    return F.cross_entropy(logits, target)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """The training loop around one loaded model (see :mod:`sentscale.finetune`).

    ``ranks``: this process's place in a data-parallel job (:mod:`.distributed`); every rank
    builds the same Trainer (same seed, same LoRA initialisation) and trains on its share of
    each batch; only rank 0 scores checkpoints and writes the adapter. ``clean_up_decoded``:
    the training sentences get the original's decode clean-up (OPT models, see
    :func:`~.batches.truncate_sentences`)."""

    def __init__(
        self,
        model,
        tokenizer,
        recipe: FinetuneRecipe,
        *,
        variant: prompts.PromptVariant | str = "eol",
        preprocess: bool = True,
        eval_batch_size: int = EmbedOptions.batch_size,  # the embed block's default
        name: str = "model",
        ranks: Ranks = SINGLE_PROCESS,
        clean_up_decoded: bool = False,
    ) -> None:
        from ..embed import Embedder  # torch: imported when a model is trained, not at import

        self.recipe = recipe
        self.ranks = ranks
        self.clean_up_decoded = clean_up_decoded
        self.tokenizer = tokenizer
        self.variant = prompts.get_variant(variant) if isinstance(variant, str) else variant
        seed_everything(recipe.seed)  # the LoRA initialisation: equal on every rank
        self.peft_model = add_lora(model, self.recipe)
        self.model = self.peft_model.get_base_model()  # the causal LM with LoRA layers
        # One Embedder serves both training (tokens, left padding, the pooled forward pass,
        # with gradients) and the dev checkpoints (its encode, with the evaluation's sentence
        # clean-up), so both read the same embedding of a prompt.
        self.embedder = Embedder(
            self.model,
            tokenizer,
            self.variant,
            (),
            preprocess=preprocess,
            batch_size=eval_batch_size,
            name=name,
            progress=False,
        )
        self.model.train()
        self.scaler = None
        if recipe.mixed_precision == "fp16":
            import torch

            # the transformers Trainer's fp16=True: autocast plus a dynamic loss scale
            self.scaler = torch.amp.GradScaler(self.embedder.device.type)

    @property
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.peft_model.parameters() if p.requires_grad)

    def autocast(self):
        """The forward passes' mixed precision (``recipe.mixed_precision``), or nothing."""
        import contextlib

        import torch

        mp = self.recipe.mixed_precision
        if mp is None:
            return contextlib.nullcontext()
        dtype = torch.float16 if mp == "fp16" else torch.bfloat16
        return torch.autocast(self.embedder.device.type, dtype=dtype)

    def embed(self, sentences: Sequence[str]):
        """Pooled embeddings of training ``sentences`` (already cut to ``max_length`` tokens)
        as one left-padded batch, with gradients, in the forward passes' precision."""
        with self.autocast():
            return self.embedder.embed_prompts(
                [training_prompt(s, self.variant) for s in sentences], grad=True
            )

    def loss(self, anchor: Sequence[str], positive: Sequence[str], negative: Sequence[str]):
        """The InfoNCE loss of one batch in one forward pass, with its graph (no caching)."""
        n = len(anchor)
        emb = self.embed([*anchor, *positive, *negative])  # one forward pass for all three
        return info_nce(emb[:n], emb[n : 2 * n], emb[2 * n :], self.recipe.temperature)

    def gradients(self, anchor: Sequence[str], positive: Sequence[str], negative: Sequence[str]):
        """Accumulate into ``.grad`` the gradient of the InfoNCE loss over the whole batch of
        every rank (this rank holds ``anchor``/``positive``/``negative``), micro-batch by
        micro-batch (gradient caching), averaged over ranks as DDP does; the loss value."""
        micro = self.recipe.micro_batch_size
        starts = range(0, len(anchor), micro)
        chunks = [
            (anchor[i : i + micro], positive[i : i + micro], negative[i : i + micro])
            for i in starts
        ]

        def embed(chunk):
            a, p, n = chunk
            return self.embed([*a, *p, *n]).view(3, len(a), -1)

        def loss_of(rows):
            return info_nce(rows[0], rows[1], rows[2], self.recipe.temperature)

        def backward(surrogate):
            (surrogate if self.scaler is None else self.scaler.scale(surrogate)).backward()

        loss = cached_backward(
            embed, chunks, loss_of, ranks=self.ranks, device=self.embedder.device, backward=backward
        )
        self.ranks.average_gradients(self._params())
        return loss

    def dev_score(self, data_dir: str | Path, seed: int = SENTEVAL_SEED) -> float:
        """STS-B dev Spearman x100 of the current weights (reads only sts-dev.csv), in the
        original's checkpoint-selection precision (:meth:`selection_precision`)."""
        from .. import evaluation
        from ..demos.guard import SELECTION_TASK, load_dev

        max_items = self.recipe.dev_max_items
        load_dev(data_dir, max_items, seed)  # refuses any file but sts-dev.csv
        self.model.eval()
        try:
            with self.selection_precision():
                result = evaluation.evaluate(
                    self.embedder.encode, [SELECTION_TASK], data_dir, max_items=max_items, seed=seed
                )[SELECTION_TASK]
        finally:
            self.model.train()
        return float(result["score"])

    def selection_precision(self):
        """The original scores checkpoints on the 4-bit base with fp16 compute and the LoRA
        layers in fp16 (``eval_checkpoints.sh`` -> ``evaluation.py --load_kbit 4``,
        l.88-133): with QLoRA, fp16 autocast and the 4-bit layers' compute dtype set to fp16
        for the duration. Without quantization: the training precision."""
        import contextlib

        import torch

        if self.recipe.quantization is None:
            return self.autocast()
        stack = contextlib.ExitStack()
        layers = [m for m in self.model.modules() if hasattr(m, "compute_dtype")]
        saved = [m.compute_dtype for m in layers]
        for m in layers:
            m.compute_dtype = torch.float16

        def restore():
            for m, dtype in zip(layers, saved, strict=True):
                m.compute_dtype = dtype

        stack.callback(restore)
        stack.enter_context(torch.autocast(self.embedder.device.type, dtype=torch.float16))
        return stack

    def train(
        self,
        triplets: Triplets,
        *,
        data_dir: str | Path,
        out_adapter: str | Path,
        dev_seed: int = SENTEVAL_SEED,
        record: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train, keep the best checkpoint on STS-B dev in ``out_adapter`` (rank 0); returns
        the log (on every rank; only rank 0's has the dev scores)."""
        r = self.recipe
        seed_everything(r.seed)
        steps = planned_steps(len(triplets), r)
        rows = step_rows(len(triplets), steps, r.batch_size, r.seed, r.world_size)
        mine = [rank_rows(b, self.ranks.rank, r.world_size) for b in rows]
        used = np.unique(np.concatenate(rows))
        cut = self._cut_triplets(triplets, np.unique(np.concatenate(mine)))
        optimizer, scheduler = self._optimizer(steps)
        checkpoint_steps = evaluated_steps(steps, r.eval_steps)

        started = time.perf_counter()
        main = self.ranks.is_main
        dev_before = self.dev_score(data_dir, dev_seed) if main else float("nan")
        if main:
            log.info("step 0 (untuned): STS-B dev %.2f", dev_before)
        losses: list[dict[str, float]] = []
        checkpoints: list[dict[str, float]] = []
        best: dict[str, float] | None = None
        out_adapter = Path(out_adapter)
        staging = (
            Path(tempfile.mkdtemp(prefix=f".{out_adapter.name}.", dir=_parent(out_adapter)))
            if main
            else None
        )
        try:
            for step in range(1, steps + 1):
                losses.append(self._step(step, steps, mine[step - 1], cut, optimizer, scheduler))
                if step in checkpoint_steps and main:
                    score = self.dev_score(data_dir, dev_seed)
                    checkpoints.append({"step": step, "dev_spearman": score})
                    # The original keeps a checkpoint whose dev score, at two decimals, is >= the
                    # best so far (evaluation.py l.297-313): ties go to the later step.
                    improved = best is None or round(score, 2) >= round(best["dev_spearman"], 2)
                    log.info(
                        "step %d: STS-B dev %.2f%s", step, score, " (best)" if improved else ""
                    )
                    if improved:
                        best = {"step": step, "dev_spearman": score}
                        best_dir = staging / "best"
                        if best_dir.exists():
                            shutil.rmtree(best_dir)
                        save_adapter(self.peft_model, best_dir, {**(record or {}), **best})
                self.ranks.barrier()  # the other ranks wait while rank 0 scores
            if main:
                assert best is not None
                io.replace_dir(staging / "best", out_adapter, aside=staging / "old")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return {
            "steps": steps,
            "triplets": len(triplets),
            "triplets_used": int(len(used)),
            "world_size": r.world_size,
            "micro_batches": -(-(r.batch_size // r.world_size) // r.micro_batch_size),
            "trainable_parameters": self.trainable_parameters,
            "loss": losses,
            "dev": checkpoints,
            "dev_before": dev_before,
            "best_step": best["step"] if best else None,
            "best_dev_spearman": best["dev_spearman"] if best else None,
            "train_s": round(time.perf_counter() - started, 3),
        }

    def _cut_triplets(self, triplets: Triplets, used: np.ndarray) -> dict[str, dict[int, str]]:
        """The rows this process trains on, per column, cut to ``max_length`` tokens."""
        cut = {}
        for column in ("anchor", "positive", "negative"):
            texts = getattr(triplets, column)
            cut[column] = dict(
                zip(
                    used.tolist(),
                    truncate_sentences(
                        self.tokenizer,
                        [texts[i] for i in used],
                        self.recipe.max_length,
                        clean_up=self.clean_up_decoded,
                    ),
                    strict=True,
                )
            )
        return cut

    def _params(self) -> list:
        return [p for p in self.peft_model.parameters() if p.requires_grad]

    def _optimizer(self, steps: int):
        """AdamW and the linear schedule with warm-up over ``steps`` steps (the transformers
        Trainer's defaults: betas 0.9/0.999, eps 1e-8)."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        r = self.recipe
        optimizer = torch.optim.AdamW(
            self._params(), lr=r.learning_rate, weight_decay=r.weight_decay
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, r.warmup_steps, steps)
        return optimizer, scheduler

    def _step(self, step: int, steps: int, batch, cut, optimizer, scheduler) -> dict:
        """One optimiser step on this rank's rows ``batch`` of the step; its log row."""
        import torch

        t_step = time.perf_counter()
        chosen = batch.tolist()
        loss = self.gradients(
            [cut["anchor"][i] for i in chosen],
            [cut["positive"][i] for i in chosen],
            [cut["negative"][i] for i in chosen],
        )
        if not math.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {loss}")
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params(), self.recipe.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        if self.scaler is None:
            optimizer.step()
            stepped = True
        else:
            scale = self.scaler.get_scale()
            self.scaler.step(optimizer)
            self.scaler.update()
            # an overflowing fp16 step is skipped, and so is its schedule step (as the
            # transformers Trainer does)
            stepped = self.scaler.get_scale() >= scale
        if stepped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        row = {
            "step": step,
            "loss": round(loss, 6),
            "lr": lr,
            "grad_norm": round(float(grad_norm), 6),
            "seconds": round(time.perf_counter() - t_step, 3),
        }
        if self.ranks.is_main:
            log.info("step %d/%d: loss %.4f (lr %.2e)", step, steps, loss, lr)
        return row


def evaluated_steps(steps: int, eval_steps: int) -> set[int]:
    """The steps whose checkpoint is scored: every ``eval_steps``-th, as the original saves
    (``save_steps`` 50) and scores them; its final partial step is not a checkpoint. A run
    shorter than ``eval_steps`` scores its last step, so there is always one."""
    return set(range(eval_steps, steps + 1, eval_steps)) or {steps}


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent
