#!/usr/bin/env python
"""GPU check: one command that measures and checks the embedder and the fine-tuning step on a
GPU in a few minutes, with nothing but torch, transformers and peft (no downloads).

Run from the repository root::

    python3 benchmarks/gpu_check.py --json gpu_check.json              # CUDA torch: full size
    .venv/bin/python benchmarks/gpu_check.py --tiny --json out.json    # tiny sizes (CPU, CI)

The models are OPT-1.3B and OPT-6.7B *architectures* (the published facebook/opt-1.3b and
opt-6.7b hyperparameters, written below) with random weights, built in-process directly on the
device; without CUDA (or with ``--tiny``) two tiny OPT configurations. The tokenizer is a
byte-level BPE trained in-process on the sentences (OPT's special tokens and BOS habit), the
sentences synthetic (seeded, STS-B-like lengths) unless ``--data-dir`` points at SentEval's data
(then the STS-B test sentences). Nothing under ``resources/`` (git-ignored) is read.

Parts (each one's peak memory: ``torch.cuda.max_memory_allocated``, reset between parts, or the
process's peak RSS on CPU):

1. matmul peak: the best rate of an n x n x n ``torch.matmul`` (n = 8192 on CUDA) in bfloat16,
   float16, float32 (IEEE) and TF32 (CUDA only).
2. per model and dtype, ``sentscale.embed.Embedder.encode`` (the pipeline's embedder, PromptEOL
   prompt, batch 64 as ``config/paper.yaml``): sentences/s, prompt tokens/s, achieved TFLOP/s =
   2 x N_linear x positions computed / seconds (N_linear: weights of the body's linear layers;
   the LM head is not run and embeddings are lookups; positions: what the body computed, pads
   included, the shared prompt prefix once; attention's score/value products left out), as a
   share of the bf16 matmul peak and of its own dtype's peak. fp32 runs with TF32 off (the
   pipeline's setting); "tf32" is the same fp32 weights with TF32 matmuls (CUDA only).
3. agreement: cosine of each sentence's fp16 / bf16 / tf32 embedding with its fp32 one (mean,
   min). Random weights have none of a trained OPT's activation outliers, so real fp16 agreement
   can be worse.
4. ``device_map="auto"`` loading (first model only: the 6.7B would write and read 13 GB of
   safetensors for the same answer): the bf16 model saved as sharded safetensors, loaded with
   ``from_pretrained(..., device_map="auto")``; seconds, where every parameter went, bitwise
   equality with what was saved; then the pipeline's own loader (``models.load_causal_lm``,
   which passes ``device_map="auto"`` on CUDA) and its embeddings against the in-memory model.
5. the gradient-cached LoRA step (``sentscale.finetune.Trainer``, its own ``_step``: the paper's
   LoRA r 64, alpha 16, dropout 0.05 on all linear layers, batch 256 in micro-batches of 64,
   fp16 autocast with a loss scale; float32 base weights instead of the paper's 4-bit QLoRA,
   which would need bitsandbytes; no learning-rate warm-up, whose first step has rate 0): two
   optimiser steps. Loss finite; at step 1 every lora_B gets a gradient (lora_A's are zero
   while B is zero, peft's initialisation), at step 2 every lora_A too (unless the fp16 loss
   scale skipped step 1, which is reported); no other parameter is trainable or gets one, the
   base weights unchanged. An out-of-memory halves the micro-batch and retries.

Checks with thresholds are printed at the end; the exit status is 1 if any fails (a part that
raised counts as failed). ``--time-budget`` (default 450 s) skips the remaining parts, with a
message, when the next one would not fit. ``--json PATH`` is rewritten after every part.

On a GPU machine torch must be a CUDA build, which ``scripts/install.sh``'s venv is not (it pins
the CPU wheel). Use a Python that has CUDA torch, transformers and peft (the script puts
``src/`` on ``sys.path`` when sentscale is not installed, and needs nothing else of its
dependencies but numpy, PyYAML and tqdm, which transformers brings); in the repository root::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --json gpu_check.json | tee gpu_check.log

or a venv on top of the system's CUDA torch: ``python3 -m venv --system-site-packages
.venv-gpu`` and ``.venv-gpu/bin/pip install transformers peft`` if they are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # embed_benchmark, next to this file
try:
    import sentscale  # noqa: F401
except ImportError:  # not installed (e.g. a GPU machine's system Python): use the source tree
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from embed_benchmark import PeakRss, TokenCounter, cosine_rows, linear_params  # noqa: E402

#: The published facebook/opt-1.3b and facebook/opt-6.7b config.json values.
OPT_COMMON = dict(
    vocab_size=50272,
    max_position_embeddings=2048,
    activation_function="relu",
    do_layer_norm_before=True,
    dropout=0.1,
    attention_dropout=0.0,
    pad_token_id=1,
    bos_token_id=2,
    eos_token_id=2,
)
MODELS = {
    "opt-1.3b": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=32, ffn_dim=8192),
    "opt-6.7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, ffn_dim=16384),
}
TINY_MODELS = {
    "opt-tiny-a": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256),
    "opt-tiny-b": dict(hidden_size=96, num_hidden_layers=3, num_attention_heads=4, ffn_dim=384),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Agreement with fp32 a half-precision (or TF32) run must reach.
MIN_MEAN_COS, MIN_MIN_COS = 0.99, 0.95


def _since_process_start() -> float:
    """Seconds since this process started, from /proc (imports included); 0 if unknown."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as fh:
            start = int(fh.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as fh:
            seconds = float(fh.read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return 0.0
    return seconds if 0 <= seconds < 600 else 0.0  # a sandbox's odd /proc: ignore it


_IMPORTED = time.monotonic()
_STARTUP = _since_process_start()


def elapsed() -> float:
    """Seconds since this process started (the budget's clock)."""
    return _STARTUP + time.monotonic() - _IMPORTED


# --- inputs -----------------------------------------------------------------------------------

SUBJECTS = [
    "A man", "A woman", "Two dogs", "A young girl", "The president", "Police officers",
    "A group of students", "The company", "Three children", "An old man", "The government",
    "A black cat", "The home team", "Hundreds of protesters", "A chef", "The prime minister",
    "Scientists", "A little boy", "The central bank", "Several people", "A person",
    "The committee", "Two women", "A soldier",
]  # fmt: skip
VERBS = [
    "is playing", "is cutting", "walked along", "announced", "is riding", "rejected",
    "is slicing", "are watching", "approved", "is cooking", "criticised", "is reading",
    "will discuss", "has bought", "are cleaning", "described", "is carrying", "sold",
    "is painting", "questioned", "is peeling", "reported",
]  # fmt: skip
OBJECTS = [
    "a guitar", "an onion", "the road", "a new plan", "a horse", "the proposal", "a tomato",
    "the football match", "the budget", "some noodles", "the decision", "a book", "the results",
    "a small house", "the kitchen floor", "the attack", "a heavy box", "its shares", "a fence",
    "the witnesses", "a potato", "record profits", "the interest rate", "a long letter",
]  # fmt: skip
PHRASES = [
    "in the park", "on Tuesday", "near the river", "after the meeting", "at the airport",
    "in front of a large crowd", "for the second time this year", "according to a statement",
    "with a sharp knife", "during the night", "in the capital", "under a clear blue sky",
    "on the stage", "despite strong opposition", "at a press conference", "in the kitchen",
    "by a narrow margin", "on the beach", "before the election", "with his friends",
]  # fmt: skip
JOINS = ["and", "but", "while", "because", "after", "although", "so"]


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct English-like sentences of STS-B-like lengths (STS-B test: 11.3 words on
    average, median 9, 90th percentile 20; these: 11.2, 9, 19 for n = 2048)."""
    rng = random.Random(seed)

    def clause() -> str:
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
        words += rng.sample(PHRASES, rng.choices([0, 1, 2, 3], [6, 4, 1, 0.5])[0])
        return " ".join(words)

    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        text = clause()
        for _ in range(rng.choices([0, 1, 2], [12, 3, 0.6])[0]):
            more = clause()
            text += f", {rng.choice(JOINS)} {more[0].lower()}{more[1:]}"
        text += rng.choices([".", "", "?"], [8, 2, 1])[0]
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def stsb_sentences(data_dir: str, n: int) -> list[str]:
    """The first ``n`` distinct sentences of STS-B test (s1 then s2 of each pair)."""
    from sentscale.data import load_task

    texts = list(load_task("STSBenchmark", data_dir).splits["test"].texts())
    return list(dict.fromkeys(texts))[:n]


def train_tokenizer(sentences: list[str], vocab_size: int):
    """A byte-level BPE (GPT-2's scheme) trained on the sentences and the prompt, with OPT's
    special tokens (<s> 0, <pad> 1, </s> 2, <unk> 3) and its habit of prepending </s>."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    from sentscale.prompts import build_prompt

    tok = Tokenizer(tok_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([build_prompt(s, "eol") for s in sentences], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", special_tokens=[("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="</s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )


# --- measuring --------------------------------------------------------------------------------


class Memory:
    """Peak memory of a block: CUDA allocator peak (reset at entry) and the process's RSS."""

    def __init__(self, device: torch.device):
        self.device = device
        self.result: dict[str, float] = {}

    def __enter__(self) -> Memory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        self.rss = PeakRss(0.002 if self.device.type == "cpu" else 0.05).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.rss.__exit__(*exc)
        self.result = {
            "rss_before_mb": round(self.rss.before / 2**20, 1),
            "rss_peak_mb": round(self.rss.peak / 2**20, 1),
        }
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.result["gpu_before_gb"] = round(self.before / 2**30, 2)
            self.result["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)


def fmt_mem(mem: dict[str, float]) -> str:
    if "gpu_peak_gb" in mem:
        return f"GPU {mem['gpu_peak_gb']:.1f} GB (resident before {mem['gpu_before_gb']:.1f})"
    if "rss_peak_mb" in mem:
        return f"RSS {mem['rss_peak_mb']:.0f} MB (before {mem['rss_before_mb']:.0f})"
    return "-"


@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 for CUDA matmuls on (``enabled``) or off (IEEE fp32) for the block."""
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9
        old = matmul.fp32_precision
        matmul.fp32_precision = "tf32" if enabled else "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision = old
    else:
        old = matmul.allow_tf32
        matmul.allow_tf32 = enabled
        try:
            yield
        finally:
            matmul.allow_tf32 = old


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, iters: int) -> float:
    """Best TFLOP/s of ``iters`` back-to-back n x n x n matmuls, over 3 trials."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=c)  # warm-up (kernel selection, oneDNN primitives)
    torch.matmul(a, b, out=c)
    sync(device)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        sync(device)
        best = min(best, (time.perf_counter() - t0) / iters)
    del a, b, c
    return 2 * n**3 / best / 1e12


# --- the run ----------------------------------------------------------------------------------


class Check:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, name: str, ok: bool, detail: str) -> bool:
        self.rows.append({"name": name, "ok": bool(ok), "detail": detail})
        if not ok:
            print(f"  CHECK FAILED: {name}: {detail}", flush=True)
        return bool(ok)


class Run:
    """The state of one gpu_check run: arguments, results (the JSON), checks, time budget."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args = args
        self.device = device
        self.cuda = device.type == "cuda"
        self.tiny = args.tiny or not self.cuda
        self.model_names: list[str] = []
        self.prompt_tokens = 0  # of all prompts, duplicates included
        self.check = Check()
        self.part_seconds: dict[str, tuple[float, int]] = {}  # part -> (seconds, params) seen
        self.result: dict[str, Any] = {
            "meta": {},
            "matmul_peak": {},
            "models": {},
            "checks": self.check.rows,
            "skipped": [],
        }

    # -- time budget
    def fits(self, part: str, label: str, params: int, first_guess: float) -> bool:
        """Whether ``part`` (for a model of ``params``) should fit in what is left of the
        budget: 1.5x the same part on the previous model scaled by parameters, else the guess."""
        if part in self.part_seconds:
            seconds, seen = self.part_seconds[part]
            need = 1.5 * seconds * params / seen
        else:
            need = first_guess
        left = self.args.time_budget - elapsed()
        if need <= left:
            return True
        message = f"{label}: skipped, time budget ({need:.0f} s needed, {left:.0f} s left)"
        print(f"  {message}", flush=True)
        self.result["skipped"].append(message)
        return False

    def done(self, part: str, seconds: float, params: int) -> None:
        self.part_seconds[part] = (seconds, params)

    def save(self) -> None:
        self.result["elapsed_s"] = round(elapsed(), 1)
        self.result["ok"] = all(c["ok"] for c in self.check.rows)
        if self.args.json:
            path = Path(self.args.json)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
            tmp.replace(path)

    def failed(self, where: dict, label: str, exc: BaseException) -> None:
        """A part that raised: recorded as an error and a failed check; the run goes on."""
        message = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        where["error"] = message[:2000]
        self.check(label, False, f"raised {message[:300]}")
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()


def part_matmul(run: Run) -> None:
    n = run.args.matmul_n or (8192 if run.cuda else 512)
    iters = 10 if run.cuda else 3
    print(f"== matmul peak: {n} x {n} x {n} torch.matmul, best of 3 x {iters}", flush=True)
    out = run.result["matmul_peak"]
    out["n"] = n
    variants = [("bf16", torch.bfloat16, False), ("fp16", torch.float16, False)]
    variants += [("fp32", torch.float32, False), ("tf32", torch.float32, True)]
    for label, dtype, use_tf32 in variants:
        if use_tf32 and not run.cuda:
            out[label] = {"skipped": "TF32 is a CUDA tensor-core mode"}
            continue
        try:
            with tf32(use_tf32):
                rate = matmul_tflops(run.device, dtype, n, iters)
        except Exception as exc:  # noqa: BLE001 - e.g. a CPU without fp16 matmul kernels
            out[label] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        out[label] = {"tflops": round(rate, 3)}
        run.check(f"matmul {label} rate", rate > 0, f"{rate:.3f} TFLOP/s")
        print(f"  {label}: {rate:8.3f} TFLOP/s", flush=True)
    run.save()


def build_model(name: str, sizes: dict, device: torch.device, seed: int):
    """An OPT causal LM with random weights (transformers' initialisation, std 0.02), built on
    ``device`` in float32."""
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(**OPT_COMMON, **sizes, word_embed_proj_dim=sizes["hidden_size"])
    config.name_or_path = name
    torch.manual_seed(seed)
    with torch.device(device):
        model = OPTForCausalLM(config)
    return model.eval()


def cast_copy(model, dtype: torch.dtype):
    return copy.deepcopy(model).to(dtype).eval()


def embed_timed(run: Run, model, tokenizer, sentences: list[str], name: str, label: str) -> dict:
    """Warm up, then time ``Embedder.encode`` of all sentences ``--repeats`` times (best)."""
    from sentscale.embed import Embedder

    enc = Embedder(model, tokenizer, "eol", batch_size=run.args.batch_size, progress=False)
    counter = TokenCounter(enc.body)
    try:
        enc.encode(sentences[: 2 * run.args.batch_size])  # warm-up: kernels, allocator
        sync(run.device)
        times, out = [], None
        for r in range(run.args.repeats):
            if r and run.args.time_budget - elapsed() < 2 * times[-1] + 30:
                break  # no more repeats than the budget allows
            counter.reset()
            t0 = time.perf_counter()
            out = enc.encode(sentences)
            sync(run.device)
            times.append(time.perf_counter() - t0)
        computed = counter.computed
    finally:
        counter.handle.remove()
    seconds = min(times)
    n_linear = linear_params(enc.body)
    tflops = 2 * n_linear * computed / seconds / 1e12
    peaks = run.result["matmul_peak"]
    bf16_peak = peaks.get("bf16", {}).get("tflops")
    own_peak = peaks.get(label, {}).get("tflops")
    row = {
        "dtype": label,
        "sentences": len(sentences),
        "prompt_tokens": run.prompt_tokens,
        "positions_computed": computed,
        "seconds": round(seconds, 4),
        "all_seconds": [round(t, 4) for t in times],
        "sentences_per_s": round(len(sentences) / seconds, 1),
        "tokens_per_s": round(run.prompt_tokens / seconds, 1),
        "tflops": round(tflops, 4),
        "pct_bf16_peak": round(100 * tflops / bf16_peak, 1) if bf16_peak else None,
        "pct_own_peak": round(100 * tflops / own_peak, 1) if own_peak else None,
        "batch_size": run.args.batch_size,
    }
    row["_out"] = out
    ok = row["sentences_per_s"] > 0 and out is not None and bool(np.isfinite(out).all())
    run.check(f"{name} {label} throughput", ok, f"{row['sentences_per_s']} sentences/s")
    print(
        f"  {label}: {row['sentences_per_s']:9.1f} sentences/s {row['tokens_per_s']:10.0f} "
        f"tokens/s {tflops:8.3f} TFLOP/s ({row['pct_bf16_peak']} % of bf16 peak, "
        f"{row['pct_own_peak']} % of {label} peak); runs {[round(t, 3) for t in times]} s",
        flush=True,
    )
    return row


def part_throughput(run: Run, name: str, model, tokenizer, sentences: list[str]) -> None:
    """Every dtype on copies of the fp32 model; agreement of each with fp32."""
    entry = run.result["models"][name]
    through, agree = entry["throughput"], entry["agreement"]
    params = entry["params"]
    reference = None
    plan = [("fp32", torch.float32, False), ("bf16", torch.bfloat16, False)]
    plan += [("fp16", torch.float16, False), ("tf32", torch.float32, True)]
    for label, dtype, use_tf32 in plan:
        if use_tf32 and not run.cuda:
            through[label] = {"skipped": "TF32 is a CUDA tensor-core mode"}
            continue
        if label == "fp16" and not run.cuda:
            print("  fp16 on CPU: the pipeline refuses it (models.py); run here only to keep the "
                  "code path exercised", flush=True)  # fmt: skip
        guess = 60 if run.cuda else 10
        if not run.fits(f"throughput-{label}", f"{name} {label} throughput", params, guess):
            through[label] = {"skipped": "time budget"}
            continue
        t0 = time.perf_counter()
        slot: dict[str, Any] = {}
        try:
            with Memory(run.device) as mem:
                work = model if dtype == torch.float32 else cast_copy(model, dtype)
                with tf32(use_tf32):
                    row = embed_timed(run, work, tokenizer, sentences, name, label)
                del work
            out = row.pop("_out")
            row["memory"] = mem.result
            slot.update(row)
            if label == "fp32":
                reference = out
            elif reference is not None:
                cos = cosine_rows(reference, out)
                agree[label] = {
                    "mean_cos": round(float(cos.mean()), 6),
                    "min_cos": round(float(cos.min()), 6),
                    "sentences": len(cos),
                }
                run.check(
                    f"{name} {label} vs fp32 agreement",
                    cos.mean() >= MIN_MEAN_COS and cos.min() >= MIN_MIN_COS,
                    f"mean cos {cos.mean():.6f} (>= {MIN_MEAN_COS}), "
                    f"min {cos.min():.6f} (>= {MIN_MIN_COS})",
                )
                print(f"    vs fp32: mean cos {cos.mean():.6f}, min {cos.min():.6f}", flush=True)
            print(f"    memory: {fmt_mem(mem.result)}", flush=True)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            if label == "fp16" and not run.cuda:
                slot["skipped"] = f"fp16 on CPU failed: {type(exc).__name__}: {exc}"[:300]
                print(f"  {slot['skipped']}", flush=True)
            else:
                run.failed(slot, f"{name} {label} throughput", exc)
        through[label] = slot
        run.done(f"throughput-{label}", time.perf_counter() - t0, params)
        run.save()


def part_device_map(run: Run, name: str, model, tokenizer, sentences: list[str]) -> None:
    """Save the bf16 model as sharded safetensors, load it with device_map="auto"."""
    from transformers import AutoModelForCausalLM

    entry = run.result["models"][name]
    slot = entry["device_map"]
    params = entry["params"]
    if not run.fits("device_map", f"{name} device_map load", params, 90 if run.cuda else 10):
        slot["skipped"] = "time budget"
        return
    t_part = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=run.args.tmp_dir))
    expected = "cuda:0" if run.cuda else "cpu"
    try:
        with Memory(run.device) as mem:
            folder = root / name
            source = cast_copy(model, torch.bfloat16)
            t0 = time.perf_counter()
            shard = "1GB" if run.cuda else "200KB"
            source.save_pretrained(folder, max_shard_size=shard)
            tokenizer.save_pretrained(folder)
            slot["save_s"] = round(time.perf_counter() - t0, 2)
            files = sorted(folder.glob("*.safetensors"))
            slot["shards"] = len(files)
            slot["gb_on_disk"] = round(sum(f.stat().st_size for f in files) / 1e9, 3)
            del source  # the saved tensors are re-read for comparison below

            sync(run.device)
            t0 = time.perf_counter()
            loaded = AutoModelForCausalLM.from_pretrained(
                folder, device_map="auto", dtype=torch.bfloat16
            )
            sync(run.device)
            slot["load_s"] = round(time.perf_counter() - t0, 2)
            placement: dict[str, int] = {}
            for p in loaded.parameters():
                placement[str(p.device)] = placement.get(str(p.device), 0) + p.numel()
            slot["placement_params"] = placement
            hf_map = getattr(loaded, "hf_device_map", None)
            slot["hf_device_map_devices"] = sorted({str(v) for v in (hf_map or {}).values()})
            run.check(
                f"{name} device_map placement",
                set(placement) == {expected} and sum(placement.values()) == entry["params"],
                f"{placement} (expected all {entry['params']} on {expected})",
            )
            same = equal_to_saved(loaded, folder)
            slot["equal_to_saved"] = same
            run.check(f"{name} device_map weights", same, "loaded tensors bitwise = saved")
            del loaded

            ours_line = pipeline_loader(run, name, model, tokenizer, sentences, folder, slot)
        slot["memory"] = mem.result
        print(
            f"  device_map=auto: saved {slot['shards']} shards ({slot['gb_on_disk']} GB) in "
            f"{slot['save_s']} s, loaded in {slot['load_s']} s onto {placement}; {ours_line}; "
            f"memory: {fmt_mem(mem.result)}",
            flush=True,
        )
    except Exception as exc:  # noqa: BLE001
        run.failed(slot, f"{name} device_map load", exc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    run.done("device_map", time.perf_counter() - t_part, params)
    run.save()


def pipeline_loader(run: Run, name, model, tokenizer, sentences, folder: Path, slot) -> str:
    """The pipeline's own loader on the saved folder (``models.load_causal_lm``: device_map
    "auto" on CUDA, a plain load on CPU) and its embeddings against the in-memory bf16 model;
    a failure here is its own failed check, the device_map results above stand."""
    from sentscale import models
    from sentscale.embed import Embedder

    expected = "cuda:0" if run.cuda else "cpu"
    try:
        spec = models.parse_spec(
            {"name": name, "kind": "causal-lm", "params": 1, "source": {"local": str(folder)}}
        )
        t0 = time.perf_counter()
        ours, our_tok = models.load_causal_lm(
            spec, models_dir=folder.parent, dtype="bfloat16", device=run.device.type
        )
        sync(run.device)
        slot["load_causal_lm_s"] = round(time.perf_counter() - t0, 2)
        slot["load_causal_lm_devices"] = sorted({str(p.device) for p in ours.parameters()})
        few = sentences[: min(64, len(sentences))]
        a = Embedder(ours, our_tok, progress=False).encode(few)
        del ours
        b = Embedder(cast_copy(model, torch.bfloat16), tokenizer, progress=False).encode(few)
    except Exception as exc:  # noqa: BLE001
        run.failed(slot, f"{name} load_causal_lm", exc)
        return f"load_causal_lm failed: {slot['error'][:200]}"
    cos = cosine_rows(a, b)
    slot["load_causal_lm_min_cos"] = round(float(cos.min()), 6)
    run.check(
        f"{name} load_causal_lm embeddings",
        cos.min() >= 0.9999 and slot["load_causal_lm_devices"] == [expected],
        f"min cos {cos.min():.6f} vs the in-memory bf16 model (>= 0.9999), "
        f"devices {slot['load_causal_lm_devices']}",
    )
    return f"load_causal_lm {slot['load_causal_lm_s']} s, min cos {cos.min():.6f}"


def equal_to_saved(model, folder: Path) -> bool:
    from safetensors import safe_open

    state = model.state_dict()
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                if key not in state or not torch.equal(fh.get_tensor(key), state[key].cpu()):
                    return False
    return True


def lora_block(run: Run) -> dict[str, Any]:
    """The paper's recipe (sentscale.finetune defaults) as this check runs it."""
    block: dict[str, Any] = {
        "quantization": None,  # QLoRA needs bitsandbytes: float32 base weights instead
        "mixed_precision": "fp16" if run.cuda else None,  # autocast is CUDA-only in sentscale
        "dtype": "float32",
        # The paper warms up over 100 steps, so its first step has learning rate 0 and moves
        # nothing; without warm-up step 1 moves lora_B and step 2 gives lora_A its gradients.
        "warmup_steps": 0,
    }
    if run.tiny:
        block |= {"lora_r": 8, "batch_size": 8, "micro_batch_size": 2}
    return block


def grad_snapshot(peft_model) -> dict[str, Any]:
    """Which parameters hold gradients (called just before the step's zero_grad)."""
    a_norms, b_norms, other_grads, other_trainable, finite = [], [], 0, 0, True
    b_weight = 0.0
    for pname, p in peft_model.named_parameters():
        if "lora_B" in pname:
            b_weight += float(p.detach().float().norm()) ** 2
        g = None if p.grad is None else float(p.grad.detach().float().norm())
        if g is not None and not math.isfinite(g):
            finite = False
        if "lora_A" in pname:
            a_norms.append(g or 0.0)
        elif "lora_B" in pname:
            b_norms.append(g or 0.0)
        else:
            other_trainable += bool(p.requires_grad)
            other_grads += p.grad is not None
    return {
        "lora_A": len(a_norms),
        "lora_A_nonzero": sum(x > 0 for x in a_norms),
        "lora_B": len(b_norms),
        "lora_B_nonzero": sum(x > 0 for x in b_norms),
        "lora_grad_norm": round(math.sqrt(sum(x * x for x in a_norms + b_norms)), 6),
        "lora_B_weight_norm_after_step": round(math.sqrt(b_weight), 6),
        "non_lora_trainable": other_trainable,
        "non_lora_with_grad": other_grads,
        "finite": finite,
    }


def part_lora(run: Run, name: str, model, tokenizer, sentences: list[str]) -> None:
    """Two optimiser steps of sentscale.finetune.Trainer (gradient caching) on the fp32 model."""
    from sentscale import finetune

    entry = run.result["models"][name]
    slot = entry["lora_step"]
    params = entry["params"]
    if not run.fits("lora", f"{name} LoRA step", params, 90 if run.cuda else 15):
        slot["skipped"] = "time budget"
        return
    t_part = time.perf_counter()
    try:
        with Memory(run.device) as mem:
            recipe = finetune.resolve_recipe(lora_block(run), name)
            n = recipe.batch_size
            if 3 * n > len(sentences):
                raise ValueError(f"{3 * n} sentences needed for a batch of {n} triplets")
            trainer = finetune.Trainer(model, tokenizer, recipe, name=name)
            peft_model = trainer.peft_model
            cut = {
                key: finetune.truncate_sentences(
                    tokenizer, sentences[i * n : (i + 1) * n], recipe.max_length
                )
                for i, key in enumerate(("anchor", "positive", "negative"))
            }
            base_w = next(
                p for k, p in peft_model.named_parameters() if "lora_" not in k and p.dim() == 2
            )
            base_before = base_w.detach().clone()
            slot.update(
                recipe=dataclasses.asdict(recipe),
                trainable_params=trainer.trainable_parameters,
            )
            steps = 2
            optimizer, scheduler = trainer._optimizer(steps)
            snapshots: list[dict] = []
            zero_grad = optimizer.zero_grad

            def snapshot_then_zero(set_to_none: bool = True) -> None:
                snapshots.append(grad_snapshot(peft_model))
                zero_grad(set_to_none=set_to_none)

            optimizer.zero_grad = snapshot_then_zero
            rows, retries = [], []
            for step in range(1, steps + 1):
                while True:
                    micro = trainer.recipe.micro_batch_size
                    try:
                        rows.append(
                            trainer._step(step, steps, np.arange(n), cut, optimizer, scheduler)
                        )
                        break
                    except torch.OutOfMemoryError:
                        if micro <= 1:
                            raise
                    # out of the except block: its traceback (and the graph it holds) is gone
                    zero_grad(set_to_none=True)
                    gc.collect()
                    torch.cuda.empty_cache()
                    trainer.recipe = dataclasses.replace(
                        trainer.recipe, micro_batch_size=micro // 2
                    )
                    retries.append(f"step {step}: out of memory at micro-batch {micro}")
                    print(f"  {retries[-1]}, retrying with {micro // 2}", flush=True)
            slot["oom_retries"] = retries
            slot["micro_batch_used"] = trainer.recipe.micro_batch_size
            slot["steps"] = [{**r, "grads": s} for r, s in zip(rows, snapshots, strict=True)]
            first, second = snapshots[0], snapshots[1]
            slot["base_unchanged"] = bool(torch.equal(base_before, base_w.detach()))
        slot["memory"] = mem.result
        slot["step_s"] = rows[-1]["seconds"]
        run.check(
            f"{name} LoRA loss finite",
            all(math.isfinite(r["loss"]) for r in rows),
            f"losses {[r['loss'] for r in rows]}",
        )
        run.check(
            f"{name} LoRA gradients",
            first["lora_B"] > 0
            and first["lora_B_nonzero"] == first["lora_B"]
            and first["finite"]
            and first["lora_grad_norm"] > 0,
            f"step 1: {first['lora_B_nonzero']}/{first['lora_B']} lora_B with non-zero grads, "
            f"LoRA grad norm {first['lora_grad_norm']}",
        )
        if first["lora_B_weight_norm_after_step"] > 0:  # step 1 was taken (not an fp16 skip)
            run.check(
                f"{name} LoRA step moved lora_B, then lora_A got gradients",
                second["lora_A_nonzero"] == second["lora_A"] > 0,
                f"lora_B norm after step 1 {first['lora_B_weight_norm_after_step']}; step 2: "
                f"{second['lora_A_nonzero']}/{second['lora_A']} lora_A with non-zero grads",
            )
        else:
            message = f"{name} LoRA: step 1 skipped by the fp16 loss scale (overflow)"
            print(f"  {message}; lora_A gradients not checked", flush=True)
            run.result["skipped"].append(message)
        run.check(
            f"{name} base frozen",
            all(s["non_lora_trainable"] == 0 and s["non_lora_with_grad"] == 0 for s in snapshots)
            and slot["base_unchanged"],
            f"non-LoRA params trainable/with grad: "
            f"{[(s['non_lora_trainable'], s['non_lora_with_grad']) for s in snapshots]}; "
            f"a base weight unchanged: {slot['base_unchanged']}",
        )
        print(
            f"  LoRA r {recipe.lora_r}, batch {n} triplets in micro-batches of "
            f"{slot['micro_batch_used']} ({slot['trainable_params']:,} trainable): "
            + "; ".join(
                f"step {r['step']} loss {r['loss']:.4f} {r['seconds']:.2f} s "
                f"(lora_A/B non-zero grads {s['lora_A_nonzero']}/{s['lora_A']}, "
                f"{s['lora_B_nonzero']}/{s['lora_B']})"
                for r, s in zip(rows, snapshots, strict=True)
            )
            + f"; memory: {fmt_mem(mem.result)}",
            flush=True,
        )
    except Exception as exc:  # noqa: BLE001
        run.failed(slot, f"{name} LoRA step", exc)
    run.done("lora", time.perf_counter() - t_part, params)
    run.save()


def run_model(run: Run, name: str, sizes: dict, tokenizer, sentences: list[str]) -> None:
    entry: dict[str, Any] = {
        "config": sizes,
        "throughput": {},
        "agreement": {},
        "device_map": {},
        "lora_step": {},
    }
    run.result["models"][name] = entry
    print(f"== {name}: random weights, {sizes}", flush=True)
    params = 12 * sizes["num_hidden_layers"] * sizes["hidden_size"] ** 2  # roughly, for the guard
    if not run.fits("build", f"{name} (the whole model)", params, 30 if run.cuda else 5):
        entry["skipped"] = "time budget"
        return
    t0 = time.perf_counter()
    with Memory(run.device) as mem:
        model = build_model(name, sizes, run.device, run.args.seed)
    entry["build_s"] = round(time.perf_counter() - t0, 2)
    entry["params"] = sum(p.numel() for p in model.parameters())
    entry["linear_params"] = linear_params(model.base_model)
    entry["build_memory"] = mem.result
    run.done("build", time.perf_counter() - t0, params)
    std = float(model.model.decoder.layers[0].fc1.weight.detach().float().std())
    run.check(f"{name} random init", 0.015 < std < 0.025, f"fc1 weight std {std:.4f} (0.02)")
    print(
        f"  built in {entry['build_s']} s: {entry['params']:,} parameters, "
        f"{entry['linear_params']:,} in the body's linear layers",
        flush=True,
    )
    part_throughput(run, name, model, tokenizer, sentences)
    if name == run.model_names[0]:
        part_device_map(run, name, model, tokenizer, sentences)
    else:
        entry["device_map"]["skipped"] = (
            "first model only: a second, larger save/load would measure disk speed, not placement"
        )
    part_lora(run, name, model, tokenizer, sentences)  # last: it wraps the model in LoRA layers
    del model
    gc.collect()
    if run.cuda:
        torch.cuda.empty_cache()


def print_summary(run: Run) -> None:
    r = run.result
    print("\n== summary", flush=True)
    print(
        "TFLOP/s = 2 x N_linear x positions computed / s (body linear weights; LM head not run; "
        "attention products excluded)"
    )
    print("| model | dtype | sentences/s | tokens/s | TFLOP/s | % bf16 peak | % own peak "
          "| mean cos vs fp32 | min cos | peak memory |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in r["models"].items():
        for label, row in entry["throughput"].items():
            if "sentences_per_s" not in row:
                why = row.get("skipped") or row.get("error", "")
                print(f"| {name} | {label} | {why} | | | | | | | |")
                continue
            agree = entry["agreement"].get(label, {})
            print(
                f"| {name} | {label} | {row['sentences_per_s']} | {row['tokens_per_s']:.0f} | "
                f"{row['tflops']:.3f} | {row['pct_bf16_peak']} | {row['pct_own_peak']} | "
                f"{agree.get('mean_cos', '-')} | {agree.get('min_cos', '-')} | "
                f"{fmt_mem(row.get('memory', {}))} |"
            )
    peaks = ", ".join(
        f"{k} {v['tflops']}" if "tflops" in v else f"{k} skipped"
        for k, v in r["matmul_peak"].items()
        if k != "n"
    )
    print(f"matmul peak TFLOP/s (n = {r['matmul_peak'].get('n')}): {peaks}")
    for name, entry in r["models"].items():
        dm, lora = entry["device_map"], entry["lora_step"]
        if "load_s" in dm:
            print(
                f"{name} device_map=auto: load {dm['load_s']} s ({dm['shards']} shards, "
                f"{dm['gb_on_disk']} GB), placement {dm['placement_params']}, "
                f"load_causal_lm {dm['load_causal_lm_s']} s; {fmt_mem(dm.get('memory', {}))}"
            )
        if "step_s" in lora:
            losses = [s["loss"] for s in lora["steps"]]
            print(
                f"{name} gradient-cached LoRA step: {lora['step_s']} s (step 2), losses {losses}, "
                f"micro-batch {lora['micro_batch_used']}; {fmt_mem(lora.get('memory', {}))}"
            )
    failed = [c for c in run.check.rows if not c["ok"]]
    print(f"checks: {len(run.check.rows) - len(failed)}/{len(run.check.rows)} passed")
    for c in failed:
        print(f"  FAILED {c['name']}: {c['detail']}")
    for message in r["skipped"]:
        print(f"  skipped: {message}")
    print(f"total {elapsed():.0f} s (budget {run.args.time_budget:.0f} s)", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the results here (rewritten after every part)")
    parser.add_argument("--tiny", action="store_true", help="tiny models (automatic on CPU)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cpu")
    parser.add_argument("--models", help="comma-separated subset of the model names")
    parser.add_argument("--sentences", type=int, help="default 2048 (tiny: 96)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (tiny: 16)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per dtype (best)")
    parser.add_argument("--matmul-n", type=int, help="matmul size (default 8192; CPU 512)")
    parser.add_argument("--data-dir", help="SentEval data: embed STS-B test sentences instead")
    parser.add_argument("--tmp-dir", help="where the device_map part saves its model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1 for tiny CPU runs, where "
        "more threads mostly wait on each other; else torch's default)",
    )
    parser.add_argument(
        "--time-budget", type=float, default=450, help="seconds (from process start)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import peft
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside peft
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    run = Run(args, device)
    if args.threads or (run.tiny and not run.cuda):
        torch.set_num_threads(args.threads or 1)
    table = TINY_MODELS if run.tiny else MODELS
    run.model_names = args.models.split(",") if args.models else list(table)
    unknown = [m for m in run.model_names if m not in table]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; expected some of {list(table)}")
    args.batch_size = args.batch_size or (16 if run.tiny else 64)
    n = args.sentences or (96 if run.tiny else 2048)
    if args.data_dir:
        sentences, source = stsb_sentences(args.data_dir, n), f"STS-B test ({args.data_dir})"
    else:
        sentences, source = synthetic_sentences(n, args.seed), "synthetic (seeded)"
    tokenizer = train_tokenizer(sentences, 2000 if run.tiny else 8000)
    from sentscale.prompts import build_prompt

    lengths = [len(ids) for ids in tokenizer([build_prompt(s, "eol") for s in sentences])[
        "input_ids"]]  # fmt: skip
    run.prompt_tokens = sum(lengths)
    gpu = torch.cuda.get_device_name(device) if run.cuda else None
    run.result["meta"] = {
        "device": str(device),
        "gpu": gpu,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "tiny": run.tiny,
        "models": run.model_names,
        "sentences": len(sentences),
        "sentence_source": source,
        "mean_words": round(float(np.mean([len(s.split()) for s in sentences])), 1),
        "mean_prompt_tokens": round(float(np.mean(lengths)), 1),
        "max_prompt_tokens": max(lengths),
        "tokenizer_vocab": len(tokenizer),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "time_budget_s": args.time_budget,
        "flops_formula": "2 x N_linear x positions computed / seconds; N_linear = weights of "
        "the body's linear layers (LM head not run, embeddings are lookups); positions = what "
        "the body computed (pads included, shared prompt prefix once); attention products "
        "excluded",
        "argv": sys.argv[1:] if argv is None else argv,
    }
    m = run.result["meta"]
    print(
        f"== gpu_check on {gpu or 'CPU'} ({device}), torch {torch.__version__} (CUDA "
        f"{torch.version.cuda}), transformers {transformers.__version__}, peft "
        f"{peft.__version__}; {'tiny' if run.tiny else 'full-size'} models {run.model_names}; "
        f"{m['sentences']} {source} sentences, {m['mean_words']} words and "
        f"{m['mean_prompt_tokens']} prompt tokens on average (BPE of {m['tokenizer_vocab']} "
        f"tokens trained in-process), batch {args.batch_size}; budget {args.time_budget:.0f} s",
        flush=True,
    )
    run.save()
    try:
        part_matmul(run)
    except Exception as exc:  # noqa: BLE001
        run.failed(run.result["matmul_peak"], "matmul peak", exc)
    for name in run.model_names:
        try:
            run_model(run, name, table[name], tokenizer, sentences)
        except Exception as exc:  # noqa: BLE001
            run.failed(run.result["models"].setdefault(name, {}), f"{name}", exc)
        run.save()
    print_summary(run)
    run.save()
    return 0 if run.result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
