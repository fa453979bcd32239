"""Selection on STS-B dev: score the candidates as the demonstration, keep the best.

The model is loaded once per selection job and shared by the per-candidate
:class:`~sentscale.embed.Embedder` objects, which share the dev sentences' token ids
(:class:`~sentscale.demos.tokens.DemoTokens`). ``selection: exhaustive`` (the paper) costs
one pass over the STS-B dev sentences per candidate, plus one pass without a demonstration for
the baseline; ``selection: halving`` (:mod:`sentscale.demos.halving`) scores every candidate
on small nested dev subsets and only the survivors on the full dev set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import data, io, models, prompts
from ..context import JobContext
from ..errors import ConfigError, DataError
from ..models import ModelSpec
from ..options import SENTEVAL_SEED, EmbedOptions
from .candidates import (
    Candidate,
    dictionary_candidates,
    pool_candidates,
    read_candidates,
)
from .guard import SELECTION_FILES, SELECTION_TASK, load_dev
from .halving import halving_search, nested_subsets
from .icl_examples import read_icl_examples
from .options import SelectOptions
from .ranking import select_best, write_ranking
from .tokens import DemoTokens

log = logging.getLogger(__package__)

#: Builds the encoder for one demonstration list (the same loaded model every time).
EncoderFactory = Callable[[tuple[prompts.Demo, ...]], Callable[[list[str]], np.ndarray]]


def gather_candidates(
    select: SelectOptions,
    *,
    self_labelled_tsv: str | Path | None = None,
    labeller: str | None = None,
) -> tuple[list[Candidate], int]:
    """The pool a selection job scores: self-labelled, files, icl_examples, dictionary.

    A fetched ``icl_examples`` file is checked against its sha256 pin before it is read."""
    cands = select.candidates
    sources: list[Sequence[Candidate]] = []
    if cands.self_labelled:
        if self_labelled_tsv is None:
            raise ConfigError("self-labelled candidates are configured but no file was given")
        sources.append(read_candidates(self_labelled_tsv, f"self-labelled:{labeller}"))
    sources += [read_candidates(path) for path in cands.files]
    if cands.icl_examples is not None:
        icl = cands.icl_examples
        sources.append(read_icl_examples(icl.file, icl.sha256 if icl.fetched else None))
    if cands.dictionary:
        sources.append(dictionary_candidates())
    return pool_candidates(sources, select.max_candidates, select.seed)


def embedder_factory(
    model: Any,
    tokenizer: Any,
    variant: prompts.PromptVariant,
    *,
    name: str,
    preprocess: bool = True,
    batch_size: int = 16,
    max_tokens: int | None = None,
    tokens: DemoTokens | None = None,
    meter: dict[str, int] | None = None,
) -> EncoderFactory:
    """One :class:`~sentscale.embed.Embedder` per demonstration around one loaded model.

    ``tokens``: the search's shared token ids (None: each prompt tokenised whole). ``meter``:
    if given, gets ``prompts``, ``prompt_tokens`` and ``forward_tokens`` (tokens the model ran,
    a shared prefix once per pass) added up over every encoder made."""
    from ..embed import Embedder

    def make(demos: tuple[prompts.Demo, ...]):
        embedder = Embedder(
            model,
            tokenizer,
            variant,
            demos,
            preprocess=preprocess,
            batch_size=batch_size,
            max_tokens=max_tokens,
            name=name,
            progress=False,
            prompt_ids=tokens,
        )
        if meter is None:
            return embedder.encode

        def encode(sentences: list[str]) -> np.ndarray:
            before = embedder.forward_rows, embedder.prompt_tokens, embedder.forward_tokens
            out = embedder.encode(sentences)
            for key, start, now in zip(
                ("prompts", "prompt_tokens", "forward_tokens"),
                before,
                (embedder.forward_rows, embedder.prompt_tokens, embedder.forward_tokens),
                strict=True,
            ):
                meter[key] = meter.get(key, 0) + now - start
            return out

        return encode

    return make


def _dev_scorer(
    encoder_for: EncoderFactory,
    *,
    data_dir: str | Path,
    dev_max_items: int | None,
    seed: int,
    n_pairs: int,
):
    """(demos) -> (STS-B dev Spearman x100, seconds): one ``evaluate`` on the full dev set.
    Both strategies score the full dev set with it (halving's final round: the same numbers)."""
    from .. import evaluation

    def score(demos: tuple[prompts.Demo, ...]) -> tuple[float, float]:
        started = time.perf_counter()
        result = evaluation.evaluate(
            encoder_for(demos), [SELECTION_TASK], data_dir, max_items=dev_max_items, seed=seed
        )[SELECTION_TASK]
        if result["n"] != n_pairs:  # evaluate() must score the very subsample checked above
            raise DataError(f"selection scored {result['n']} pairs, expected {n_pairs}")
        return float(result["score"]), time.perf_counter() - started

    return score


def _baseline(score, n_pairs: int) -> dict[str, Any]:
    value, seconds = score(())
    log.info("no demonstration: STS-B dev %.2f (%.1f s)", value, seconds)
    return {"dev_spearman": value, "encode_s": round(seconds, 3), "n_pairs": n_pairs}


def score_candidates(
    encoder_for: EncoderFactory,
    candidates: Sequence[Candidate],
    *,
    data_dir: str | Path,
    dev_max_items: int | None = None,
    seed: int = SENTEVAL_SEED,
    baseline: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """STS-B dev Spearman (x100) of every candidate prepended as the demonstration.

    Returns (one row per candidate, in pool order; the no-demonstration baseline row or None).
    Only STS-B dev is loaded (checked by :func:`load_dev` before anything is encoded).
    """
    dev = load_dev(data_dir, dev_max_items, seed)
    n_pairs = len(dev.splits["dev"])
    score = _dev_scorer(
        encoder_for, data_dir=data_dir, dev_max_items=dev_max_items, seed=seed, n_pairs=n_pairs
    )
    base = _baseline(score, n_pairs) if baseline else None
    rows = []
    for i, cand in enumerate(candidates):
        value, seconds = score((cand.demo,))
        rows.append(
            {
                "candidate": i,
                "sentence": cand.sentence,
                "word": cand.word,
                "source": cand.source,
                "dev_spearman": value,
                "n_pairs": n_pairs,
                "encode_s": round(seconds, 3),
            }
        )
        log.info(
            "candidate %d/%d %r -> %r: STS-B dev %.2f (%.1f s)",
            i + 1,
            len(candidates),
            cand.sentence,
            cand.word,
            value,
            seconds,
        )
    return rows, base


def search_candidates(
    encoder_for: EncoderFactory,
    candidates: Sequence[Candidate],
    *,
    data_dir: str | Path,
    select: SelectOptions,
    baseline: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    """Score the pool with ``select.selection``: (rows in pool order, the baseline row or None,
    one summary per round: ``round``, ``pairs``, ``sentences``, ``candidates``, ``promoted``).

    ``exhaustive`` is :func:`score_candidates` (one round); ``halving`` is
    :func:`~sentscale.demos.halving.halving_search`, the baseline on the full dev set."""
    from .. import evaluation

    dev = load_dev(data_dir, select.dev_max_items, select.seed)
    n_pairs = len(dev.splits["dev"])
    n_sentences = len(evaluation.sentences_to_encode(dev))
    if select.selection == "exhaustive":
        rows, base = score_candidates(
            encoder_for,
            candidates,
            data_dir=data_dir,
            dev_max_items=select.dev_max_items,
            seed=select.seed,
            baseline=baseline,
        )
        summary = {"round": 1, "pairs": n_pairs, "sentences": n_sentences}
        return rows, base, [{**summary, "candidates": len(candidates), "promoted": 0}]
    nested_subsets(n_pairs, select.halving.pairs[:-1], select.seed)  # sizes checked before work
    score = _dev_scorer(
        encoder_for,
        data_dir=data_dir,
        dev_max_items=select.dev_max_items,
        seed=select.seed,
        n_pairs=n_pairs,
    )
    base = _baseline(score, n_pairs) if baseline else None
    rows, rounds = halving_search(
        encoder_for,
        candidates,
        dev=dev,
        halving=select.halving,
        seed=select.seed,
        score_full=score,
    )
    return rows, base, rounds


def select_demo_job(
    ctx: JobContext,
    cell: Mapping[str, Any],
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_selected: str | Path,
    out_ranking: str | Path,
    self_labelled_tsv: str | Path | None = None,
) -> dict[str, Any]:
    """Workflow step: score the candidate pool of one select cell on STS-B dev, keep the best.

    ``cell`` (the workflow's ``get_select_params``): model, prompt (variant dict), choice (demo
    choice name), select (parsed spec), labeller, embed options, registry.
    """
    from .. import evaluation

    ctx.set_torch_threads()
    select = SelectOptions.from_mapping(cell["select"])
    options = EmbedOptions.from_mapping(cell["embed"], "embed")
    variant = prompts.PromptVariant(**cell["prompt"])
    candidates, n_pooled = gather_candidates(
        select, self_labelled_tsv=self_labelled_tsv, labeller=cell["labeller"]
    )
    log.info("%d candidates (pool of %d) for %s", len(candidates), n_pooled, cell["model"])

    meter: dict[str, int] = {}
    factory, load_s = _load_factory(
        ctx.registry[cell["model"]], variant, options, models_dir, meter
    )
    started = time.perf_counter()
    rows, base, rounds = search_candidates(factory, candidates, data_dir=data_dir, select=select)
    score_s = time.perf_counter() - started
    best = select_best(rows)
    write_ranking(out_ranking, rows)

    dev = load_dev(data_dir, select.dev_max_items, select.seed)
    n_sentences = len(evaluation.sentences_to_encode(dev))
    record = _selection_record(
        ctx,
        cell,
        select,
        variant,
        options,
        candidates,
        n_pooled,
        rows,
        best,
        base,
        dev=dev,
        data_dir=data_dir,
        n_sentences=n_sentences,
        rounds=rounds,
        meter=meter,
        load_s=load_s,
        score_s=score_s,
    )
    io.write_json(out_selected, record)
    log.info(
        "chosen for %s/%s: %r -> %r (dev %.2f, no demo %s)",
        cell["model"],
        variant.name,
        best["sentence"],
        best["word"],
        best["dev_spearman"],
        f"{base['dev_spearman']:.2f}" if base else "n/a",
    )
    return record


def _load_factory(
    spec: ModelSpec,
    variant: prompts.PromptVariant,
    options: EmbedOptions,
    models_dir: str | Path,
    meter: dict[str, int] | None = None,
) -> tuple[EncoderFactory, float]:
    """The selection model, loaded once, as an encoder factory (its encoders share the dev
    sentences' token ids and add their cost to ``meter``); and its load time (s)."""
    started = time.perf_counter()
    model, tokenizer = models.load_causal_lm(
        spec,
        models_dir=models_dir,
        **options.loading(),
    )
    load_s = time.perf_counter() - started
    factory = embedder_factory(
        model,
        tokenizer,
        variant,
        name=spec.name,
        preprocess=options.preprocess,
        batch_size=options.batch_size,
        tokens=DemoTokens(),
        meter=meter,
    )
    return factory, load_s


def _selection_record(
    ctx: JobContext,
    cell: Mapping[str, Any],
    select: SelectOptions,
    variant: prompts.PromptVariant,
    options: EmbedOptions,
    candidates: Sequence[Candidate],
    n_pooled: int,
    rows: Sequence[Mapping[str, Any]],
    best: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    *,
    dev: data.TaskData,
    data_dir: str | Path,
    n_sentences: int,
    rounds: Sequence[Mapping[str, Any]],
    meter: Mapping[str, int],
    load_s: float,
    score_s: float,
) -> dict[str, Any]:
    """The selection job's ``selected.json``: the chosen demo, its gain, the spread of every
    candidate's score, provenance and cost."""
    scores = np.array([r["dev_spearman"] for r in rows], dtype=float)
    return {
        "model": cell["model"],
        "prompt": variant.name,
        "choice": cell["choice"],
        "task": SELECTION_TASK,
        "demo": {"sentence": best["sentence"], "word": best["word"]},
        "source": best["source"],
        "candidate": best["candidate"],
        "dev_spearman": best["dev_spearman"],
        "no_demo_dev_spearman": base["dev_spearman"] if base else None,
        "dev_gain": best["dev_spearman"] - base["dev_spearman"] if base else None,
        "dev_scores": {
            "min": float(np.nanmin(scores)),
            "median": float(np.nanmedian(scores)),
            "max": float(np.nanmax(scores)),
            "std": float(np.nanstd(scores)),
        },
        "n_candidates": len(candidates),
        "n_pooled": n_pooled,
        "sources": {
            s: sum(r["source"] == s for r in rows) for s in dict.fromkeys(r["source"] for r in rows)
        },
        "labeller": cell["labeller"],
        "select": select.to_dict(),
        "prompt_spec": variant.to_dict(),
        "embed": options.to_dict(),
        "data_files": list(SELECTION_FILES),
        "data_fingerprint": data.task_fingerprint(SELECTION_TASK, data_dir),
        "dev_pairs": len(dev.splits["dev"]),
        "cost": {
            # one pass over a round's dev sentences per candidate in the round (exhaustive: one
            # round, every candidate on the full dev set), plus the no-demo baseline (full)
            "selection": select.selection,
            "passes": sum(r["candidates"] for r in rounds) + (1 if base else 0),
            "dev_sentences_per_pass": n_sentences,
            "sentences_embedded": sum(r["candidates"] * r["sentences"] for r in rounds)
            + (n_sentences if base else 0),
            # what the model ran: prompts, their tokens, and the tokens computed (the shared
            # prefix, demo included, once per pass)
            "prompts_embedded": meter.get("prompts"),
            "prompt_tokens": meter.get("prompt_tokens"),
            "forward_tokens": meter.get("forward_tokens"),
            "rounds": [dict(r) for r in rounds],
            "load_s": round(load_s, 3),
            "score_s": round(score_s, 3),
            "seconds_per_candidate": round(score_s / max(1, len(rows) + bool(base)), 3),
        },
        "provenance": ctx.provenance(),
    }


def read_selected(path: str | Path) -> tuple[prompts.Demo, ...]:
    """The demonstration a selection job chose (``selected.json``), as a one-demo tuple."""
    record = io.read_json(path)
    try:
        demo = record["demo"]
        return (prompts.Demo(demo["sentence"], demo["word"]),)
    except (KeyError, TypeError):
        raise DataError(f"{path}: not a selection record (no demo sentence/word)") from None
