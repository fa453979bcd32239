"""The fine-tuning recipe: the paper's defaults, a study's overrides, checks and step counts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..options import DTYPES, Options

#: Rows of nli_for_simcse.csv, for runtime estimates when the data size is not known.
NLI_FOR_SIMCSE_ROWS = 275_601


@dataclass(frozen=True)
class FinetuneRecipe(Options):
    """The paper's recipe (the defaults; the config schema repeats them, a test keeps them
    equal; ``docs/paper-parity.md`` maps each to the authors' code).

    ``batch_size``: triplets per InfoNCE loss and per optimiser step, over all processes — every
    anchor sees the positives and hard negatives of the whole batch. ``micro_batch_size``:
    triplets per forward pass (memory only, never the loss: gradient caching). ``world_size``:
    processes (GPUs) of the job, data parallel with the embeddings all-gathered as the
    original's ``torchrun`` does; ``batch_size`` must divide by it. ``dtype``: the weights'
    dtype (the 4-bit base's compute dtype with QLoRA); ``mixed_precision``: autocast of the
    forward passes (the original's ``Trainer(fp16=True)``; CUDA only)."""

    lora_r: int = 64
    lora_alpha: float = 16
    lora_dropout: float = 0.05
    temperature: float = 0.05
    max_length: int = 32
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 256
    micro_batch_size: int = 64
    world_size: int = 1
    seed: int = 42
    eval_steps: int = 50
    dev_max_items: int | None = None
    quantization: str | None = "4bit"
    dtype: str = "float32"
    mixed_precision: str | None = "fp16"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        problems = _check_recipe(dataclasses.asdict(self), "finetune")
        if problems:
            raise ConfigError("; ".join(problems))


#: The defaults as a mapping (field -> default), for messages and the schema test.
RECIPE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(FinetuneRecipe)}
_POSITIVE_INT = (
    "lora_r",
    "max_length",
    "epochs",
    "batch_size",
    "micro_batch_size",
    "world_size",
    "eval_steps",
)
_OPTIONAL_POSITIVE_INT = ("max_steps", "dev_max_items")
_NON_NEGATIVE_INT = ("warmup_steps",)
_POSITIVE_NUMBER = ("lora_alpha", "temperature", "learning_rate", "max_grad_norm")
_UNIT_INTERVAL = ("lora_dropout",)
MIXED_PRECISION = (None, "fp16", "bf16")
_CHOICES = {"quantization": (None, "4bit"), "dtype": DTYPES, "mixed_precision": MIXED_PRECISION}


# ------------------------------------------------------------------------------ the recipe


def resolve_recipe(
    block: Mapping[str, Any] | None, model: str, where: str = "finetune"
) -> FinetuneRecipe:
    """The recipe for ``model``: defaults < the block's top-level keys < ``models.<model>``.

    ``block`` is the config's ``finetune`` mapping (keys of :data:`RECIPE_DEFAULTS` plus
    ``data``, ``prompt``, ``models``). Raises :class:`ConfigError` naming every bad key."""
    block = dict(block or {})
    override = (block.get("models") or {}).get(model) or {}
    recipe = dict(RECIPE_DEFAULTS)
    problems = []
    for source, values in ((where, block), (f"{where}.models.{model}", override)):
        for key, value in values.items():
            if key in RECIPE_DEFAULTS:
                recipe[key] = value
            elif source != where or key not in ("data", "prompt", "models"):
                problems.append(f"{source}.{key}: unknown key (allowed: {sorted(RECIPE_DEFAULTS)})")
    problems += _check_recipe(recipe, f"{where} ({model})")
    if problems:
        raise ConfigError("; ".join(problems))
    return FinetuneRecipe(**recipe)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_recipe(recipe: Mapping[str, Any], where: str) -> list[str]:
    bad = []

    def fail(key: str, expected: str) -> None:
        bad.append(f"{where}.{key} must be {expected}, got {recipe[key]!r}")

    for key in _POSITIVE_INT:
        if not (_is_int(recipe[key]) and recipe[key] >= 1):
            fail(key, "a positive integer")
    for key in _OPTIONAL_POSITIVE_INT:
        if recipe[key] is not None and not (_is_int(recipe[key]) and recipe[key] >= 1):
            fail(key, "a positive integer or null")
    for key in _NON_NEGATIVE_INT:
        if not (_is_int(recipe[key]) and recipe[key] >= 0):
            fail(key, "an integer >= 0")
    for key in _POSITIVE_NUMBER:
        value = recipe[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            fail(key, "a positive number")
    for key in _UNIT_INTERVAL:
        value = recipe[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            fail(key, "a number in [0, 1)")
    if not isinstance(recipe["weight_decay"], int | float) or recipe["weight_decay"] < 0:
        fail("weight_decay", "a number >= 0")
    if not _is_int(recipe["seed"]):
        fail("seed", "an integer")
    for key, allowed in _CHOICES.items():
        if recipe[key] not in allowed:
            fail(key, f"one of {list(allowed)}")
    if not isinstance(recipe["gradient_checkpointing"], bool):
        fail("gradient_checkpointing", "true or false")
    batch, world = recipe["batch_size"], recipe["world_size"]
    if _is_int(batch) and _is_int(world) and world >= 1 and batch % world:
        bad.append(
            f"{where}: batch_size ({batch}) must be a multiple of world_size ({world}); "
            "each process embeds an equal share of every batch"
        )
    return bad


def epoch_rows(n_rows: int, world_size: int) -> int:
    """Rows of one epoch as the processes see them: padded to a multiple of ``world_size`` by
    repeating the epoch's first rows (torch's ``DistributedSampler``, the original's sampler)."""
    return -(-n_rows // world_size) * world_size


def planned_steps(n_rows: int, recipe: FinetuneRecipe) -> int:
    """Optimiser steps: ``max_steps`` if set, else ``epochs`` x batches per epoch, the last
    partial batch kept (the transformers Trainer's default: 275,601 triplets of batch 256 are
    1077 steps, not 1076)."""
    if recipe.max_steps:
        return recipe.max_steps
    return -(-epoch_rows(n_rows, recipe.world_size) // recipe.batch_size) * recipe.epochs


def runtime_scale(recipe: FinetuneRecipe, n_rows: int = NLI_FOR_SIMCSE_ROWS) -> int:
    """A fine-tuning job's runtime in embed-job runtimes (~200k sentences forward each), per
    process: three sentences per triplet, forward + backward (~3 forwards) plus the no-grad
    forward of gradient caching, the batch shared by ``world_size`` processes, plus the dev
    passes."""
    steps = planned_steps(n_rows, recipe)
    evals = steps // recipe.eval_steps + 2
    sentences = 3 * 4 * steps * recipe.batch_size / recipe.world_size
    sentences += evals * 2 * (recipe.dev_max_items or 1500)
    return max(1, math.ceil(sentences / 200_000))
