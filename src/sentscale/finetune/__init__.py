"""Contrastive LoRA fine-tuning of a PromptEOL encoder (the paper's PromptEOL+CSE setting).

Recipe (the paper's code, :data:`RECIPE_DEFAULTS`): LoRA r 64, alpha 16, dropout 0.05 on every
linear layer except the LM head (peft's ``all-linear``); on a GPU the base model is loaded in
4-bit NF4 with double quantisation (QLoRA, bitsandbytes), on CPU it stays float32/bfloat16
(plain LoRA; asking for 4-bit there is a :class:`ConfigError`). The loss is InfoNCE over cosine
similarity / 0.05 (SimCSE's supervised loss): each anchor's positive against the positives and
hard negatives of every other triplet of its micro-batch. Triplets come from SimCSE's
``nli_for_simcse.csv`` (columns ``sent0,sent1,hard_neg``). Every sentence goes through the
PromptEOL template without demonstrations, exactly as :class:`~sentscale.embed.Embedder` embeds
it (same preprocessing, left padding, last-token pooling); sentences are cut to ``max_length``
tokens *before* the template is filled, so the prompt's ending (whose last token is pooled) is
never truncated. One epoch, AdamW (lr 5e-4, linear decay after 100 warm-up steps, gradients
clipped at 1.0 as the transformers Trainer does), effective batch 256 reached by gradient
accumulation over micro-batches of 64 (in-batch negatives live within a micro-batch), seed 42.

Every ``eval_steps`` optimiser steps (and at the last one) the adapter is scored on STS-B dev
(Spearman x100, through :func:`sentscale.evaluation.evaluate`); the best checkpoint is kept.
Before the first step the untuned model is scored too (``dev_before``), for the record only.
Outputs, both written atomically: the best adapter directory (peft's ``adapter_config.json`` +
``adapter_model.safetensors`` + :data:`ADAPTER_RECORD`) and a training log JSON (loss and
learning rate per step, dev Spearman per checkpoint, best step, data fingerprint, timings).

A tuned model is embedded by loading its base model as usual and applying the adapter
(:func:`apply_adapter`, ``load_encoder(..., adapter=...)``); the study names its cells
``(<model>, <prompt>, cse)`` (:data:`CSE_DEMO`).

Modules: ``recipe`` (defaults, overrides, checks, step counts), ``triplets`` (the NLI CSV),
``model`` (base model and LoRA wrapper), ``trainer`` (InfoNCE and the training loop), ``job``
(the workflow step). Adapter files themselves are :mod:`sentscale.adapters`.
"""

from ..adapters import ADAPTER_RECORD, CSE_DEMO, apply_adapter, read_adapter_record
from .job import finetune_job
from .model import add_lora, check_quantization, load_base, lora_config
from .recipe import (
    NLI_FOR_SIMCSE_ROWS,
    RECIPE_DEFAULTS,
    FinetuneRecipe,
    planned_steps,
    resolve_recipe,
    runtime_scale,
)
from .trainer import Trainer, info_nce, seed_everything, step_rows, truncate_sentences
from .triplets import TRIPLET_COLUMNS, Triplets, load_triplets

__all__ = [
    "ADAPTER_RECORD",
    "CSE_DEMO",
    "FinetuneRecipe",
    "NLI_FOR_SIMCSE_ROWS",
    "RECIPE_DEFAULTS",
    "TRIPLET_COLUMNS",
    "Trainer",
    "Triplets",
    "add_lora",
    "apply_adapter",
    "check_quantization",
    "finetune_job",
    "info_nce",
    "load_base",
    "load_triplets",
    "lora_config",
    "planned_steps",
    "read_adapter_record",
    "resolve_recipe",
    "runtime_scale",
    "seed_everything",
    "step_rows",
    "truncate_sentences",
]
