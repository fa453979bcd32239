#!/usr/bin/env python
"""Demonstration search: the paper's exhaustive search vs ``selection: halving``, side by side.

Run from the repository root (after ``bash scripts/install.sh``)::

    .venv/bin/python benchmarks/demo_search.py --json out.json            # 2 models, full dev
    .venv/bin/python benchmarks/demo_search.py --icl-examples icl_examples.txt --max-candidates 60
    .venv/bin/python benchmarks/demo_search.py --models smollm2-135m --dev-max-items 200 \\
        --max-candidates 8 --self-labelled 0 --pairs 40 100 null      # a quick run
    .venv/bin/python benchmarks/demo_search.py --simulate cos.npz --pairs 100 300 null

``--cosines cos.npz`` keeps every candidate's full-dev pair cosines from the exhaustive search;
``--simulate cos.npz`` then replays halving settings on them over ``--seeds`` seeds in seconds
(no model: the subset scores are recomputed from the full-dev cosines, which equal a subset
pass's up to float rounding of other batch shapes) and prints how often the pick is within
0.2 of the exhaustive winner, and the share of exhaustive's pair scorings it needs.

Per model, in one process on the same loaded weights: the candidate pool (the shipped
dictionary candidates, ``--self-labelled N`` STS-B train sentences labelled by the model itself,
and the authors' ``icl_examples.txt`` if ``--icl-examples`` names a copy; pooled and capped by
``--max-candidates`` exactly as a selection job does), then the exhaustive search and the
halving search (``--pairs``/``--keep``/``--min-keep``, default: the config defaults), each with
its own token cache and meter, each including the no-demonstration baseline. Printed, and
written with ``--json``: prompts and tokens embedded (prompt tokens; tokens the model ran, the
shared prefix once per pass), wall time, the ratios, both picks and their full-dev Spearman (the
halving pick's score is the one exhaustive gave it), and the difference.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sentscale import demos, models, prompts  # noqa: E402
from sentscale.demos.options import DEFAULT_PRIME, Halving, SelectOptions  # noqa: E402
from sentscale.models import Registry  # noqa: E402

COUNTS = ("prompts", "prompt_tokens", "forward_tokens")


def parse_args(argv=None) -> argparse.Namespace:
    default = Halving()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "senteval"))
    p.add_argument("--models-dir", default=str(REPO / "resources" / "models"))
    p.add_argument("--icl-examples", help="a copy of the authors' icl_examples.txt")
    p.add_argument(
        "--icl-sample",
        type=int,
        metavar="N",
        help="a seeded sample of N of its lines (in file order), so that a small pool still "
        "holds every dictionary and self-labelled candidate",
    )
    p.add_argument("--self-labelled", type=int, default=12, metavar="N")
    p.add_argument("--no-dictionary", action="store_true")
    p.add_argument("--max-candidates", type=int, default=None)
    p.add_argument("--dev-max-items", type=int, default=None)
    p.add_argument("--seed", type=int, default=1111)
    p.add_argument(
        "--pairs",
        nargs="+",
        default=[str(n) for n in default.pairs],
        help="halving's dev pairs per round, the last 'null' (the full dev set)",
    )
    p.add_argument("--keep", type=float, default=default.keep)
    p.add_argument("--min-keep", type=int, default=default.min_keep)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch-size", type=int, default=32)
    # 1: on a loaded shared machine two OpenMP threads spin-wait for each other (measured here:
    # several times the CPU per sentence); 2 on a quiet one
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--simulate", metavar="NPZ", help="replay halving on saved cosines (no model)")
    p.add_argument("--seeds", type=int, default=200, help="seeds --simulate tries")
    p.add_argument(
        "--cosines",
        help="write every candidate's full-dev pair cosines (exhaustive search) to this .npz "
        "(with the gold scores: halving settings can then be tried offline)",
    )
    return p.parse_args(argv)


def pool(args, name: str, model, tokenizer) -> tuple[list[demos.Candidate], int, dict]:
    """The candidate pool, as a selection job pools it (self-labelled, icl_examples, dict)."""
    sources, info = [], {}
    if args.self_labelled:
        sentences = demos.sample_sentences(demos.stsb_train_sentences(args.data_dir), args.seed)
        started = time.perf_counter()
        labelled, attempts = demos.self_label(
            model, tokenizer, sentences, n=args.self_labelled, labeller=name, prime=DEFAULT_PRIME
        )
        info["self_labelled"] = {
            "accepted": len(labelled),
            "attempts": len(attempts),
            "seconds": round(time.perf_counter() - started, 1),
        }
        sources.append(labelled)
    if args.icl_examples:
        icl = demos.read_icl_examples(args.icl_examples)
        if args.icl_sample is not None and args.icl_sample < len(icl):
            icl, _ = demos.pool_candidates([icl], args.icl_sample, args.seed)
        sources.append(icl)
    if not args.no_dictionary:
        sources.append(demos.dictionary_candidates())
    cands, n_pooled = demos.pool_candidates(sources, args.max_candidates, args.seed)
    info["sources"] = {s: sum(c.source == s for c in cands) for s in {c.source for c in cands}}
    return cands, n_pooled, info


def capture_cosines(factory, dev, store: dict):
    """``factory``, whose encoders also keep the dev pair cosines of every full-dev pass."""
    from sentscale import evaluation, sts

    split = dev.splits["dev"]
    n_full = len(evaluation.sentences_to_encode(dev))

    def make(demo_list):
        encode = factory(demo_list)

        def wrapped(sentences):
            out = encode(sentences)
            if demo_list and len(sentences) == n_full:
                row = {text: i for i, text in enumerate(sentences)}
                store[demo_list[0]] = sts.pair_cosines(
                    out[[row[t] for t in split.sent1]], out[[row[t] for t in split.sent2]]
                )
            return out

        return wrapped

    return make


def run_search(args, model, tokenizer, name, cands, select: SelectOptions, store=None) -> dict:
    """One search on the loaded model, with its own token cache and meter."""
    meter: dict[str, int] = {}
    tokens = demos.DemoTokens()
    factory = demos.embedder_factory(
        model,
        tokenizer,
        prompts.get_variant("eol"),
        name=name,
        batch_size=args.batch_size,
        tokens=tokens,
        meter=meter,
    )
    if store is not None:
        dev = demos.load_dev(args.data_dir, select.dev_max_items, select.seed)
        factory = capture_cosines(factory, dev, store)
    started = time.perf_counter()
    rows, base, rounds = demos.search_candidates(
        factory, cands, data_dir=args.data_dir, select=select
    )
    wall = time.perf_counter() - started
    best = demos.select_best(rows)
    return {
        "selection": select.selection,
        **{k: meter.get(k, 0) for k in COUNTS},
        # every round's passes plus the baseline's (the full dev set, as the last round)
        "sentences": sum(r["candidates"] * r["sentences"] for r in rounds)
        + rounds[-1]["sentences"],
        "wall_s": round(wall, 1),
        "rounds": rounds,
        "token_ids": {"reused": tokens.reused, "tokenised_whole": tokens.tokenised},
        "baseline": base["dev_spearman"],
        "winner": {k: best[k] for k in ("candidate", "sentence", "word", "source", "dev_spearman")},
        "rows": rows,
    }


def compare(args, name: str) -> dict:
    spec = Registry.load()[name]
    started = time.perf_counter()
    model, tokenizer = models.load_causal_lm(
        spec, models_dir=args.models_dir, dtype=args.dtype, device="cpu"
    )
    load_s = time.perf_counter() - started
    cands, n_pooled, info = pool(args, name, model, tokenizer)
    logging.info("%s: %d candidates (pool of %d): %s", name, len(cands), n_pooled, info)
    base = {"candidates": {"dictionary": True}, "dev_max_items": args.dev_max_items}
    base["seed"] = args.seed
    pairs = [None if p in ("null", "none", "None") else int(p) for p in args.pairs]
    halving = {"pairs": pairs, "keep": args.keep, "min_keep": args.min_keep}
    registry = Registry.load()
    exhaustive = demos.parse_select("bench", base, [name], registry)
    halved = demos.parse_select("bench", {**base, "selection": "halving", "halving": halving},
                                [name], registry)  # fmt: skip
    store: dict = {}
    ex = run_search(
        args, model, tokenizer, name, cands, exhaustive, store if args.cosines else None
    )
    if args.cosines:
        import numpy as np

        dev = demos.load_dev(args.data_dir, args.dev_max_items, args.seed)
        path = Path(args.cosines)
        path = path.with_name(f"{path.stem}-{name}{path.suffix}") if len(args.models) > 1 else path
        np.savez(path, cos=np.stack([store[c.demo] for c in cands]),
                 gold=np.asarray(dev.splits["dev"].scores))  # fmt: skip
    ha = run_search(args, model, tokenizer, name, cands, halved)
    full = {r["candidate"]: r["dev_spearman"] for r in ex["rows"]}
    pick = ha["winner"]["candidate"]
    scores = sorted(full.values(), reverse=True)
    return {
        "model": name,
        "n_candidates": len(cands),
        "n_pooled": n_pooled,
        "pool": info,
        "dev_pairs": ex["rounds"][0]["pairs"],
        "load_s": round(load_s, 1),
        "exhaustive": ex,
        "halving": ha,
        "halving_options": halving,
        "ratios": {k: ha[k] / ex[k] for k in (*COUNTS, "wall_s") if ex[k]},
        # the pick's full-dev score as exhaustive measured it (halving's final round re-scored
        # it with the same function: the two must be equal)
        "halving_pick_exhaustive_score": full[pick],
        "halving_pick_rank": 1 + sum(s > full[pick] for s in scores),
        "difference": ex["winner"]["dev_spearman"] - full[pick],
        "same_pick": pick == ex["winner"]["candidate"],
    }


def table(results: list[dict]) -> str:
    lines = [
        "| model | search | candidates | prompts | prompt tokens | tokens run | wall s "
        "| pick (word) | full-dev Spearman |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key in ("exhaustive", "halving"):
            s = r[key]
            lines.append(
                f"| {r['model']} | {key} | {r['n_candidates']} | {s['prompts']:,} "
                f"| {s['prompt_tokens']:,} | {s['forward_tokens']:,} | {s['wall_s']:.0f} "
                f"| #{s['winner']['candidate']} ({s['winner']['word']}) "
                f"| {s['winner']['dev_spearman']:.2f} |"
            )
        ratio = r["ratios"]
        verdict = "same pick" if r["same_pick"] else f"exhaustive's #{r['halving_pick_rank']}"
        lines.append(
            f"| {r['model']} | halving / exhaustive | | {ratio.get('prompts', math.nan):.3f} "
            f"| {ratio.get('prompt_tokens', math.nan):.3f} "
            f"| {ratio.get('forward_tokens', math.nan):.3f} | {ratio.get('wall_s', math.nan):.3f} "
            f"| {verdict} "
            f"| {-r['difference']:+.2f} |"
        )
    return "\n".join(lines)


def simulate(args) -> dict:
    """Halving replayed on saved full-dev cosines, over ``--seeds`` subset seeds."""
    import numpy as np
    from scipy.stats import spearmanr

    from sentscale.demos import halving

    saved = np.load(args.simulate)
    cos, gold = saved["cos"], saved["gold"]
    n_cands, n_pairs = cos.shape
    full = np.array([100 * spearmanr(c, gold)[0] for c in cos])
    pairs = [None if p in ("null", "none", "None") else int(p) for p in args.pairs]
    options = Halving(pairs=tuple(pairs), keep=args.keep, min_keep=args.min_keep)
    hits, cost = 0, 0
    for seed in range(args.seeds):
        alive = list(range(n_cands))
        spent = 0
        for rows in halving.nested_subsets(n_pairs, pairs[:-1], seed):
            score = {i: spearmanr(cos[i, rows], gold[rows])[0] for i in alive}
            spent += len(alive) * len(rows)
            ranked = sorted(alive, key=lambda i: (-score[i], i))
            alive = sorted(ranked[: halving.promoted(len(alive), options)])
        spent += len(alive) * n_pairs
        pick = max(alive, key=lambda i: (full[i], -i))
        hits += full.max() - full[pick] <= 0.2
        cost += spent / (n_cands * n_pairs)
    out = {"settings": options.to_dict(), "seeds": args.seeds, "candidates": n_cands,
           "within_0.2": hits / args.seeds, "pair_scorings_ratio": cost / args.seeds}  # fmt: skip
    print(json.dumps(out))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.simulate:
        simulate(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # per-candidate progress (sentscale.demos logs each score), not each encode call
    logging.getLogger("sentscale.embed").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = []
    for name in args.models:
        results.append(compare(args, name))
        print(table(results[-1:]), flush=True)
        if args.json:  # after every model: a long run keeps what it has finished
            Path(args.json).write_text(json.dumps(_record(args, results), indent=1) + "\n")
    print()
    print(table(results))
    return 0


def _record(args, results: list[dict]) -> dict:
    return {
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": results,
    }


if __name__ == "__main__":
    raise SystemExit(main())
