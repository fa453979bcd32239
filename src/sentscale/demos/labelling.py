"""Self-labelled candidates: a labeller causal LM writes the "one word" of sampled STS-B train
sentences (greedy decoding of the PromptEOL prompt, kept only if it is one word)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import data, io, models, prompts
from ..context import JobContext
from ..errors import DataError
from ..options import EmbedOptions
from .candidates import Candidate, write_candidates
from .guard import LABELLING_FILES, stsb_train_sentences
from .options import ATTEMPTS_PER_CANDIDATE, LABEL_PROMPT, SelfLabelled

log = logging.getLogger(__package__)


def sample_sentences(
    sentences: Sequence[str], seed: int, *, min_words: int = 3, max_words: int = 12
) -> list[str]:
    """Every usable sentence (word count in range, no double quote) in a seeded random order."""
    usable = [s for s in sentences if min_words <= len(s.split()) <= max_words and '"' not in s]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order]


_EDGE_PUNCTUATION = ".,;:!?'`*()[]"


def extract_word(generated: str) -> str | None:
    """The labeller's one word: the text before the closing ``"``, stripped of spaces and edge
    punctuation; None when there is no closing quote (answer cut off), no word, or several."""
    answer, quote, _ = generated.partition('"')
    if not quote:
        return None
    word = answer.strip().strip(_EDGE_PUNCTUATION).strip()
    if not word or any(ch.isspace() for ch in word) or not any(ch.isalpha() for ch in word):
        return None
    return word


def generate_labels(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    *,
    prime: Sequence[prompts.Demo | Mapping] = (),
    max_new_tokens: int = 8,
) -> list[str]:
    """Greedy completion of the PromptEOL prompt for each sentence (one at a time, so no
    padding enters the result), up to the closing quote or the start of a second word;
    returns the raw generated text, special tokens skipped."""
    import torch
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    class AnswerDone(StoppingCriteria):
        """Stop at the closing quote, or as soon as a second word starts (the answer is then
        rejected anyway: :func:`extract_word`), whatever the tokenizer."""

        def __init__(self, start: int):
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            texts = [tokenizer.decode(row[self.start :]) for row in input_ids]
            done = ['"' in t or any(ch.isspace() for ch in t.strip()) for t in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    variant = prompts.get_variant(LABEL_PROMPT)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for sentence in sentences:
            prompt = prompts.build_prompt(sentence, variant, prompts.as_demos(prime))
            enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=True)
            enc = {k: v.to(device) for k, v in enc.items()}
            start = enc["input_ids"].shape[1]
            ids = model.generate(
                **enc,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([AnswerDone(start)]),
            )
            out.append(tokenizer.decode(ids[0, start:], skip_special_tokens=True))
    return out


def self_label(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    *,
    n: int,
    labeller: str,
    prime: Sequence[prompts.Demo | Mapping] = (),
    max_new_tokens: int = 8,
    max_attempts: int | None = None,
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Label ``sentences`` in order until ``n`` have a one-word answer (or ``max_attempts``
    sentences were tried). Returns (candidates, a record of every attempt)."""
    max_attempts = max_attempts or n * ATTEMPTS_PER_CANDIDATE
    accepted: list[Candidate] = []
    attempts: list[dict[str, Any]] = []
    for sentence in sentences[:max_attempts]:
        if len(accepted) == n:
            break
        (raw,) = generate_labels(
            model, tokenizer, [sentence], prime=prime, max_new_tokens=max_new_tokens
        )
        word = extract_word(raw)
        attempts.append({"sentence": sentence, "generated": raw, "word": word})
        if word is not None and '"' not in sentence:
            accepted.append(Candidate(sentence, word, f"self-labelled:{labeller}"))
    return accepted, attempts


def label_candidates_job(
    ctx: JobContext,
    labeller: str,
    labelled: Mapping[str, Any] | SelfLabelled,
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_tsv: str | Path,
    out_meta: str | Path,
    embed_options: Mapping[str, Any] | EmbedOptions,
) -> dict[str, Any]:
    """The ``label_candidates`` rule: sample STS-B train sentences and let ``labeller`` write
    their word. ``labelled``: the ``self_labelled`` block; ``embed_options``: how the labeller
    is loaded (dtype, device, quantization)."""
    ctx.set_torch_threads()
    if not isinstance(labelled, SelfLabelled):
        labelled = SelfLabelled.from_mapping(labelled, "candidates.self_labelled")
    options = (
        embed_options
        if isinstance(embed_options, EmbedOptions)
        else EmbedOptions.from_mapping(embed_options, "embed")
    )
    started = time.perf_counter()
    model, tokenizer = models.load_causal_lm(
        ctx.registry[labeller],
        models_dir=models_dir,
        **options.loading(),
    )
    load_s = time.perf_counter() - started
    order = sample_sentences(
        stsb_train_sentences(data_dir),
        labelled.seed,
        min_words=labelled.min_words,
        max_words=labelled.max_words,
    )
    started = time.perf_counter()
    candidates, attempts = self_label(
        model,
        tokenizer,
        order,
        n=labelled.n,
        labeller=labeller,
        prime=labelled.prime,
        max_new_tokens=labelled.max_new_tokens,
    )
    label_s = time.perf_counter() - started
    _check_labelled(labeller, labelled, candidates, attempts, out_meta)
    write_candidates(
        out_tsv,
        candidates,
        comments=[
            "self-labelled demonstration candidates (sentscale.demos)",
            f"labeller: {labeller}",
            f"sentences: STS-B train, seed {labelled.seed}; prompt {LABEL_PROMPT!r}, "
            f"greedy, prime {[[d.sentence, d.word] for d in labelled.prime]}",
        ],
    )
    meta = _labelling_record(
        ctx, labeller, labelled, options, candidates, attempts, data_dir, load_s, label_s
    )
    io.write_json(out_meta, meta)
    return meta


def _check_labelled(labeller, labelled, candidates, attempts, out_meta) -> None:
    """DataError when no sentence got a one-word answer; a warning when fewer than asked."""
    if not candidates:
        raise DataError(
            f"labeller {labeller!r} gave no one-word answer for any of {len(attempts)} "
            f"STS-B train sentences (see {out_meta}); try another labeller or a prime demo"
        )
    if len(candidates) < labelled.n:
        log.warning(
            "labeller %s: only %d of %d requested candidates after %d attempts",
            labeller,
            len(candidates),
            labelled.n,
            len(attempts),
        )


def _labelling_record(
    ctx: JobContext,
    labeller: str,
    labelled: SelfLabelled,
    options: EmbedOptions,
    candidates: Sequence[Candidate],
    attempts: Sequence[Mapping[str, Any]],
    data_dir: str | Path,
    load_s: float,
    label_s: float,
) -> dict[str, Any]:
    """The labelling job's ``meta.json``: settings, every attempt, data fingerprint, timings."""
    return {
        "labeller": labeller,
        "settings": labelled.to_dict(),
        "prompt": prompts.prompt_metadata(
            prompts.get_variant(LABEL_PROMPT), prompts.as_demos(labelled.prime)
        ),
        "dtype": options.dtype,
        "n_requested": labelled.n,
        "n_labelled": len(candidates),
        "attempts": attempts,
        "data_files": list(LABELLING_FILES),
        "data_fingerprint": data.fingerprint(
            [Path(data_dir) / rel for rel in LABELLING_FILES], root=data_dir
        ),
        "timings": {"load_s": round(load_s, 3), "label_s": round(label_s, 3)},
        "provenance": ctx.provenance(),
    }
