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
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, io, models, prompts
from .errors import ConfigError, DataError, ModelError

log = logging.getLogger(__name__)

#: The demonstration slot of a fine-tuned cell: ``results/.../<model>/<prompt>/cse``. Like the
#: paper's settings (PromptEOL, +ICL, +CSE), ``cse`` sits where the demonstration choice does.
CSE_DEMO = "cse"
#: Columns of SimCSE's ``nli_for_simcse.csv`` (anchor, entailment, contradiction).
TRIPLET_COLUMNS = ("sent0", "sent1", "hard_neg")
#: Written into the adapter directory beside peft's files: what the adapter was trained with.
ADAPTER_RECORD = "sentscale-finetune.json"
#: Rows of nli_for_simcse.csv, for runtime estimates when the data size is not known.
NLI_FOR_SIMCSE_ROWS = 275_601

#: The paper's recipe. ``batch_size`` is the effective batch (optimiser step); the loss and
#: its in-batch negatives are computed per ``micro_batch_size`` triplets (gradient accumulation).
RECIPE_DEFAULTS: dict[str, Any] = {
    "lora_r": 64,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "temperature": 0.05,
    "max_length": 32,
    "epochs": 1,
    "max_steps": None,
    "learning_rate": 5e-4,
    "warmup_steps": 100,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "batch_size": 256,
    "micro_batch_size": 64,
    "seed": 42,
    "eval_steps": 50,
    "dev_max_items": None,
    "quantization": "4bit",
    "dtype": "bfloat16",
    "gradient_checkpointing": False,
}
_POSITIVE_INT = ("lora_r", "max_length", "epochs", "batch_size", "micro_batch_size", "eval_steps")
_OPTIONAL_POSITIVE_INT = ("max_steps", "dev_max_items")
_NON_NEGATIVE_INT = ("warmup_steps",)
_POSITIVE_NUMBER = ("lora_alpha", "temperature", "learning_rate", "max_grad_norm")
_UNIT_INTERVAL = ("lora_dropout",)
_CHOICES = {"quantization": (None, "4bit"), "dtype": models.DTYPES}


# ------------------------------------------------------------------------------ the recipe


def resolve_recipe(
    block: Mapping[str, Any] | None, model: str, where: str = "finetune"
) -> dict[str, Any]:
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
    return {key: recipe[key] for key in sorted(recipe)}


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
    batch, micro = recipe["batch_size"], recipe["micro_batch_size"]
    if _is_int(batch) and _is_int(micro) and micro >= 1 and batch % micro:
        bad.append(
            f"{where}: batch_size ({batch}) must be a multiple of micro_batch_size ({micro}); "
            "the effective batch is reached by accumulating whole micro-batches"
        )
    return bad


def planned_steps(n_rows: int, recipe: Mapping[str, Any]) -> int:
    """Optimiser steps: ``max_steps`` if set, else whole batches over ``epochs`` epochs."""
    if recipe.get("max_steps"):
        return int(recipe["max_steps"])
    return (n_rows // recipe["batch_size"]) * recipe["epochs"]


def runtime_scale(recipe: Mapping[str, Any], n_rows: int = NLI_FOR_SIMCSE_ROWS) -> int:
    """A fine-tuning job's runtime in embed-job runtimes (~200k sentences forward each):
    three sentences per triplet, forward + backward (~3 forwards), plus the dev passes."""
    steps = planned_steps(n_rows, recipe)
    evals = steps // recipe["eval_steps"] + 2
    sentences = 3 * 3 * steps * recipe["batch_size"] + evals * 2 * (recipe["dev_max_items"] or 1500)
    return max(1, math.ceil(sentences / 200_000))


# ---------------------------------------------------------------------------- the triplets


@dataclass(frozen=True)
class Triplets:
    """(anchor, positive, hard negative) sentences read from one CSV file."""

    anchor: list[str]
    positive: list[str]
    negative: list[str]
    path: str
    sha256: str

    def __len__(self) -> int:
        return len(self.anchor)


def _shown(row: Sequence[str]) -> str:
    text = ",".join(row)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def load_triplets(path: str | os.PathLike) -> Triplets:
    """Read an NLI triplet CSV (a header naming ``sent0,sent1,hard_neg``, in any order; other
    columns are ignored). A missing file, a bad header, a row with the wrong number of fields
    or an empty sentence is one :class:`DataError` naming the file, line and expectation."""
    path = Path(path)
    expected = ",".join(TRIPLET_COLUMNS)
    if not path.is_file():
        raise DataError(
            f"{path}: NLI triplet file not found (a CSV with columns {expected}, e.g. SimCSE's "
            "nli_for_simcse.csv; set finetune.data)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: expected UTF-8 text ({err.reason})") from None
    reader = csv.reader(StringIO(text, newline=""))  # quoted fields may span lines
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header line {expected}")
    header = [h.strip() for h in header]
    missing = [c for c in TRIPLET_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}, line 1: expected a header with columns {expected}; found "
            f"{_shown(header)} (missing {missing})"
        )
    index = [header.index(c) for c in TRIPLET_COLUMNS]
    columns: tuple[list[str], list[str], list[str]] = ([], [], [])
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: expected {len(header)} comma-separated fields "
                f"({','.join(header)}); found {len(row)}: {_shown(row)}"
            )
        for column, (name, i) in zip(
            columns, zip(TRIPLET_COLUMNS, index, strict=True), strict=True
        ):
            value = " ".join(row[i].split())
            if not value:
                raise DataError(
                    f"{path}, line {line}: expected a sentence in column {name!r}; found it empty"
                )
            column.append(value)
    if not columns[0]:
        raise DataError(f"{path}: no triplets after the header; expected rows of {expected}")
    return Triplets(*columns, path=str(path), sha256=hashlib.sha256(raw).hexdigest())


# ------------------------------------------------------------------------------- the loss


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


# ------------------------------------------------------------------------ model and adapter


def lora_config(recipe: Mapping[str, Any]):
    """LoRA on every linear layer except the output layer (peft's ``all-linear``)."""
    from peft import LoraConfig

    return LoraConfig(
        r=recipe["lora_r"],
        lora_alpha=recipe["lora_alpha"],
        lora_dropout=recipe["lora_dropout"],
        target_modules="all-linear",
        bias="none",
    )


def check_quantization(quantization: str | None, device: str) -> None:
    """QLoRA needs CUDA and bitsandbytes; anything else is a ConfigError before loading."""
    if quantization is None:
        return
    if not device.startswith("cuda"):
        raise ConfigError(
            f"finetune.quantization {quantization!r} (QLoRA) needs a CUDA GPU, but the device "
            f"is {device!r}; set finetune.quantization: null for plain LoRA on CPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"finetune.quantization {quantization!r} (QLoRA) needs bitsandbytes: pip install "
            "bitsandbytes (GPU only), or set finetune.quantization: null"
        )


def load_base(
    name: str, *, models_dir: str | Path, recipe: Mapping[str, Any], device: str = "auto"
):
    """``(model, tokenizer)`` loaded as the embedder loads them; 4-bit NF4 + double
    quantisation when the recipe asks for QLoRA (CUDA only)."""
    device = models.resolve_device(device)
    quantization = recipe["quantization"]
    check_quantization(quantization, device)
    options = None
    if quantization == "4bit":
        options = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    model, tokenizer = models.load_causal_lm(
        name,
        models_dir=models_dir,
        dtype=recipe["dtype"],
        device=device,
        quantization=quantization,
        quantization_options=options,
    )
    return model, tokenizer


def add_lora(model, recipe: Mapping[str, Any]):
    """Wrap ``model`` (a causal LM) in a trainable peft model; returns the PeftModel."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    checkpointing = recipe["gradient_checkpointing"]
    if recipe["quantization"] is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return get_peft_model(model, lora_config(recipe))


def apply_adapter(model, adapter: str | Path):
    """``model`` (a loaded base causal LM) with the LoRA adapter in ``adapter`` applied (not
    merged, so a 4-bit base works too); returns the causal LM, ready for the Embedder."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(
            f"{adapter}: not a LoRA adapter directory (no adapter_config.json); run the "
            "finetune rule first"
        )
    peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    base = peft_model.get_base_model()  # the causal LM, its linear layers now LoRA layers
    base.eval()
    return base


def _save_adapter(peft_model, directory: Path, record: Mapping[str, Any]) -> None:
    peft_model.save_pretrained(str(directory))
    io.write_json(directory / ADAPTER_RECORD, record)


# -------------------------------------------------------------------------------- training


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
    """The small training loop around one loaded model (see the module docstring)."""

    def __init__(
        self,
        model,
        tokenizer,
        recipe: Mapping[str, Any],
        *,
        variant: prompts.PromptVariant | str = "eol",
        preprocess: bool = True,
        eval_batch_size: int = 64,
        name: str = "model",
    ) -> None:
        from .embed import Embedder

        self.recipe = dict(recipe)
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
        return self.embedder._embed_batch(self.embedder._tokenize(prompts_))

    def loss(self, anchor: Sequence[str], positive: Sequence[str], negative: Sequence[str]):
        n = len(anchor)
        emb = self.embed([*anchor, *positive, *negative])  # one forward pass for all three
        return info_nce(emb[:n], emb[n : 2 * n], emb[2 * n :], self.recipe["temperature"])

    def dev_score(self, data_dir: str | Path, seed: int = 1111) -> float:
        """STS-B dev Spearman x100 of the current weights (reads only sts-dev.csv)."""
        from . import evaluation
        from .demos import SELECTION_TASK, load_dev

        max_items = self.recipe["dev_max_items"]
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
        dev_seed: int = 1111,
        record: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train, keep the best checkpoint on STS-B dev in ``out_adapter``; returns the log."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        r = self.recipe
        seed_everything(r["seed"])
        steps = planned_steps(len(triplets), r)
        if steps < 1:
            raise ConfigError(
                f"finetune: {len(triplets)} triplets give no optimiser step of batch_size "
                f"{r['batch_size']} (set max_steps or a smaller batch)"
            )
        rows = step_rows(len(triplets), steps, r["batch_size"], r["seed"])
        used = np.unique(rows)
        cut = {}
        for column in ("anchor", "positive", "negative"):
            texts = getattr(triplets, column)
            cut[column] = dict(
                zip(
                    used.tolist(),
                    truncate_sentences(self.tokenizer, [texts[i] for i in used], r["max_length"]),
                    strict=True,
                )
            )
        params = [p for p in self.peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=r["learning_rate"], weight_decay=r["weight_decay"])
        scheduler = get_linear_schedule_with_warmup(optimizer, r["warmup_steps"], steps)
        micro = r["micro_batch_size"]
        accumulation = r["batch_size"] // micro

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
                t_step = time.perf_counter()
                total = 0.0
                for k in range(accumulation):
                    chunk = rows[step - 1][k * micro : (k + 1) * micro].tolist()
                    loss = self.loss(
                        [cut["anchor"][i] for i in chunk],
                        [cut["positive"][i] for i in chunk],
                        [cut["negative"][i] for i in chunk],
                    )
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"step {step}: loss is {loss.item()}")
                    (loss / accumulation).backward()
                    total += loss.item() / accumulation
                grad_norm = torch.nn.utils.clip_grad_norm_(params, r["max_grad_norm"])
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(
                    {
                        "step": step,
                        "loss": round(total, 6),
                        "lr": lr,
                        "grad_norm": round(float(grad_norm), 6),
                        "seconds": round(time.perf_counter() - t_step, 3),
                    }
                )
                log.info("step %d/%d: loss %.4f (lr %.2e)", step, steps, total, lr)
                if step % r["eval_steps"] == 0 or step == steps:
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
                        _save_adapter(self.peft_model, best_dir, {**(record or {}), **best})
            assert best is not None
            io.replace_dir(best_dir, out_adapter, aside=staging / "old")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return {
            "steps": steps,
            "triplets": len(triplets),
            "triplets_used": int(len(used)),
            "accumulation": accumulation,
            "trainable_parameters": self.trainable_parameters,
            "loss": losses,
            "dev": checkpoints,
            "dev_before": dev_before,
            "best_step": best["step"],
            "best_dev_spearman": best["dev_spearman"],
            "train_s": round(time.perf_counter() - started, 3),
        }


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def finetune_model(
    job: Mapping[str, Any],
    *,
    triplets_path: str | Path,
    data_dir: str | Path,
    models_dir: str | Path,
    out_adapter: str | Path,
    out_log: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """The workflow's ``finetune`` job: train ``job["model"]`` with ``job["recipe"]``.

    ``job`` is the rule's params: model, prompt (variant dict), recipe (resolved), embed
    options (device, batch_size, preprocess), evaluate seed (of the dev subsample), registry."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    models.load_registry(job.get("registry") or {})
    recipe = resolve_recipe(job["recipe"], job["model"])
    embed = dict(job.get("embed") or {})
    variant = prompts.PromptVariant(**job["prompt"])
    preprocess = embed.get("preprocess", True)
    triplets = load_triplets(triplets_path)
    log.info("%s: %d triplets (sha256 %s)", triplets.path, len(triplets), triplets.sha256[:12])
    t_load = time.perf_counter()
    model, tokenizer = load_base(
        job["model"], models_dir=models_dir, recipe=recipe, device=embed.get("device", "auto")
    )
    load_s = time.perf_counter() - t_load
    trainer = Trainer(
        model,
        tokenizer,
        recipe,
        variant=variant,
        preprocess=preprocess,
        eval_batch_size=embed.get("batch_size", 64),
        name=job["model"],
    )
    record = {
        "model": job["model"],
        "prompt": variant.to_dict(),
        "preprocess": preprocess,
        "recipe": recipe,
        "triplets_sha256": triplets.sha256,
    }
    result = trainer.train(
        triplets,
        data_dir=data_dir,
        out_adapter=out_adapter,
        dev_seed=job.get("dev_seed", 1111),
        record=record,
    )
    from .cells import peak_rss_mb

    summary = {
        **record,
        **result,
        "triplets_file": Path(triplets.path).name,
        "device": str(trainer.embedder.device),
        "load_s": round(load_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "versions": {"sentscale": __version__, **_versions()},
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


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def read_adapter_record(adapter: str | Path) -> dict[str, Any]:
    """What an adapter directory says about its training (best step, dev score, recipe)."""
    path = Path(adapter) / ADAPTER_RECORD
    return io.read_json(path) if path.is_file() else {}
