#!/usr/bin/env python
"""Fast-mode transfer scoring: today's sklearn lbfgs vs the preconditioned warm-started solver.

Run from the repository root::

    .venv/bin/python benchmarks/transfer_benchmark.py --max-items 1000 \\
        --cache /tmp/transfer_bench_1536.npz            # embeds once (~10 min), then scores
    .venv/bin/python benchmarks/transfer_benchmark.py --models minilm-l6 --max-items 0 \\
        --dtype float32 --cache /tmp/transfer_bench_minilm.npz   # full-size tasks, 384-d

The features are real PromptEOL embeddings of a 1536-d cell: the last-token embeddings of
qwen2.5-coder-0.5b (896-d) and gemma3-270m (640-d) in bfloat16, concatenated, for the 7 transfer
tasks (``--max-items N`` per split, the seeded stratified subsample that ``evaluate.max_items``
scores; 0 = every item). They are cached in ``--cache`` (an .npz of sentences and embeddings,
checked against the requested models, dtype, sampling and sentences), so reruns only score.

Every task is scored in one process with ``transfer.score_task(mode="fast")`` twice, once with
``fast_solver="sklearn"`` (today's algorithm: one ``LogisticRegression(lbfgs, max_iter=2000)``
per C on the raw features) and once with the default solver (``sentscale.transfer_fast``),
alternating which goes first from task to task. Per task it prints wall seconds old / new /
ratio, score old / new / difference, the chosen C, the count of fits that hit their iteration
limit and process CPU seconds; then the totals. ``--json PATH`` writes the same as JSON.
``--threads N`` limits BLAS/OpenMP threads for both (on a shared, loaded machine sklearn's
OpenMP loss with 2 threads can run 5-10x slower than with 1: compare both settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sentscale import transfer
from sentscale.data import TRANSFER_TASKS
from sentscale.evaluation import load_scored_task, sentences_to_encode
from sentscale.options import SENTEVAL_SEED

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("qwen2.5-coder-0.5b", "gemma3-270m")


def load_tasks(data_dir: Path, tasks, max_items: int | None, seed: int) -> dict:
    return {
        name: load_scored_task(name, data_dir, max_items=max_items, seed=seed) for name in tasks
    }


def all_sentences(tasks: dict) -> list[str]:
    seen: dict[str, None] = {}
    for task in tasks.values():
        for sentence in sentences_to_encode(task):
            seen.setdefault(sentence)
    return list(seen)


def embed(sentences: list[str], models, models_dir: Path, dtype: str, batch_size: int, cache):
    """PromptEOL last-token embeddings of each model, concatenated along the features. With a
    cache, each model's part is also kept on its own (``CACHE.<model>.npy``), so that an
    interrupted run resumes after the models already done."""
    from sentscale.embed import load_encoder  # the model stack only when embedding
    from sentscale.models import Registry

    registry = Registry.load()
    parts = []
    for name in models:
        part_file = Path(f"{cache}.{name}.npy") if cache else None
        if part_file and part_file.is_file():
            part = np.load(part_file)
            if len(part) == len(sentences):
                parts.append(part)
                continue
        started = time.perf_counter()
        encoder = load_encoder(
            registry[name],
            models_dir=models_dir,
            dtype=dtype,
            batch_size=batch_size,
            device="cpu",
            progress=False,
        )
        parts.append(np.asarray(encoder.encode(sentences), dtype=np.float32))
        seconds = time.perf_counter() - started
        print(
            f"embedded {len(sentences)} sentences with {name} ({dtype}) in {seconds:.0f} s "
            f"({len(sentences) / seconds:.1f}/s), {parts[-1].shape[1]} dims",
            flush=True,
        )
        del encoder
        if part_file:
            np.save(part_file, parts[-1])
    return np.concatenate(parts, axis=1)


def cached_embeddings(args, sentences: list[str]) -> np.ndarray:
    meta = {"models": list(args.models), "dtype": args.dtype, "max_items": args.max_items}
    meta["seed"] = args.seed
    if args.cache and Path(args.cache).is_file():
        with np.load(args.cache, allow_pickle=False) as archive:
            same = json.loads(str(archive["meta"])) == meta
            if same and archive["sentences"].tolist() == sentences:
                print(f"embeddings from {args.cache}", flush=True)
                return archive["embeddings"]
        print(f"{args.cache} holds other embeddings: embedding again", flush=True)
    embeddings = embed(
        sentences, args.models, args.models_dir, args.dtype, args.batch_size, args.cache
    )
    if args.cache:
        np.savez(
            args.cache,
            sentences=np.array(sentences, dtype=str),
            embeddings=embeddings,
            meta=np.array(json.dumps(meta)),
        )
    return embeddings


def score(task, lookup, solver: str) -> tuple[dict, float, float]:
    """One task scored with one solver: the result, wall seconds and process CPU seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    result = transfer.score_task(task, lookup, mode="fast", fast_solver=solver)
    return result, time.perf_counter() - started, time.process_time() - cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/shared/data/senteval"))
    parser.add_argument("--models-dir", type=Path, default=REPO / "resources" / "models")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-items", type=int, default=1000, help="per split; 0 = all items")
    parser.add_argument("--seed", type=int, default=SENTEVAL_SEED)
    parser.add_argument("--tasks", nargs="+", default=list(TRANSFER_TASKS))
    parser.add_argument("--cache", help="an .npz to read the embeddings from / write them to")
    parser.add_argument("--embed-only", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--threads", type=int, help="BLAS/OpenMP threads for both solvers (default: as set up)"
    )
    args = parser.parse_args(argv)
    args.max_items = args.max_items or None

    tasks = load_tasks(args.data_dir, args.tasks, args.max_items, args.seed)
    sentences = all_sentences(tasks)
    embeddings = cached_embeddings(args, sentences)
    if args.embed_only:
        return 0
    row = {s: i for i, s in enumerate(sentences)}

    def lookup(batch):
        return embeddings[[row[s] for s in batch]]

    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # for the whole process, both solvers alike
    threads = args.threads or os.environ.get("OMP_NUM_THREADS") or "default"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{embeddings.shape[1]}-d features ({'+'.join(args.models)}, {args.dtype}), "
        f"max_items={args.max_items}, {os.cpu_count()} CPUs (threads: {threads}, load: {load}), "
        f"{platform.processor() or platform.machine()}, Python {sys.version.split()[0]}\n",
        flush=True,
    )
    header = (
        f"{'task':<6} {'n':>6} {'old s':>8} {'new s':>8} {'ratio':>6}  "
        f"{'old':>6} {'new':>6} {'diff':>6}  {'C old':>10} {'C new':>10} "
        f"{'nc old':>6} {'nc new':>6}  {'old cpu':>8} {'new cpu':>8}"
    )
    print(header)
    rows = []
    for i, name in enumerate(args.tasks):
        order = ("sklearn", "warm") if i % 2 == 0 else ("warm", "sklearn")
        runs = {solver: score(tasks[name], lookup, solver) for solver in order}
        (old, old_s, old_cpu), (new, new_s, new_cpu) = runs["sklearn"], runs["warm"]
        entry = {
            "task": name,
            "n": old["n"],
            "old_s": old_s,
            "new_s": new_s,
            "ratio": old_s / new_s,
            "old_cpu_s": old_cpu,
            "new_cpu_s": new_cpu,
            "old_score": old["score"],
            "new_score": new["score"],
            "diff": round(new["score"] - old["score"], 2),
            "old_chosen": old["chosen_reg"],
            "new_chosen": new["chosen_reg"],
            "old_not_converged": old["not_converged_fits"],
            "new_not_converged": new["not_converged_fits"],
            "old_f1": old.get("f1"),
            "new_f1": new.get("f1"),
        }
        rows.append(entry)

        def chosen(c):
            return ",".join(f"{x:g}" for x in c) if isinstance(c, list) else f"{c:g}"

        print(
            f"{name:<6} {entry['n']:>6} {old_s:>8.1f} {new_s:>8.1f} {entry['ratio']:>6.1f}  "
            f"{old['score']:>6.2f} {new['score']:>6.2f} {entry['diff']:>+6.2f}  "
            f"{chosen(old['chosen_reg'])[:10]:>10} {chosen(new['chosen_reg'])[:10]:>10} "
            f"{entry['old_not_converged']:>6} {entry['new_not_converged']:>6}  "
            f"{old_cpu:>8.1f} {new_cpu:>8.1f}",
            flush=True,
        )
    old_total = sum(r["old_s"] for r in rows)
    new_total = sum(r["new_s"] for r in rows)
    old_cpu = sum(r["old_cpu_s"] for r in rows)
    new_cpu = sum(r["new_cpu_s"] for r in rows)
    worst = max(abs(r["diff"]) for r in rows)
    print(
        f"{'total':<6} {'':>6} {old_total:>8.1f} {new_total:>8.1f} {old_total / new_total:>6.1f}"
        f"  largest |score difference|: {worst:.2f}; CPU seconds {old_cpu:.1f} / {new_cpu:.1f} "
        f"({old_cpu / new_cpu:.1f}x)"
    )
    if args.json:
        summary = {
            "features": {"dim": int(embeddings.shape[1]), "models": list(args.models)},
            "dtype": args.dtype,
            "max_items": args.max_items,
            "tasks": rows,
            "threads": args.threads,
            "load_average": os.getloadavg(),
            "old_total_s": old_total,
            "new_total_s": new_total,
            "ratio": old_total / new_total,
            "old_cpu_s": old_cpu,
            "new_cpu_s": new_cpu,
            "largest_abs_diff": worst,
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
