"""The ``demos.<name>.select`` config block: defaults, checks, and what it implies for jobs."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import models, prompts
from ..errors import ConfigError, DataError, ModelError
from .candidates import _check_demo_text, dictionary_candidates, read_candidates

#: ``labeller: self``: every model labels its own candidates.
SELF = "self"
#: The prompt the labeller completes (PromptEOL as in the paper's code).
LABEL_PROMPT = "eol"
#: Sentences tried per requested candidate before self-labelling gives up.
ATTEMPTS_PER_CANDIDATE = 8

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
