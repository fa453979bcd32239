"""The ``demos.<name>.select`` config block: defaults, checks, and what it implies for jobs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import prompts
from ..errors import ConfigError, DataError, ModelError
from ..fetch import check_sha256, check_url
from ..models import Registry
from ..options import SENTEVAL_SEED, Options, unknown_key_message
from .candidates import _check_demo_text, dictionary_candidates, read_candidates
from .icl_examples import (
    AUTHORS_LINES,
    AUTHORS_SHA256,
    AUTHORS_URL,
    fetched_path,
    read_icl_examples,
)

#: ``labeller: self``: every model labels its own candidates.
SELF = "self"
#: The prompt the labeller completes (PromptEOL as in the paper's code).
LABEL_PROMPT = "eol"
#: Sentences tried per requested candidate before self-labelling gives up.
ATTEMPTS_PER_CANDIDATE = 8

CANDIDATE_KEYS = ("self_labelled", "files", "icl_examples", "dictionary")
#: One priming demonstration (the paper's OPT-125M demo) so that small instruct checkpoints
#: answer with a word instead of echoing the sentence; ``prime: []`` labels with the bare prompt.
DEFAULT_PRIME = (prompts.Demo("A man is smoking.", "Smoking"),)


@dataclass(frozen=True)
class SelfLabelled(Options):
    """``candidates.self_labelled``: n STS-B train sentences labelled by greedy decoding."""

    labeller: str = SELF
    n: int = 8
    seed: int = SENTEVAL_SEED
    min_words: int = 3
    max_words: int = 12
    max_new_tokens: int = 8
    prime: tuple[prompts.Demo, ...] = DEFAULT_PRIME

    def __post_init__(self) -> None:
        object.__setattr__(self, "prime", prompts.as_demos(self.prime or ()))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["prime"] = [d.to_dict() for d in self.prime]
        return out


@dataclass(frozen=True)
class IclExamples(Options):
    """``candidates.icl_examples``: a file in the format of the authors' ``icl_examples.txt``
    (:mod:`sentscale.demos.icl_examples`).

    Config forms: a path (a local file, read as it is), or a mapping ``{url, sha256}`` (both
    default to the authors' file at the pinned commit): the workflow fetches it to
    :attr:`file` and the selection job checks the pin again before reading it.
    """

    path: str | None = None
    url: str | None = AUTHORS_URL
    sha256: str | None = AUTHORS_SHA256

    @classmethod
    def from_config(cls, value: str | Mapping[str, Any]) -> IclExamples:
        """From the config value (checked by :func:`parse_select`) or a rule's params."""
        if isinstance(value, str):
            return cls(path=value, url=None, sha256=None)
        return cls.from_mapping(value)

    @property
    def fetched(self) -> bool:
        """True: the workflow downloads the file (no local ``path`` given)."""
        return self.path is None

    @property
    def file(self) -> str:
        """The file the selection job reads."""
        return self.path if self.path is not None else fetched_path(str(self.sha256))


@dataclass(frozen=True)
class CandidateSources(Options):
    """``select.candidates``: where the candidate demonstrations come from, pooled in order."""

    self_labelled: SelfLabelled | None = None
    files: tuple[str, ...] = ()
    icl_examples: IclExamples | None = None
    dictionary: bool = False

    @classmethod
    def from_mapping(cls, block, where: str = "") -> CandidateSources:
        block = dict(block or {})
        labelled = block.get("self_labelled")
        icl = block.get("icl_examples")
        return cls(
            self_labelled=None if labelled is None else SelfLabelled.from_mapping(labelled),
            files=tuple(str(f) for f in block.get("files") or ()),
            icl_examples=None if icl is None else IclExamples.from_config(icl),
            dictionary=bool(block.get("dictionary", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dictionary": self.dictionary,
            "files": list(self.files),
            "icl_examples": None if self.icl_examples is None else self.icl_examples.to_dict(),
            "self_labelled": None if self.self_labelled is None else self.self_labelled.to_dict(),
        }


#: ``select.selection``: score every candidate on the whole dev set (the paper), or halving.
SELECTIONS = ("exhaustive", "halving")


@dataclass(frozen=True)
class Halving(Options):
    """``select.halving``: successive halving over nested seeded subsets of the dev pairs
    (:mod:`sentscale.demos.halving`; our addition, not the authors' protocol).

    Round r scores its candidates on the first ``pairs[r]`` pairs of one seeded permutation of
    the dev pairs (so each round's subset holds the previous one's) and promotes the best
    ``keep`` fraction (rounded up, at least ``min_keep``) to the next; the last entry must be
    null: the final round scores the survivors on the full dev set (every pair, or
    ``dev_max_items``) exactly as the exhaustive search does.
    """

    pairs: tuple[int | None, ...] = (100, 300, None)
    keep: float = 0.25
    min_keep: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(self.pairs))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["pairs"] = list(self.pairs)  # a list, as in the config (params compare as text)
        return out


@dataclass(frozen=True)
class SelectOptions(Options):
    """A ``demos.<name>.select`` block: the candidate pool and how it is scored on STS-B dev."""

    candidates: CandidateSources = CandidateSources()
    #: cap on the pool (seeded sample); each candidate costs one dev pass
    max_candidates: int | None = None
    #: a seeded subsample of STS-B dev pairs; None: all 1500
    dev_max_items: int | None = None
    #: seed of the cap, of the dev subsample and of halving's subsets
    seed: int = SENTEVAL_SEED
    #: "exhaustive" (every candidate on the whole dev set, the paper) or "halving"
    selection: str = "exhaustive"
    #: the rounds of ``selection: halving`` (ignored by exhaustive)
    halving: Halving = Halving()

    @classmethod
    def from_mapping(cls, block, where: str = "") -> SelectOptions:
        """From a parsed block (a rule's params); :func:`parse_select` checks a config's."""
        block = dict(block)
        return cls(
            candidates=CandidateSources.from_mapping(block.pop("candidates", None)),
            halving=Halving.from_mapping(block.pop("halving", None)),
            **block,
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["candidates"] = self.candidates.to_dict()
        out["halving"] = self.halving.to_dict()
        return out

    def to_params(self) -> dict[str, Any]:
        """:meth:`to_dict` less what does not determine a selection: the URL a pinned
        ``icl_examples`` file is downloaded from (its sha256 fixes the content), so moving to
        a mirror reruns no selection."""
        out = self.to_dict()
        if self.selection == "exhaustive":
            # As before these keys existed: the paper's searches (and every finished study's)
            # keep their params, so adding halving reruns no selection job.
            del out["selection"], out["halving"]
        icl = out["candidates"]["icl_examples"]
        if icl is not None and icl["path"] is None:
            icl["url"] = None
        return out

    def labeller_for(self, model: str) -> str | None:
        """The model that labels ``model``'s self-labelled candidates (None: no such source)."""
        labelled = self.candidates.self_labelled
        if labelled is None:
            return None
        return model if labelled.labeller == SELF else labelled.labeller


def _unknown(where: str, block: Mapping[str, Any], cls: type[Options]) -> list[str]:
    allowed = [f.name for f in dataclasses.fields(cls)]
    return [unknown_key_message(where, k, allowed) for k in block if k not in allowed]


def parse_select(
    name: str, spec: Mapping[str, Any], model_names: Sequence[str], registry: Registry
) -> SelectOptions:
    """The ``demos.<name>.select`` block as options; ConfigError listing every problem.

    ``model_names`` are the study's causal LMs; a labeller may be one of them, any other
    causal LM of the study's ``registry`` (provisioned like the others), or ``self``.
    """
    where = f"demos.{name}.select"
    spec = dict(spec or {})
    problems = _unknown(where, spec, SelectOptions)
    for key in ("max_candidates", "dev_max_items"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            problems.append(f"{key} must be a positive integer or null, got {value!r}")
    if not isinstance(spec.get("seed", SENTEVAL_SEED), int):
        problems.append(f"seed must be an integer, got {spec['seed']!r}")
    if spec.get("selection", "exhaustive") not in SELECTIONS:
        problems.append(f"selection must be one of {list(SELECTIONS)}, got {spec['selection']!r}")
    halving = spec.get("halving")
    if halving is not None:
        problems += _check_halving(halving, spec.get("dev_max_items"))

    raw = dict(spec.get("candidates") or {})
    problems += _unknown(f"{where}.candidates", raw, CandidateSources)
    labelled = raw.get("self_labelled")
    if labelled is not None:
        problems += _check_self_labelled(dict(labelled), registry)
    for path in raw.get("files") or ():
        if not Path(path).is_file():
            problems.append(f"candidates.files: no such candidate file {path}")
    if raw.get("icl_examples") is not None:
        problems += _check_icl_examples(raw["icl_examples"])
    if not (
        labelled is not None
        or raw.get("files")
        or raw.get("icl_examples") is not None
        or raw.get("dictionary")
    ):
        problems.append(
            "candidates: no source; give self_labelled, files, icl_examples and/or dictionary: true"
        )
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return SelectOptions.from_mapping({**spec, "candidates": raw})


def _check_halving(block: Any, dev_max_items: Any) -> list[str]:
    """Problems of ``select.halving`` (the full dev set is ``dev_max_items`` pairs if set)."""
    where = "halving"
    if not isinstance(block, Mapping):
        return [f"{where}: expected a mapping {{pairs, keep, min_keep}}, got {block!r}"]
    problems = _unknown(where, block, Halving)
    pairs = block.get("pairs", list(Halving().pairs))
    if not isinstance(pairs, Sequence) or isinstance(pairs, str) or not pairs:
        problems.append(f"{where}.pairs: expected a list such as [100, 300, null], got {pairs!r}")
    elif pairs[-1] is not None:
        problems.append(
            f"{where}.pairs: the last round must be null (the final round scores the survivors "
            f"on the full dev set, as the exhaustive search would), got {pairs!r}"
        )
    else:
        sizes = list(pairs[:-1])
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in sizes):
            problems.append(
                f"{where}.pairs: every round but the last must be an integer >= 2 (dev pairs; "
                f"a Spearman needs two), got {pairs!r}"
            )
        elif any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
            problems.append(f"{where}.pairs: subset sizes must increase, got {pairs!r}")
        elif isinstance(dev_max_items, int) and sizes and sizes[-1] >= dev_max_items:
            problems.append(
                f"{where}.pairs: subset rounds must be smaller than the full dev set "
                f"(dev_max_items: {dev_max_items}), got {pairs!r}"
            )
    keep = block.get("keep", Halving().keep)
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep < 1:
        problems.append(f"{where}.keep: the fraction promoted must be in (0, 1), got {keep!r}")
    min_keep = block.get("min_keep", Halving().min_keep)
    if isinstance(min_keep, bool) or not isinstance(min_keep, int) or min_keep < 1:
        problems.append(f"{where}.min_keep must be a positive integer, got {min_keep!r}")
    return problems


def _check_self_labelled(labelled: dict[str, Any], registry: Registry) -> list[str]:
    problems = _unknown("candidates.self_labelled", labelled, SelfLabelled)
    labelled = {**SelfLabelled().to_dict(), **labelled}  # the defaults, for the checks below
    labeller = labelled["labeller"]
    if labeller != SELF:
        try:
            spec = registry[labeller]
        except ModelError as err:
            problems.append(f"candidates.self_labelled.labeller: {err}")
        else:
            if spec.kind != "causal-lm":
                problems.append(
                    f"candidates.self_labelled.labeller: {labeller!r} is a {spec.kind}; "
                    "a labeller must be a causal LM (or 'self')"
                )
    for key in ("n", "min_words", "max_words", "max_new_tokens"):
        value = labelled[key]
        if not isinstance(value, int) or value < 1:
            problems.append(
                f"candidates.self_labelled.{key} must be a positive integer, got {value!r}"
            )
    low, high = labelled["min_words"], labelled["max_words"]
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append("candidates.self_labelled: min_words is larger than max_words")
    try:
        prime = prompts.as_demos(labelled["prime"] or [])
    except (ConfigError, KeyError, TypeError) as err:
        problems.append(f"candidates.self_labelled.prime: {err}")
    else:
        for d in prime:
            why = _check_demo_text(d.sentence, d.word)
            if why:
                problems.append(f"candidates.self_labelled.prime: expected {why}")
    return problems


def _check_icl_examples(value: Any) -> list[str]:
    """Problems of ``candidates.icl_examples``: a path to an existing file, or {url, sha256}."""
    where = "candidates.icl_examples"
    if isinstance(value, str):
        return [] if Path(value).is_file() else [f"{where}: no such file {value}"]
    if not isinstance(value, Mapping):
        return [f"{where}: expected a file path or a mapping {{url, sha256}}, got {value!r}"]
    problems = [
        unknown_key_message(where, k, ["url", "sha256"])
        for k in value
        if k not in ("url", "sha256")
    ]
    for key, check in (("url", check_url), ("sha256", check_sha256)):
        try:
            check(value.get(key, getattr(IclExamples(), key)), f"{where}.{key}")
        except ConfigError as err:
            problems.append(str(err))
    return problems


def labeller_for(select: SelectOptions, model: str) -> str | None:
    """The model that labels ``model``'s self-labelled candidates (None: no such source)."""
    return select.labeller_for(model)


def estimated_candidates(select: SelectOptions) -> int:
    """Upper bound on the candidates a selection job scores (for job resources)."""
    cands = select.candidates
    total = cands.self_labelled.n if cands.self_labelled else 0
    for path in cands.files:
        try:
            total += len(read_candidates(path))
        except DataError:
            pass  # the selection job reports it
    icl = cands.icl_examples
    if icl is not None:
        try:
            total += len(read_icl_examples(icl.file))
        except DataError:  # not fetched yet (the selection job reports any other problem)
            total += AUTHORS_LINES
    if cands.dictionary:
        total += len(dictionary_candidates())
    cap = select.max_candidates
    return min(total, cap) if cap else total


def estimated_full_passes(select: SelectOptions, full_pairs: int = 1500) -> float:
    """Candidate passes over the full dev set a selection job costs, in sentences (for job
    resources): :func:`estimated_candidates` for exhaustive; for halving, each round's
    candidates weighted by its share of the full dev set (``full_pairs``: 1500 or
    ``dev_max_items``), with the rounding :func:`sentscale.demos.halving.promoted` does."""
    n = estimated_candidates(select)
    if select.selection != "halving":
        return float(n)
    full = select.dev_max_items or full_pairs
    h = select.halving
    total = 0.0
    for pairs in h.pairs:
        total += n * (full if pairs is None else pairs) / full
        n = min(n, max(h.min_keep, math.ceil(h.keep * n)))
    return total
