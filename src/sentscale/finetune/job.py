"""The workflow's ``finetune`` job: load, train, write the adapter and the training log."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import io, prompts
from ..context import JobContext
from ..options import EmbedOptions
from .model import load_base
from .recipe import FinetuneRecipe
from .trainer import Trainer
from .triplets import load_triplets

log = logging.getLogger(__package__)


def finetune_job(
    ctx: JobContext,
    job: Mapping[str, Any],
    *,
    triplets_path: str | Path,
    data_dir: str | Path,
    models_dir: str | Path,
    out_adapter: str | Path,
    out_log: str | Path,
) -> dict[str, Any]:
    """The ``finetune`` rule: train ``job["model"]`` with ``job["recipe"]``.

    ``job`` is the rule's params: model, prompt (variant dict), recipe (resolved), embed
    options (device, batch_size, preprocess), evaluate seed (of the dev subsample), registry."""
    ctx.set_torch_threads()
    recipe = FinetuneRecipe.from_mapping(job["recipe"], f"finetune.models.{job['model']}")
    embed = EmbedOptions.from_mapping(job["embed"], "embed")
    variant = prompts.PromptVariant(**job["prompt"])
    preprocess = embed.preprocess
    triplets = load_triplets(triplets_path)
    log.info("%s: %d triplets (sha256 %s)", triplets.path, len(triplets), triplets.sha256[:12])
    t_load = time.perf_counter()
    model, tokenizer = load_base(
        ctx.registry[job["model"]], models_dir=models_dir, recipe=recipe, device=embed.device
    )
    load_s = time.perf_counter() - t_load
    trainer = Trainer(
        model,
        tokenizer,
        recipe,
        variant=variant,
        preprocess=preprocess,
        eval_batch_size=embed.batch_size,
        name=job["model"],
    )
    record = {
        "model": job["model"],
        "prompt": variant.to_dict(),
        "preprocess": preprocess,
        "recipe": recipe.to_dict(),
        "triplets_sha256": triplets.sha256,
    }
    result = trainer.train(
        triplets,
        data_dir=data_dir,
        out_adapter=out_adapter,
        dev_seed=job["dev_seed"],
        record=record,
    )

    summary = {
        **record,
        **result,
        "triplets_file": Path(triplets.path).name,
        "device": str(trainer.embedder.device),
        "load_s": round(load_s, 3),
        "provenance": ctx.provenance(),  # versions, host, peak memory
    }
    first, last = result["loss"][0]["loss"], result["loss"][-1]["loss"]
    log.info(
        "done: loss %.4f -> %.4f, STS-B dev %.2f -> best %.2f at step %d",
        first,
        last,
        result["dev_before"],
        result["best_dev_spearman"],
        result["best_step"],
    )
    io.write_json(out_log, summary)
    return summary
