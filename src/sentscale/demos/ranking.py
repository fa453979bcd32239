"""Ranking tables: candidates ordered by STS-B dev score, written as TSV, read back (the one
reader of ``ranking.tsv`` files, also used by :mod:`sentscale.plots`) and merged per model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import io

RANKING_COLUMNS = [
    "rank",
    "candidate",
    "dev_spearman",
    "word",
    "sentence",
    "source",
    "encode_s",
]
#: Added by ``selection: halving`` (:mod:`sentscale.demos.halving`): the last round a candidate
#: reached (1-based), that round's dev pairs and the candidate's Spearman x100 on them.
HALVING_COLUMNS = ["round", "round_pairs", "round_spearman"]


def _sort_key(row: Mapping[str, Any]) -> tuple[float, int]:
    value = row["dev_spearman"]
    finite = value is not None and math.isfinite(value)
    return (-value if finite else math.inf, row["candidate"])


def _halving_key(row: Mapping[str, Any]) -> tuple[int, float, int]:
    score = _sort_key({"dev_spearman": row["round_spearman"], "candidate": row["candidate"]})[0]
    return (-row["round"], score, row["candidate"])


def rank(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows best first (highest dev Spearman; ties and NaN: pool order, NaN last), ranked 1..n.

    Halving rows (with ``round``): the later the round reached the better, then the score on
    that round's subset; so finalists come first, by their full-dev score."""
    rows = [dict(r) for r in rows]
    halving = any("round" in r for r in rows)
    ordered = sorted(rows, key=_halving_key if halving else _sort_key)
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
    """The ranking as TSV (best first), columns :data:`RANKING_COLUMNS` (then
    :data:`HALVING_COLUMNS` for a halving search; ``dev_spearman`` is empty for a candidate
    that did not reach the final, full-dev round)."""
    import pandas as pd

    halving = any("round" in r for r in rows)
    columns = RANKING_COLUMNS + (HALVING_COLUMNS if halving else [])
    frame = pd.DataFrame(rank(rows), columns=columns)
    text = frame.to_csv(sep="\t", index=False, float_format="%.4f")
    return io.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_ranking(path: str | Path):
    """A ranking TSV as a pandas DataFrame: the one reader of ``ranking.tsv`` files (demo
    reports and :func:`sentscale.plots.read_rankings`).

    Only an empty field (how :func:`write_ranking` writes a NaN score), ``nan`` and ``NaN`` are
    missing; every other text is kept, so words such as ``None``, ``NA`` or ``null`` (plausible
    self-labelled answers) survive a merge. The two readers this replaces differed only there:
    the demos one kept ``""`` as text (a NaN score made its column text, and the dev-score
    figure failed on it), the plots one (pandas defaults) also read ``NA``/``None``/``null``...
    as missing, which no column the spread figure uses holds in practice (scores and ranks are
    numbers, choices are config names). Every output that either produced is unchanged.
    """
    import pandas as pd

    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["", "nan", "NaN"])


def merge_rankings(rankings: Sequence[str | Path], choices: Sequence[str], out_tsv: str | Path):
    """One table per model and prompt: the rankings of its select choices, with a ``choice``
    column (``results/demos/<model>/<prompt>/ranking.tsv``, read by the study's plots)."""
    import pandas as pd

    frames = [read_ranking(p).assign(choice=c) for p, c in zip(rankings, choices, strict=True)]
    frame = pd.concat(frames, ignore_index=True)[["choice", *RANKING_COLUMNS]]
    text = frame.to_csv(sep="\t", index=False, float_format="%.4f")
    return io.atomic_write(out_tsv, lambda tmp: tmp.write_text(text, encoding="utf-8"))
