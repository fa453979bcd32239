"""Contrastive LoRA fine-tuning of a PromptEOL encoder (the paper's PromptEOL+CSE setting).

Recipe (the authors' ``ft_llm.py`` + ``train_llm.sh``, :data:`RECIPE_DEFAULTS`; every item is
mapped to the original's lines in ``docs/paper-parity.md``): LoRA r 64, alpha 16, dropout 0.05
on every linear layer except the LM head (peft's ``all-linear``); on a GPU the base model is
loaded in 4-bit NF4 with double quantisation computing in float32 (QLoRA, bitsandbytes), the
forward passes under fp16 autocast with a dynamic loss scale (``Trainer(fp16=True)``); on CPU
plain LoRA in float32 (asking for 4-bit or autocast there is a :class:`ConfigError`).

The loss is InfoNCE over cosine similarity / 0.05 (SimCSE's supervised loss) over the **whole
batch**: each of the ``batch_size`` anchors against the positives and hard negatives of every
triplet of the step, as the original's all-gather across its 2/4/8 GPUs gives it. The batch is
split over ``world_size`` processes (:mod:`.distributed`) and, within a process, over forward
passes of ``micro_batch_size`` triplets with gradient caching (:mod:`.gradcache`), so memory
never changes the loss. Training prompts are built as the original builds them
(:mod:`.batches`): each sentence tokenised, cut to ``max_length`` tokens and decoded back, the
template filled and stripped, with no evaluation-time clean-up. One epoch with its last partial
batch, AdamW (lr 5e-4, linear decay after 100 warm-up steps, gradients clipped at 1.0), seed 42.

Every ``eval_steps`` optimiser steps the adapter is scored on STS-B dev (Spearman x100, through
:func:`sentscale.evaluation.evaluate`, in the original's selection precision); the best
checkpoint is kept, ties (at two decimals) going to the later one. Before the first step the
untuned model is scored too (``dev_before``), for the record only. Outputs, both written
atomically: the best adapter directory (peft's ``adapter_config.json`` +
``adapter_model.safetensors`` + :data:`ADAPTER_RECORD`) and a training log JSON (loss and
learning rate per step, dev Spearman per checkpoint, best step, data fingerprint, timings).

A tuned model is embedded by loading its base model as usual (the embed block's dtype:
float32 in ``config/paper.yaml``, the original's test-time ``--load_kbit 16``) and applying the
adapter (:func:`apply_adapter`, ``load_encoder(..., adapter=...)``); the study names its cells
``(<model>, <prompt>, cse)`` (:data:`CSE_DEMO`).

Modules: ``recipe`` (defaults, overrides, checks, step counts), ``triplets`` (the NLI CSV),
``batches`` (rows per step and rank, training prompts), ``model`` (base model and LoRA
wrapper), ``gradcache`` and ``distributed`` (the full-batch loss), ``trainer`` (the training
loop), ``job`` (the workflow step). Adapter files themselves are :mod:`sentscale.adapters`.
"""

from ..adapters import ADAPTER_RECORD, CSE_DEMO, apply_adapter, read_adapter_record
from .batches import (
    clean_up_tokenization,
    rank_rows,
    step_rows,
    training_prompt,
    truncate_sentences,
)
from .distributed import SINGLE_PROCESS, Ranks, launch
from .recipe import (
    NLI_FOR_SIMCSE_ROWS,
    RECIPE_DEFAULTS,
    FinetuneRecipe,
    epoch_rows,
    planned_steps,
    resolve_recipe,
    runtime_scale,
)
from .triplets import TRIPLET_COLUMNS, Triplets, load_triplets

# The training side imports torch (1.5 s and ~200 MB per process); the workflow reads only the
# recipe while it builds the DAG (on a cluster: once per job), so these names are imported on
# first use (PEP 562) and `import sentscale.finetune` stays torch-free.
_TRAINING_NAMES = {
    "cached_backward": "gradcache",
    "finetune_job": "job",
    "add_lora": "model",
    "check_mixed_precision": "model",
    "check_quantization": "model",
    "load_base": "model",
    "lora_config": "model",
    "Trainer": "trainer",
    "evaluated_steps": "trainer",
    "info_nce": "trainer",
    "seed_everything": "trainer",
}


def __getattr__(name: str):
    module = _TRAINING_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = [
    "SINGLE_PROCESS",
    "ADAPTER_RECORD",
    "CSE_DEMO",
    "FinetuneRecipe",
    "NLI_FOR_SIMCSE_ROWS",
    "RECIPE_DEFAULTS",
    "TRIPLET_COLUMNS",
    "Ranks",
    "Trainer",
    "Triplets",
    "add_lora",
    "apply_adapter",
    "cached_backward",
    "check_mixed_precision",
    "clean_up_tokenization",
    "check_quantization",
    "epoch_rows",
    "evaluated_steps",
    "finetune_job",
    "info_nce",
    "launch",
    "load_base",
    "load_triplets",
    "lora_config",
    "planned_steps",
    "rank_rows",
    "read_adapter_record",
    "resolve_recipe",
    "runtime_scale",
    "seed_everything",
    "step_rows",
    "training_prompt",
    "truncate_sentences",
]
