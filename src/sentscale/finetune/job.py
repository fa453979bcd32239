"""The workflow's ``finetune`` job: load, train, write the adapter and the training log.

A recipe with ``world_size`` N > 1 runs N processes of one process group on this node (the
Slurm job holds N GPUs; on CPU, gloo processes): :func:`~.distributed.launch` spawns them, each
loads the model on its own GPU and trains on its share of every batch; rank 0 scores the
checkpoints and writes both outputs."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import io, models, prompts
from ..context import JobContext
from ..options import EmbedOptions
from .distributed import Ranks, launch
from .model import check_mixed_precision, check_quantization, load_base
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
    log_file: str | Path | None = None,
) -> dict[str, Any]:
    """The ``finetune`` rule: train ``job["model"]`` with ``job["recipe"]``.

    ``job`` is the rule's params: model, prompt (variant dict), recipe (resolved), embed
    options (device, batch_size, preprocess), evaluate seed (of the dev subsample), registry.
    ``log_file``: the job's log, which the worker processes of a multi-process job append to.
    Bad options and a bad triplet file fail here, before any model or process starts."""
    recipe = FinetuneRecipe.from_mapping(job["recipe"], f"finetune.models.{job['model']}")
    embed = EmbedOptions.from_mapping(job["embed"], "embed")
    device = models.resolve_device(embed.device)
    check_quantization(recipe.quantization, device)
    check_mixed_precision(recipe.mixed_precision, device)
    triplets = load_triplets(triplets_path)
    log.info("%s: %d triplets (sha256 %s)", triplets.path, len(triplets), triplets.sha256[:12])
    paths = {
        "triplets_path": str(triplets_path),
        "data_dir": str(data_dir),
        "models_dir": str(models_dir),
        "out_adapter": str(out_adapter),
        "out_log": str(out_log),
        "log_file": None if log_file is None else str(log_file),
    }
    if recipe.world_size == 1:
        launch(train_rank, 1, args=(ctx, dict(job), paths))
    else:
        log.info("training in %d processes (one per GPU, or gloo on CPU)", recipe.world_size)
        # a spawned process rebuilds the context from the params (a registry does not pickle)
        launch(spawned_rank, recipe.world_size, args=(ctx.threads, ctx.name, dict(job), paths))
    return io.read_json(out_log)


def spawned_rank(ranks: Ranks, threads: int | None, name: str, job, paths) -> None:
    """A process of a multi-process job: its context from the job's params, then
    :func:`train_rank`."""
    train_rank(ranks, JobContext.from_params(job, threads=threads, name=name), job, paths)


def train_rank(ranks: Ranks, ctx: JobContext, job: Mapping[str, Any], paths: Mapping[str, Any]):
    """One process of the job (all of it when ``world_size`` is 1)."""
    if ranks.world_size > 1 and paths["log_file"] and ranks.is_main:
        _append_log(paths["log_file"])
    ctx.set_torch_threads()
    recipe = FinetuneRecipe.from_mapping(job["recipe"], f"finetune.models.{job['model']}")
    embed = EmbedOptions.from_mapping(job["embed"], "embed")
    variant = prompts.PromptVariant(**job["prompt"])
    device = models.resolve_device(embed.device)
    if ranks.world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{ranks.rank}"  # one GPU per process, as torchrun's LOCAL_RANK
    triplets = load_triplets(paths["triplets_path"])
    t_load = time.perf_counter()
    spec = ctx.registry[job["model"]]
    model, tokenizer = load_base(spec, models_dir=paths["models_dir"], recipe=recipe, device=device)
    load_s = time.perf_counter() - t_load
    trainer = Trainer(
        model,
        tokenizer,
        recipe,
        variant=variant,
        preprocess=embed.preprocess,
        eval_batch_size=embed.batch_size,
        name=job["model"],
        ranks=ranks,
        # the original decodes OPT's training sentences with transformers' clean-up on
        clean_up_decoded=spec.family == "opt",
    )
    record = {
        "model": job["model"],
        "prompt": variant.to_dict(),
        "preprocess": embed.preprocess,
        "recipe": recipe.to_dict(),
        "triplets_sha256": triplets.sha256,
    }
    result = trainer.train(
        triplets,
        data_dir=paths["data_dir"],
        out_adapter=paths["out_adapter"],
        dev_seed=job["dev_seed"],
        record=record,
    )
    if not ranks.is_main:
        return None
    summary = {
        **record,
        **result,
        "triplets_file": Path(triplets.path).name,
        "device": str(trainer.embedder.device),
        "load_s": round(load_s, 3),
        "provenance": ctx.provenance(),  # versions, host, peak memory
    }
    first, last = result["loss"][0]["loss"], result["loss"][-1]["loss"]
    best = result["best_dev_spearman"]
    log.info(
        "done: loss %.4f -> %.4f, STS-B dev %.2f -> best %.2f at step %d",
        first,
        last,
        result["dev_before"],
        best if best is not None else math.nan,
        result["best_step"] or 0,
    )
    io.write_json(paths["out_log"], summary)
    return summary


def _append_log(path: str) -> None:
    """Rank 0 of a spawned process group logs to the job's log file (spawn starts a fresh
    interpreter: the parent's handlers are not inherited)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
