#!/usr/bin/env python
"""Peak memory of an embed job: transformers' own loading vs streamed loading, side by side.

Run from the repository root (after ``bash scripts/install.sh``)::

    .venv/bin/python benchmarks/memory_benchmark.py                      # the 3 default models
    .venv/bin/python benchmarks/memory_benchmark.py --models smollm2-135m --json mem.json

Every figure comes from a fresh subprocess per (model, loader, phase), so no run inherits
another's memory: the peak is the process's high-water mark (``VmHWM`` of ``/proc/self/status``,
what ``ru_maxrss`` and the embed job's cost block report), imports included. Loaders:

* ``legacy``: ``load_causal_lm(..., stream_weights=False)``, the loading before streamed
  loading: ``AutoModelForCausalLM.from_pretrained(location, dtype=..., use_safetensors=True,
  trust_remote_code=False)`` (transformers memory-maps the safetensors file), then the tokenizer.
* ``streamed``: ``load_causal_lm(...)`` as the embed job calls it (tokenizer first, tensors read
  by blocks straight into the target dtype: ``sentscale.weights.streamed_weights``).

Phases: ``load`` (load only) and ``embed`` (load, then embed what an embed job embeds: the
first ``--sentences`` distinct STS-B test sentences, PromptEOL zero-shot, ``embed.batch_size``
32, ``embed.threads`` 2, the config's dtype, built as ``sentscale.embed.load_encoder`` does).

Per model: the weights' bytes in the target dtype (parameters, a tied matrix once), the goal
``1.3 x weights + 0.6 GB`` (issue 17), peak RSS of each phase, load seconds, and whether the
two loaders give the same weights (sha256 over every tensor of the state dict, in name order,
with its dtype and shape) and the same embeddings (bit for bit). MB and GB are 10^6 and 10^9
bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b")
LOADERS = ("legacy", "streamed")
PHASES = ("load", "embed")
GOAL_FACTOR, GOAL_EXTRA = 1.3, 0.6e9  # peak RSS <= 1.3 x weights in the target dtype + 0.6 GB


def vm_hwm_bytes() -> int:
    """This process's peak resident set size so far (what ru_maxrss reports, in bytes)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def goal_bytes(weight_bytes: int) -> float:
    return GOAL_FACTOR * weight_bytes + GOAL_EXTRA


def weight_bytes(model) -> int:
    """Bytes of the model's parameters in their loaded dtype (a tied matrix counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def weights_digest(model) -> str:
    """sha256 over the state dict: every tensor's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        flat = tensor.detach().contiguous().view(-1)
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def load_sentences(data_dir: str, limit: int) -> list[str]:
    """The first ``limit`` distinct STS-B test sentences, as an embed job lists them."""
    from sentscale import evaluation

    task = evaluation.load_scored_task("STSBenchmark", data_dir)
    return evaluation.sentences_to_encode(task)[:limit]


# --- one measurement (a fresh process) --------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    """Load (and embed) once; print one JSON line. Runs in its own process."""
    sentences = load_sentences(args.data_dir, args.sentences) if args.phase == "embed" else []
    import torch

    from sentscale.models import Registry, load_causal_lm

    torch.set_num_threads(args.threads)  # what the embed job's JobContext does (embed.threads)
    spec = Registry.load()[args.model]
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(
        spec,
        models_dir=args.models_dir,
        dtype=args.dtype,
        device="cpu",
        stream_weights=args.loader == "streamed",
    )
    load_s = time.perf_counter() - start
    out = {
        "model": args.model,
        "loader": args.loader,
        "phase": args.phase,
        "dtype": args.dtype,
        "load_s": round(load_s, 2),
        "peak_load_bytes": vm_hwm_bytes(),
        "weight_bytes": weight_bytes(model),
    }
    if args.phase == "embed":
        import numpy as np

        from sentscale.embed import Embedder

        encoder = Embedder(  # as sentscale.embed.load_encoder builds it for a zero-shot cell
            model, tokenizer, "eol", (), batch_size=args.batch_size, name=spec.name, progress=False
        )
        start = time.perf_counter()
        embeddings = encoder.encode(sentences)
        out["encode_s"] = round(time.perf_counter() - start, 2)
        out["peak_embed_bytes"] = vm_hwm_bytes()
        out["n_sentences"] = len(sentences)
        np.save(args.embeddings_out, embeddings)
    else:  # after the peak is read: hashing allocates nothing large
        out["weights_sha256"] = weights_digest(model)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_child(args: argparse.Namespace, model: str, loader: str, phase: str, npy: Path) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--model", model, "--loader", loader,
        "--phase", phase, "--dtype", args.dtype, "--sentences", str(args.sentences),
        "--batch-size", str(args.batch_size), "--threads", str(args.threads),
        "--data-dir", args.data_dir, "--models-dir", args.models_dir,
        "--embeddings-out", str(npy),
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{model} {loader} {phase}: the measuring process failed")
    return json.loads(lines[-1].removeprefix("RESULT "))


# --- the comparison ---------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> list[dict]:
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            runs = {}
            for loader in args.loaders:
                for phase in PHASES:
                    npy = Path(tmp) / f"{model}-{loader}.npy"
                    run = runs[loader, phase] = run_child(args, model, loader, phase, npy)
                    peak = run.get("peak_embed_bytes", run["peak_load_bytes"])
                    print(f"  {model} {loader} {phase}: peak {mb(peak)} MB", file=sys.stderr)
            reference = args.loaders[0]
            ref_emb = np.load(Path(tmp) / f"{model}-{reference}.npy")
            for loader in args.loaders:
                load, embed = runs[loader, "load"], runs[loader, "embed"]
                emb = np.load(Path(tmp) / f"{model}-{loader}.npy")
                goal = goal_bytes(load["weight_bytes"])
                rows.append(
                    {
                        "model": model,
                        "loader": loader,
                        "dtype": args.dtype,
                        "weight_bytes": load["weight_bytes"],
                        "goal_bytes": goal,
                        "peak_load_bytes": load["peak_load_bytes"],
                        "peak_embed_bytes": embed["peak_embed_bytes"],
                        "within_goal": embed["peak_embed_bytes"] <= goal
                        and load["peak_load_bytes"] <= goal,
                        "load_s": load["load_s"],
                        "encode_s": embed["encode_s"],
                        "n_sentences": embed["n_sentences"],
                        "weights_sha256": load["weights_sha256"],
                        "weights_identical": load["weights_sha256"]
                        == runs[reference, "load"]["weights_sha256"],
                        "embeddings_identical": bool(
                            emb.shape == ref_emb.shape and np.array_equal(emb, ref_emb)
                        ),
                    }
                )
    return rows


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    header = [
        "model", "loader", f"weights MB ({args.dtype})", "goal MB", "peak load MB",
        "peak load+embed MB", "within goal", "load s", "weights identical",
        "embeddings identical",
    ]  # fmt: skip
    body = [
        [
            r["model"], r["loader"], mb(r["weight_bytes"]), mb(r["goal_bytes"]),
            mb(r["peak_load_bytes"]), mb(r["peak_embed_bytes"]),
            "yes" if r["within_goal"] else "NO", f"{r['load_s']:.1f}",
            "yes" if r["weights_identical"] else "NO",
            "yes" if r["embeddings_identical"] else "NO",
        ]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + " |")
    n = rows[0]["n_sentences"] if rows else 0
    print(
        f"\nPeak = the process's VmHWM (imports included), one fresh process per cell; embed: "
        f"{n} distinct STS-B test sentences, PromptEOL, batch {args.batch_size}, "
        f"{args.threads} threads. Goal: {GOAL_FACTOR} x weights + {GOAL_EXTRA / 1e9} GB. "
        f"Identical: against the {args.loaders[0]} loader (state-dict sha256; embeddings bit "
        "for bit)."
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--loaders", nargs="+", choices=LOADERS, default=list(LOADERS))
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--sentences", type=int, default=500, help="distinct STS-B test sentences")
    p.add_argument("--batch-size", type=int, default=32, help="embed.batch_size")
    p.add_argument("--threads", type=int, default=2, help="torch threads (embed.threads)")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SENTSCALE_DATA_DIR", str(REPO.parent / "shared/data/senteval")),
    )
    p.add_argument("--models-dir", default=str(REPO / "resources/models"))
    # one measurement, in a fresh process (run_child)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--loader", choices=LOADERS, help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--embeddings-out", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child(args)
    rows = measure(args)
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(
        r["within_goal"] and r["weights_identical"] and r["embeddings_identical"]
        for r in rows
        if r["loader"] == "streamed"
    )
    return 0 if ok else 1  # streamed loading misses the goal or changes a value


if __name__ == "__main__":
    sys.exit(main())
