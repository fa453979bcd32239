"""The contrastive loss and the training loop around one loaded model."""

from __future__ import annotations

import logging
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
from ..errors import ConfigError
from ..options import SENTEVAL_SEED, EmbedOptions
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


def truncate_sentences(tokenizer: Any, sentences: Sequence[str], max_length: int) -> list[str]:
    """Each sentence cut to its first ``max_length`` tokens (no special tokens)."""
    if not sentences:
        return []
    ids = tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    return [
        s if len(i) <= max_length else tokenizer.decode(i[:max_length]).strip()
        for s, i in zip(sentences, ids, strict=True)
    ]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_rows(n_rows: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Row indices for every step (``steps`` x ``batch_size``): seeded permutations, one per
    epoch; an epoch's last incomplete batch is dropped."""
    rng = np.random.default_rng(seed)
    per_epoch = n_rows // batch_size
    if per_epoch < 1:
        raise ConfigError(
            f"finetune.batch_size {batch_size} is larger than the {n_rows} training triplets"
        )
    batches = []
    while len(batches) < steps:
        order = rng.permutation(n_rows)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        batches.extend(order)
    return np.stack(batches[:steps])


class Trainer:
    """The small training loop around one loaded model (see :mod:`sentscale.finetune`)."""

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
    ) -> None:
        from ..embed import Embedder  # torch: imported when a model is trained, not at import

        self.recipe = recipe
        self.tokenizer = tokenizer
        self.peft_model = add_lora(model, self.recipe)
        self.model = self.peft_model.get_base_model()  # the causal LM with LoRA layers
        # One Embedder serves both training (prompts, tokens, the pooled forward pass, with
        # gradients) and the dev checkpoints (its encode), so both see the same embedding.
        self.embedder = Embedder(
            self.model,
            tokenizer,
            variant,
            (),
            preprocess=preprocess,
            batch_size=eval_batch_size,
            name=name,
            progress=False,
        )
        self.model.train()

    @property
    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.peft_model.parameters() if p.requires_grad)

    def embed(self, sentences: Sequence[str]):
        """Pooled embeddings of ``sentences`` with gradients (one left-padded batch)."""
        prompts_ = [self.embedder.prompt(s) for s in sentences]
        return self.embedder.embed_prompts(prompts_, grad=True)

    def loss(self, anchor: Sequence[str], positive: Sequence[str], negative: Sequence[str]):
        n = len(anchor)
        emb = self.embed([*anchor, *positive, *negative])  # one forward pass for all three
        return info_nce(emb[:n], emb[n : 2 * n], emb[2 * n :], self.recipe.temperature)

    def dev_score(self, data_dir: str | Path, seed: int = SENTEVAL_SEED) -> float:
        """STS-B dev Spearman x100 of the current weights (reads only sts-dev.csv)."""
        from .. import evaluation
        from ..demos.guard import SELECTION_TASK, load_dev

        max_items = self.recipe.dev_max_items
        load_dev(data_dir, max_items, seed)  # refuses any file but sts-dev.csv
        self.model.eval()
        try:
            result = evaluation.evaluate(
                self.embedder.encode, [SELECTION_TASK], data_dir, max_items=max_items, seed=seed
            )[SELECTION_TASK]
        finally:
            self.model.train()
        return float(result["score"])

    def train(
        self,
        triplets: Triplets,
        *,
        data_dir: str | Path,
        out_adapter: str | Path,
        dev_seed: int = SENTEVAL_SEED,
        record: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train, keep the best checkpoint on STS-B dev in ``out_adapter``; returns the log."""
        r = self.recipe
        seed_everything(r.seed)
        steps = planned_steps(len(triplets), r)
        if steps < 1:
            raise ConfigError(
                f"finetune: {len(triplets)} triplets give no optimiser step of batch_size "
                f"{r.batch_size} (set max_steps or a smaller batch)"
            )
        rows = step_rows(len(triplets), steps, r.batch_size, r.seed)
        used = np.unique(rows)
        cut = self._cut_triplets(triplets, used)
        params, optimizer, scheduler = self._optimizer(steps)

        started = time.perf_counter()
        dev_before = self.dev_score(data_dir, dev_seed)
        log.info("step 0 (untuned): STS-B dev %.2f", dev_before)
        losses: list[dict[str, float]] = []
        checkpoints: list[dict[str, float]] = []
        best: dict[str, float] | None = None
        out_adapter = Path(out_adapter)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_adapter.name}.", dir=_parent(out_adapter)))
        best_dir = staging / "best"
        try:
            for step in range(1, steps + 1):
                losses.append(
                    self._step(step, steps, rows[step - 1], cut, params, optimizer, scheduler)
                )
                if step % r.eval_steps == 0 or step == steps:
                    score = self.dev_score(data_dir, dev_seed)
                    checkpoints.append({"step": step, "dev_spearman": score})
                    improved = best is None or score > best["dev_spearman"]
                    log.info(
                        "step %d: STS-B dev %.2f%s", step, score, " (best)" if improved else ""
                    )
                    if improved:
                        best = {"step": step, "dev_spearman": score}
                        if best_dir.exists():
                            shutil.rmtree(best_dir)
                        save_adapter(self.peft_model, best_dir, {**(record or {}), **best})
            assert best is not None
            io.replace_dir(best_dir, out_adapter, aside=staging / "old")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {
            "steps": steps,
            "triplets": len(triplets),
            "triplets_used": int(len(used)),
            "accumulation": r.batch_size // r.micro_batch_size,
            "trainable_parameters": self.trainable_parameters,
            "loss": losses,
            "dev": checkpoints,
            "dev_before": dev_before,
            "best_step": best["step"],
            "best_dev_spearman": best["dev_spearman"],
            "train_s": round(time.perf_counter() - started, 3),
        }

    def _cut_triplets(self, triplets: Triplets, used: np.ndarray) -> dict[str, dict[int, str]]:
        """The rows the steps use, per column, cut to ``max_length`` tokens."""
        cut = {}
        for column in ("anchor", "positive", "negative"):
            texts = getattr(triplets, column)
            cut[column] = dict(
                zip(
                    used.tolist(),
                    truncate_sentences(
                        self.tokenizer, [texts[i] for i in used], self.recipe.max_length
                    ),
                    strict=True,
                )
            )
        return cut

    def _optimizer(self, steps: int):
        """(trainable parameters, AdamW, linear schedule with warm-up) for ``steps`` steps."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        r = self.recipe
        params = [p for p in self.peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=r.learning_rate, weight_decay=r.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, r.warmup_steps, steps)
        return params, optimizer, scheduler

    def _step(self, step: int, steps: int, batch, cut, params, optimizer, scheduler) -> dict:
        """One optimiser step over the micro-batches of ``batch`` (row indices); its log row."""
        import torch

        r = self.recipe
        micro = r.micro_batch_size
        accumulation = r.batch_size // micro
        t_step = time.perf_counter()
        total = 0.0
        for k in range(accumulation):
            chunk = batch[k * micro : (k + 1) * micro].tolist()
            loss = self.loss(
                [cut["anchor"][i] for i in chunk],
                [cut["positive"][i] for i in chunk],
                [cut["negative"][i] for i in chunk],
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: loss is {loss.item()}")
            (loss / accumulation).backward()
            total += loss.item() / accumulation
        grad_norm = torch.nn.utils.clip_grad_norm_(params, r.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        row = {
            "step": step,
            "loss": round(total, 6),
            "lr": lr,
            "grad_norm": round(float(grad_norm), 6),
            "seconds": round(time.perf_counter() - t_step, 3),
        }
        log.info("step %d/%d: loss %.4f (lr %.2e)", step, steps, total, lr)
        return row


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent
