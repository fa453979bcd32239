"""How the MLflow view shows a cell: short run names and metrics rounded as the tables show
them (issue 18: MLflow 3.17's runs table shows ~12 characters of a name, and ``sts_avg``
66.63 beside ``STSBenchmark.spearman`` 72.64749172132814 read as two precisions)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np

#: a registry name's size part: ``135m``, ``0.5b``, ``1.4b``
_SIZE = re.compile(r"\d+(?:\.\d+)?[kmbt]", re.IGNORECASE)


def shown(value: float) -> float:
    """``value`` rounded as the tables show it: two decimals, by numpy's rounding (pandas'
    ``DataFrame.round(2)``, which writes every table)."""
    return float(np.round(float(value), 2))


def _alias_candidates(name: str) -> list[str]:
    """Shortest first: the family's letters and the size (``qwen2.5-coder-0.5b`` ->
    ``qwen0.5b``), then with the variant words (``qwen-coder-0.5b``), then the name itself.
    A name without a size part (``minilm-l6``) has only itself."""
    first, *rest = name.split("-")
    letters = re.match(r"[A-Za-z]+", first)
    sizes = [i for i, part in enumerate(rest) if _SIZE.fullmatch(part)]
    if not sizes or letters is None:
        return [name]
    family, size = letters.group(0).lower(), rest[sizes[-1]].lower()
    words = [part.lower() for i, part in enumerate(rest) if i != sizes[-1]]
    candidates = [family + size] + (["-".join([family, *words, size])] if words else [])
    return [c for c in candidates if len(c) < len(name)] + [name]


def model_alias(name: str) -> str:
    """A registry name shortened for a run name (the first of :func:`_alias_candidates`):
    ``smollm2-135m`` -> ``smollm135m``, ``qwen2.5-coder-0.5b`` -> ``qwen0.5b``."""
    return _alias_candidates(name)[0]


def model_aliases(names: Iterable[str]) -> dict[str, str]:
    """{name: alias} for a study's models, unique within it: each model takes its shortest
    alias candidate that no other model of the study takes (or is named); models whose
    aliases collide all move on to their next candidate (``qwen2.5-0.5b`` and
    ``qwen2.5-coder-0.5b``, both ``qwen0.5b`` alone, become ``qwen2.5-0.5b`` and
    ``qwen-coder-0.5b``)."""
    names = sorted(set(names))
    candidates = {name: _alias_candidates(name) for name in names}
    level = dict.fromkeys(names, 0)
    while True:
        aliases = {n: candidates[n][min(level[n], len(candidates[n]) - 1)] for n in names}
        counts = Counter(aliases.values())
        clash = [n for n, a in aliases.items() if counts[a] > 1 or (a != n and a in level)]
        if not clash:
            return aliases
        for n in clash:
            level[n] += 1  # full names are unique, so this ends


def cell_run_name(cell: Mapping[str, str], alias: str | None = None) -> str:
    """``<model alias> <prompt>/<demo>``, e.g. ``qwen0.5b eol/selected``."""
    return f"{alias or model_alias(cell['model'])} {cell['prompt']}/{cell['demo']}"
