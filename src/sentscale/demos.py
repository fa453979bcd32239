"""In-context demonstrations as a pipeline stage: candidate sets, selection on STS-B dev.

A demonstration is a ``(sentence, word)`` pair (:class:`sentscale.prompts.Demo`). A ``select``
demonstration choice picks, for each model and prompt variant, the candidate whose demo gives
the best STS-B **dev** Spearman, and the test cells are then embedded with that demo (the
paper's protocol). Candidates come from three config-driven sources, pooled in this order:

* ``self_labelled``: N sentences sampled (seeded) from STS-B **train**, each labelled by a
  labeller causal LM with its own "one word": greedy decoding of the PromptEOL prompt, the text
  up to the closing ``"``, kept only if it is one word (see :func:`extract_word`);
* ``files``: user TSV files, one ``sentence<TAB>word`` per line (:func:`read_candidates`);
* ``dictionary``: the shipped ``resources/dictionary_candidates.tsv``, handwritten dictionary
  definitions with their headword (the paper's second kind of candidate).

Duplicates are dropped (first kept), then ``max_candidates`` caps the pool with a seeded
sample kept in pool order. Each candidate costs one pass over the STS-B dev sentences (3000
with every pair; ``dev_max_items`` subsamples pairs for CPU studies), plus one pass without a
demonstration for the baseline. The model is loaded once per selection job and shared by the
per-candidate :class:`~sentscale.embed.Embedder` objects.

Selection reads only STS-B dev (``sts-dev.csv``) and self-labelling only STS-B train
(``sts-train.csv``); :func:`check_selection_files` refuses anything else before any file is
read, so test data cannot leak into the choice.

This module is imported by the workflow at parse time: torch, transformers, pandas and
matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import copy
import logging
import math
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, data, io, models, prompts
from .errors import ConfigError, DataError, ModelError

log = logging.getLogger(__name__)

#: The only task selection scores: STS-B dev (its TaskData holds only the dev split).
SELECTION_TASK = "STSBenchmark-dev"
#: Files (relative to the data folder) that each stage may read; nothing else.
SELECTION_FILES = data.required_files(SELECTION_TASK)
LABELLING_FILES = ("downstream/STS/STSBenchmark/sts-train.csv",)
DICTIONARY_FILE = "dictionary_candidates.tsv"
#: ``labeller: self``: every model labels its own candidates.
SELF = "self"
#: The prompt the labeller completes (PromptEOL as in the paper's code).
LABEL_PROMPT = "eol"
#: Sentences tried per requested candidate before self-labelling gives up.
ATTEMPTS_PER_CANDIDATE = 8
RANKING_COLUMNS = [
    "rank",
    "candidate",
    "dev_spearman",
    "word",
    "sentence",
    "source",
    "encode_s",
]

SELF_LABELLED_DEFAULTS: dict[str, Any] = {
    "labeller": SELF,
    "n": 8,
    "seed": 1111,
    "min_words": 3,
    "max_words": 12,
    "max_new_tokens": 8,
    # One priming demonstration (the paper's OPT-125M demo) so that small instruct checkpoints
    # answer with a word instead of echoing the sentence; [] labels with the bare prompt.
    "prime": [{"sentence": "A man is smoking.", "word": "Smoking"}],
}
SELECT_DEFAULTS: dict[str, Any] = {
    "max_candidates": None,
    "dev_max_items": None,
    "seed": 1111,
}
CANDIDATE_KEYS = ("self_labelled", "files", "dictionary")


@dataclass(frozen=True)
class Candidate:
    """A candidate demonstration and where it came from (``dictionary``, ``file:<path>``,
    ``self-labelled:<labeller>``)."""

    sentence: str
    word: str
    source: str

    @property
    def demo(self) -> prompts.Demo:
        return prompts.Demo(self.sentence, self.word)


# ----------------------------------------------------------------------------- config


def parse_select(name: str, spec: Mapping[str, Any], model_names: Sequence[str]) -> dict:
    """The ``demos.<name>.select`` block with defaults filled in; ConfigError on any problem.

    ``model_names`` are the study's causal LMs; a labeller may be one of them, any other
    registry causal LM (provisioned like the others), or ``self``.
    """
    where = f"demos.{name}.select"
    spec = dict(spec or {})
    problems = []
    unknown = sorted(set(spec) - {"candidates", *SELECT_DEFAULTS})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    out = {**SELECT_DEFAULTS, **{k: v for k, v in spec.items() if k in SELECT_DEFAULTS}}
    for key in ("max_candidates", "dev_max_items"):
        value = out[key]
        if value is not None and (not isinstance(value, int) or value < 1):
            problems.append(f"{key} must be a positive integer or null, got {value!r}")
    if not isinstance(out["seed"], int):
        problems.append(f"seed must be an integer, got {out['seed']!r}")

    raw = dict(spec.get("candidates") or {})
    unknown = sorted(set(raw) - set(CANDIDATE_KEYS))
    if unknown:
        problems.append(f"candidates: unknown keys {unknown}; expected some of {CANDIDATE_KEYS}")
    candidates: dict[str, Any] = {
        "self_labelled": None,
        "files": [str(f) for f in raw.get("files") or []],
        "dictionary": bool(raw.get("dictionary", False)),
    }
    if raw.get("self_labelled") is not None:
        labelled = {**copy.deepcopy(SELF_LABELLED_DEFAULTS), **dict(raw["self_labelled"])}
        bad = sorted(set(labelled) - set(SELF_LABELLED_DEFAULTS))
        if bad:
            problems.append(f"candidates.self_labelled: unknown keys {bad}")
        labeller = labelled["labeller"]
        if labeller != SELF:
            try:
                spec_ = models.get_spec(labeller)
            except ModelError as err:
                problems.append(f"candidates.self_labelled.labeller: {err}")
            else:
                if spec_.kind != "causal-lm":
                    problems.append(
                        f"candidates.self_labelled.labeller: {labeller!r} is a {spec_.kind}; "
                        "a labeller must be a causal LM (or 'self')"
                    )
        for key in ("n", "min_words", "max_words", "max_new_tokens"):
            if not isinstance(labelled[key], int) or labelled[key] < 1:
                problems.append(
                    f"candidates.self_labelled.{key} must be a positive integer, "
                    f"got {labelled[key]!r}"
                )
        if all(isinstance(labelled[k], int) for k in ("min_words", "max_words")) and (
            labelled["min_words"] > labelled["max_words"]
        ):
            problems.append("candidates.self_labelled: min_words is larger than max_words")
        try:
            labelled["prime"] = [d.to_dict() for d in prompts.as_demos(labelled["prime"] or [])]
        except (ConfigError, KeyError, TypeError) as err:
            problems.append(f"candidates.self_labelled.prime: {err}")
        else:
            for d in labelled["prime"]:
                why = _check_demo_text(d["sentence"], d["word"])
                if why:
                    problems.append(f"candidates.self_labelled.prime: expected {why}")
        candidates["self_labelled"] = labelled
    for path in candidates["files"]:
        if not Path(path).is_file():
            problems.append(f"candidates.files: no such candidate file {path}")
    if not (candidates["self_labelled"] or candidates["files"] or candidates["dictionary"]):
        problems.append("candidates: no source; give self_labelled, files and/or dictionary: true")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    out["candidates"] = candidates
    return out


def labeller_for(select: Mapping[str, Any], model: str) -> str | None:
    """The model that labels ``model``'s self-labelled candidates (None: no such source)."""
    labelled = select["candidates"]["self_labelled"]
    if not labelled:
        return None
    return model if labelled["labeller"] == SELF else labelled["labeller"]


def estimated_candidates(select: Mapping[str, Any]) -> int:
    """Upper bound on the candidates a selection job scores (for job resources)."""
    cands = select["candidates"]
    total = cands["self_labelled"]["n"] if cands["self_labelled"] else 0
    for path in cands["files"]:
        try:
            total += len(read_candidates(path))
        except DataError:
            pass  # the selection job reports it
    if cands["dictionary"]:
        total += len(dictionary_candidates())
    cap = select["max_candidates"]
    return min(total, cap) if cap else total


# ----------------------------------------------------------------------------- candidate files


def _check_demo_text(sentence: str, word: str) -> str | None:
    """Why ``(sentence, word)`` cannot be a demonstration, or None."""
    if not sentence:
        return "an empty sentence"
    if not word:
        return "an empty word"
    if any(ch.isspace() for ch in word):
        return f"one word, got {word!r} (no spaces; join with '-' if need be)"
    if '"' in sentence or '"' in word:
        return "no double quote (it would close the prompt's quotes; use ' instead)"
    return None


def parse_candidates(text: str, where: str, source: str) -> list[Candidate]:
    """Candidates from TSV text: ``sentence<TAB>word`` per line.

    Blank lines and lines starting with ``#`` are skipped; a first data line
    ``sentence<TAB>word`` is a header. Any other line must have exactly two tab-separated,
    non-empty fields and a one-word word, else DataError naming ``where`` and the line.
    """
    out = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if not header_seen and [c.strip().lower() for c in cols] == ["sentence", "word"]:
            header_seen = True
            continue
        header_seen = True
        shown = repr(line if len(line) <= 80 else line[:77] + "...")
        if len(cols) != 2:
            raise DataError(
                f"{where}, line {lineno}: expected 2 tab-separated columns (sentence, word), "
                f"got {len(cols)}; found {shown}"
            )
        sentence, word = cols[0].strip(), cols[1].strip()
        problem = _check_demo_text(sentence, word)
        if problem:
            raise DataError(f"{where}, line {lineno}: expected {problem}; found {shown}")
        out.append(Candidate(sentence, word, source))
    if not out:
        raise DataError(f"{where}: no candidates (expected lines 'sentence<TAB>word')")
    return out


def read_candidates(path: str | Path, source: str | None = None) -> list[Candidate]:
    """Candidates from a TSV file (see :func:`parse_candidates`); ``source`` defaults to
    ``file:<path>``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read candidate file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {lineno}: expected utf-8 text ({exc.reason})") from None
    return parse_candidates(text, str(path), source or f"file:{path}")


def write_candidates(
    path: str | Path, candidates: Iterable[Candidate], comments: Sequence[str] = ()
) -> Path:
    """Write a candidate TSV readable by :func:`read_candidates` (comments first)."""
    lines = [f"# {c}" for c in comments] + ["sentence\tword"]
    lines += [f"{c.sentence}\t{c.word}" for c in candidates]
    text = "\n".join(lines) + "\n"
    return io.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def dictionary_candidates() -> list[Candidate]:
    """The shipped dictionary-style candidates: a definition and its headword."""
    ref = resources.files("sentscale") / "resources" / DICTIONARY_FILE
    return parse_candidates(ref.read_text(encoding="utf-8"), DICTIONARY_FILE, "dictionary")


def pool_candidates(
    sources: Iterable[Sequence[Candidate]], max_candidates: int | None, seed: int
) -> tuple[list[Candidate], int]:
    """Concatenate sources, drop repeated (sentence, word) pairs (first kept), then cap with a
    seeded sample kept in pool order. Returns (candidates, size of the pool before the cap)."""
    seen: dict[tuple[str, str], Candidate] = {}
    for source in sources:
        for c in source:
            seen.setdefault((c.sentence, c.word), c)
    pool = list(seen.values())
    if not pool:
        raise DataError("no demonstration candidates: every source is empty")
    if max_candidates is None or len(pool) <= max_candidates:
        return pool, len(pool)
    keep = np.sort(np.random.default_rng(seed).choice(len(pool), max_candidates, replace=False))
    return [pool[i] for i in keep], len(pool)


def gather_candidates(
    select: Mapping[str, Any],
    *,
    self_labelled_tsv: str | Path | None = None,
    labeller: str | None = None,
) -> tuple[list[Candidate], int]:
    """The pool a selection job scores: self-labelled, then files, then dictionary."""
    cands = select["candidates"]
    sources: list[Sequence[Candidate]] = []
    if cands["self_labelled"]:
        if self_labelled_tsv is None:
            raise ConfigError("self-labelled candidates are configured but no file was given")
        sources.append(read_candidates(self_labelled_tsv, f"self-labelled:{labeller}"))
    sources += [read_candidates(path) for path in cands["files"]]
    if cands["dictionary"]:
        sources.append(dictionary_candidates())
    return pool_candidates(sources, select["max_candidates"], select["seed"])


# ----------------------------------------------------------------------------- data guard


def check_selection_files(files: Iterable[str | Path], data_dir: str | Path, allowed) -> None:
    """Refuse (DataError) any file outside ``allowed`` (paths relative to ``data_dir``)."""
    data_dir = Path(data_dir)
    allowed_paths = {(data_dir / rel).resolve() for rel in allowed}
    bad = [str(f) for f in files if Path(f).resolve() not in allowed_paths]
    if bad:
        raise DataError(
            f"demonstration selection may read only {list(allowed)} under {data_dir}; refusing "
            f"{bad} (test data must never inform the choice)"
        )


def load_dev(data_dir: str | Path, max_items: int | None, seed: int) -> data.TaskData:
    """STS-B dev as selection scores it (a seeded pair subsample if ``max_items``)."""
    from . import evaluation

    check_selection_files(
        [Path(data_dir) / rel for rel in data.required_files(SELECTION_TASK)],
        data_dir,
        SELECTION_FILES,
    )
    task = evaluation.load_scored_task(SELECTION_TASK, data_dir, max_items=max_items, seed=seed)
    check_selection_files(task.files, data_dir, SELECTION_FILES)
    if set(task.splits) != {"dev"}:
        raise DataError(f"selection task has splits {list(task.splits)}; expected only 'dev'")
    return task


def stsb_train_sentences(data_dir: str | Path) -> list[str]:
    """Distinct STS-B train sentences (s1, s2 of each line, file order); reads only train."""
    (rel,) = LABELLING_FILES
    path = Path(data_dir) / rel
    check_selection_files([path], data_dir, LABELLING_FILES)
    train = data._SPECS["STSBenchmark"].load(path)  # the STS-B reader, on the train file alone
    return list(dict.fromkeys(train.texts()))


# ----------------------------------------------------------------------------- self-labelling


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
    labeller: str,
    labelled: Mapping[str, Any],
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_tsv: str | Path,
    out_meta: str | Path,
    embed_options: Mapping[str, Any] | None = None,
    registry: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Workflow step: sample STS-B train sentences and let ``labeller`` write their word."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    models.load_registry(dict(registry or {}))
    options = dict(embed_options or {})
    started = time.perf_counter()
    model, tokenizer = models.load_causal_lm(
        labeller,
        models_dir=models_dir,
        dtype=options.get("dtype", "float32"),
        device=options.get("device", "auto"),
        quantization=options.get("quantization"),
    )
    load_s = time.perf_counter() - started
    order = sample_sentences(
        stsb_train_sentences(data_dir),
        labelled["seed"],
        min_words=labelled["min_words"],
        max_words=labelled["max_words"],
    )
    started = time.perf_counter()
    candidates, attempts = self_label(
        model,
        tokenizer,
        order,
        n=labelled["n"],
        labeller=labeller,
        prime=labelled["prime"],
        max_new_tokens=labelled["max_new_tokens"],
    )
    label_s = time.perf_counter() - started
    if not candidates:
        raise DataError(
            f"labeller {labeller!r} gave no one-word answer for any of {len(attempts)} "
            f"STS-B train sentences (see {out_meta}); try another labeller or a prime demo"
        )
    if len(candidates) < labelled["n"]:
        log.warning(
            "labeller %s: only %d of %d requested candidates after %d attempts",
            labeller,
            len(candidates),
            labelled["n"],
            len(attempts),
        )
    write_candidates(
        out_tsv,
        candidates,
        comments=[
            "self-labelled demonstration candidates (sentscale.demos)",
            f"labeller: {labeller}",
            f"sentences: STS-B train, seed {labelled['seed']}; prompt {LABEL_PROMPT!r}, "
            f"greedy, prime {[[d['sentence'], d['word']] for d in labelled['prime']]}",
        ],
    )
    meta = {
        "labeller": labeller,
        "settings": dict(labelled),
        "prompt": prompts.prompt_metadata(
            prompts.get_variant(LABEL_PROMPT), prompts.as_demos(labelled["prime"])
        ),
        "dtype": options.get("dtype", "float32"),
        "n_requested": labelled["n"],
        "n_labelled": len(candidates),
        "attempts": attempts,
        "data_files": list(LABELLING_FILES),
        "data_fingerprint": data.fingerprint(
            [Path(data_dir) / rel for rel in LABELLING_FILES], root=data_dir
        ),
        "timings": {"load_s": round(load_s, 3), "label_s": round(label_s, 3)},
        "sentscale_version": __version__,
        "host": platform.node(),
    }
    io.write_json(out_meta, meta)
    return meta


# ----------------------------------------------------------------------------- selection

#: Builds the encoder for one demonstration list (the same loaded model every time).
EncoderFactory = Callable[[tuple[prompts.Demo, ...]], Callable[[list[str]], np.ndarray]]


def embedder_factory(
    model: Any,
    tokenizer: Any,
    variant: prompts.PromptVariant,
    *,
    name: str,
    preprocess: bool = True,
    batch_size: int = 16,
    max_tokens: int | None = None,
) -> EncoderFactory:
    """One :class:`~sentscale.embed.Embedder` per demonstration around one loaded model."""
    from .embed import Embedder

    def make(demos: tuple[prompts.Demo, ...]):
        return Embedder(
            model,
            tokenizer,
            variant,
            demos,
            preprocess=preprocess,
            batch_size=batch_size,
            max_tokens=max_tokens,
            name=name,
            progress=False,
        ).encode

    return make


def score_candidates(
    encoder_for: EncoderFactory,
    candidates: Sequence[Candidate],
    *,
    data_dir: str | Path,
    dev_max_items: int | None = None,
    seed: int = 1111,
    baseline: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """STS-B dev Spearman (x100) of every candidate prepended as the demonstration.

    Returns (one row per candidate, in pool order; the no-demonstration baseline row or None).
    Only STS-B dev is loaded (checked by :func:`load_dev` before anything is encoded).
    """
    from . import evaluation

    dev = load_dev(data_dir, dev_max_items, seed)
    n_pairs = len(dev.splits["dev"])

    def score(demos: tuple[prompts.Demo, ...]) -> tuple[float, float]:
        started = time.perf_counter()
        result = evaluation.evaluate(
            encoder_for(demos), [SELECTION_TASK], data_dir, max_items=dev_max_items, seed=seed
        )[SELECTION_TASK]
        if result["n"] != n_pairs:  # evaluate() must score the very subsample checked above
            raise DataError(f"selection scored {result['n']} pairs, expected {n_pairs}")
        return float(result["score"]), time.perf_counter() - started

    base = None
    if baseline:
        value, seconds = score(())
        base = {"dev_spearman": value, "encode_s": round(seconds, 3), "n_pairs": n_pairs}
        log.info("no demonstration: STS-B dev %.2f (%.1f s)", value, seconds)
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


def _sort_key(row: Mapping[str, Any]) -> tuple[float, int]:
    value = row["dev_spearman"]
    finite = value is not None and math.isfinite(value)
    return (-value if finite else math.inf, row["candidate"])


def rank(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows best first (highest dev Spearman; ties and NaN: pool order, NaN last), ranked 1..n."""
    ordered = sorted((dict(r) for r in rows), key=_sort_key)
    for i, row in enumerate(ordered, start=1):
        row["rank"] = i
    return ordered


def select_best(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The row with the highest dev Spearman; ties go to the first in pool order (lowest
    ``candidate``). NaN never wins; ValueError when no row has a finite score."""
    finite = [r for r in rows if r["dev_spearman"] is not None and math.isfinite(r["dev_spearman"])]
    if not finite:
        raise ValueError(f"no candidate has a finite dev score (of {len(rows)})")
    return dict(min(finite, key=_sort_key))


def write_ranking(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """The ranking as TSV (best first), columns :data:`RANKING_COLUMNS`."""
    import pandas as pd

    frame = pd.DataFrame(rank(rows), columns=RANKING_COLUMNS)
    text = frame.to_csv(sep="\t", index=False, float_format="%.4f")
    return io.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_ranking(path: str | Path):
    """A ranking TSV as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["nan", "NaN"])


def select_demo_job(
    cell: Mapping[str, Any],
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_selected: str | Path,
    out_ranking: str | Path,
    self_labelled_tsv: str | Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Workflow step: score the candidate pool of one select cell on STS-B dev, keep the best.

    ``cell`` (the workflow's ``select_params``): model, prompt (variant dict), choice (demo
    choice name), select (parsed spec), labeller, embed options, registry.
    """
    from . import evaluation

    if threads:
        import torch

        torch.set_num_threads(threads)
    models.load_registry(dict(cell.get("registry") or {}))
    select = cell["select"]
    options = dict(cell.get("embed") or {})
    variant = prompts.PromptVariant(**cell["prompt"])
    candidates, n_pooled = gather_candidates(
        select, self_labelled_tsv=self_labelled_tsv, labeller=cell.get("labeller")
    )
    log.info("%d candidates (pool of %d) for %s", len(candidates), n_pooled, cell["model"])

    started = time.perf_counter()
    model, tokenizer = models.load_causal_lm(
        cell["model"],
        models_dir=models_dir,
        dtype=options.get("dtype", "float32"),
        device=options.get("device", "auto"),
        quantization=options.get("quantization"),
    )
    load_s = time.perf_counter() - started
    factory = embedder_factory(
        model,
        tokenizer,
        variant,
        name=cell["model"],
        preprocess=options.get("preprocess", True),
        batch_size=options.get("batch_size", 16),
        max_tokens=options.get("max_tokens"),
    )
    started = time.perf_counter()
    rows, base = score_candidates(
        factory,
        candidates,
        data_dir=data_dir,
        dev_max_items=select["dev_max_items"],
        seed=select["seed"],
    )
    score_s = time.perf_counter() - started
    best = select_best(rows)
    write_ranking(out_ranking, rows)

    dev = load_dev(data_dir, select["dev_max_items"], select["seed"])
    n_sentences = len(evaluation.sentences_to_encode(dev))
    scores = np.array([r["dev_spearman"] for r in rows], dtype=float)
    record = {
        "model": cell["model"],
        "prompt": variant.name,
        "choice": cell.get("choice"),
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
        "labeller": cell.get("labeller"),
        "select": dict(select),
        "prompt_spec": variant.to_dict(),
        "embed": options,
        "data_files": list(SELECTION_FILES),
        "data_fingerprint": data.task_fingerprint(SELECTION_TASK, data_dir),
        "dev_pairs": len(dev.splits["dev"]),
        "cost": {
            # one pass over the dev sentences per candidate, plus the no-demo baseline
            "passes": len(candidates) + (1 if base else 0),
            "dev_sentences_per_pass": n_sentences,
            "sentences_embedded": n_sentences * (len(candidates) + (1 if base else 0)),
            "load_s": round(load_s, 3),
            "score_s": round(score_s, 3),
            "seconds_per_candidate": round(score_s / max(1, len(rows) + bool(base)), 3),
        },
        "sentscale_version": __version__,
        "host": platform.node(),
    }
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


def read_selected(path: str | Path) -> tuple[prompts.Demo, ...]:
    """The demonstration a selection job chose (``selected.json``), as a one-demo tuple."""
    record = io.read_json(path)
    try:
        demo = record["demo"]
        return (prompts.Demo(demo["sentence"], demo["word"]),)
    except (KeyError, TypeError):
        raise DataError(f"{path}: not a selection record (no demo sentence/word)") from None


# ----------------------------------------------------------------------------- reports


def merge_rankings(rankings: Sequence[str | Path], choices: Sequence[str], out_tsv: str | Path):
    """One table per model and prompt: the rankings of its select choices, with a ``choice``
    column (``results/demos/<model>/<prompt>/ranking.tsv``, read by the study's plots)."""
    import pandas as pd

    frames = [read_ranking(p).assign(choice=c) for p, c in zip(rankings, choices, strict=True)]
    frame = pd.concat(frames, ignore_index=True)[["choice", *RANKING_COLUMNS]]
    text = frame.to_csv(sep="\t", index=False, float_format="%.4f")
    return io.atomic_write(out_tsv, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def plot_dev_scores(
    selections: Sequence[str | Path],
    rankings: Sequence[str | Path],
    out_png: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Distribution of candidates' STS-B dev Spearman per model (models by size): every
    candidate as a dot over a box, the chosen one as a star, no demonstration as a bar.
    ``selections[i]`` and ``rankings[i]`` are one selection job's ``selected.json`` and
    ``ranking.tsv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(io.read_json(s), read_ranking(r)) for s, r in zip(selections, rankings, strict=True)]
    pairs.sort(key=lambda p: (models.get_spec(p[0]["model"]).params, p[0]["model"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 2.4 + 1.6 * len(pairs)), 4.5))
    rng = np.random.default_rng(0)
    for x, (record, ranking) in enumerate(pairs):
        values = ranking["dev_spearman"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) > 1:
            ax.boxplot(values, positions=[x], widths=0.5, showfliers=False, manage_ticks=False)
        ax.scatter(
            x + rng.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.6, color="tab:blue"
        )
        ax.scatter([x], [record["dev_spearman"]], marker="*", s=160, color="tab:red", zorder=3)
        if record.get("no_demo_dev_spearman") is not None:
            ax.hlines(record["no_demo_dev_spearman"], x - 0.3, x + 0.3, colors="k", lw=2, ls="--")
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(
        [f"{r['model']}\n({r['n_candidates']} cand., {r['dev_pairs']} pairs)" for r, _ in pairs],
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.set_ylabel("STS-B dev Spearman x100")
    ax.set_title(title or "demonstration choice: dev score of every candidate", fontsize=10)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="tab:blue", alpha=0.6, label="candidate"),
        plt.Line2D([], [], marker="*", ls="", ms=12, color="tab:red", label="chosen"),
        plt.Line2D([], [], color="k", lw=2, ls="--", label="no demonstration"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=120)

    io.atomic_write(out_png, write)
    plt.close(fig)
    return Path(out_png)


def summary_rows(
    selections: Sequence[str | Path],
    scores: Sequence[str | Path],
    *,
    no_demo: str | None,
    tasks: Sequence[str],
) -> list[dict[str, Any]]:
    """Per select cell: the chosen demo, its dev score and gain over no demonstration, and per
    task the selected cell's test score and its gain over the no-demo cell (``no_demo``: that
    choice's name) of the same model and prompt. ``scores``: score JSON files of those cells
    (each names its cell and task)."""
    by_key = {}
    for path in scores:
        result = io.read_json(path)
        cell = result["cell"]
        by_key[(cell["model"], cell["prompt"], cell["demo"], result["task"])] = float(
            result["score"]
        )
    rows = []
    for path in selections:
        r = io.read_json(path)
        row: dict[str, Any] = {
            "model": r["model"],
            "params": models.get_spec(r["model"]).params,
            "prompt": r["prompt"],
            "choice": r["choice"],
            "sentence": r["demo"]["sentence"],
            "word": r["demo"]["word"],
            "source": r["source"],
            "candidates": r["n_candidates"],
            "dev_pairs": r["dev_pairs"],
            "dev_no_demo": r.get("no_demo_dev_spearman"),
            "dev_selected": r["dev_spearman"],
            "dev_gain": r.get("dev_gain"),
            "dev_spread": r["dev_scores"]["max"] - r["dev_scores"]["min"],
            "select_s": round(r["cost"]["load_s"] + r["cost"]["score_s"], 1),
        }
        for task in tasks:
            selected = by_key.get((r["model"], r["prompt"], r["choice"], task))
            base = by_key.get((r["model"], r["prompt"], no_demo, task))
            row[f"{task} no_demo"] = base
            row[f"{task} selected"] = selected
            row[f"{task} gain"] = None if selected is None or base is None else selected - base
        rows.append(row)
    rows.sort(key=lambda x: (x["params"], x["model"], x["prompt"], x["choice"]))
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else format(value, spec)


def write_summary(
    rows: Sequence[Mapping[str, Any]], *, csv: str | Path, markdown: str | Path
) -> None:
    """The selection summary as CSV (every column) and Markdown (gains, two decimals)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    text = frame.to_csv(index=False, float_format="%.4f")
    io.atomic_write(csv, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    shown = frame.drop(
        columns=["params", "source", "dev_pairs", "dev_spread"]
        + [c for c in frame.columns if c.endswith((" no_demo", " selected"))],
        errors="ignore",
    )
    shown.insert(
        3, "demo", [f"{s} -> {w}" for s, w in zip(frame["sentence"], frame["word"], strict=True)]
    )
    shown = shown.drop(columns=["sentence", "word"])
    for column in shown.columns:
        if column == "dev_gain" or column.endswith(" gain"):
            shown[column] = [_fmt(v, "+.2f") for v in shown[column]]
        elif column in ("dev_no_demo", "dev_selected"):
            shown[column] = [_fmt(v, ".2f") for v in shown[column]]
    md = (
        "# Demonstrations chosen on STS-B dev, and their gain over no demonstration\n\n"
        "dev: STS-B dev Spearman x100 (selection data); `<task> gain`: test score of the "
        "selected cell minus the no-demonstration cell of the same model and prompt.\n\n"
        + shown.to_markdown(index=False, floatfmt=".1f", disable_numparse=True)
        + "\n"
    )
    io.atomic_write(markdown, lambda tmp: tmp.write_text(md, encoding="utf-8"))
