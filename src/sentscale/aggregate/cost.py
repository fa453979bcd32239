"""Cost per cell from embed metadata, Snakemake benchmark files and scoring timings."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import data, io
from .scores import CELL_KEYS, STS_AVG, TRANSFER_AVG, _sort_cells, paper_average


def read_benchmark(path: str | Path) -> dict[str, float]:
    """First row of a Snakemake ``benchmark:`` TSV (s, max_rss in MB, ...)."""
    with open(path, encoding="utf-8") as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _cell_from_path(path: str | Path, depth: int) -> tuple[str, str, str]:
    """``.../<model>/<prompt>/<demo>.ext`` (depth 0) or ``.../<model>/<prompt>/<demo>/x`` (1)."""
    parts = Path(path).parts
    if depth == 0:
        return (parts[-3], parts[-2], Path(parts[-1]).stem)
    return (parts[-4], parts[-3], parts[-2])


def cost_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    *,
    embed_meta: Iterable[str | Path],
    embed_benchmarks: Iterable[str | Path],
    evaluate_benchmarks: Iterable[str | Path] = (),
    sizes: Mapping[str, int],
) -> pd.DataFrame:
    """Cost per cell: embedding throughput, wall time and peak memory (Snakemake benchmark of
    the embed job), scoring wall time (transfer benchmarks + STS timings), next to the
    averages. Paths follow ``.../<model>/<prompt>/<demo>.(json|tsv)``."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}

    def row(cell):
        return rows.setdefault(cell, dict(zip(CELL_KEYS, cell, strict=True)))

    for path in embed_meta:
        meta = io.read_json(path)
        r = row(_cell_from_path(path, 0))
        r["n sentences"] = meta.get("n_sentences")
        r["sentences/s"] = (meta.get("timings") or {}).get("sentences_per_s")
        r["dtype"] = (meta.get("embed") or {}).get("dtype")
    for path in embed_benchmarks:
        bench = read_benchmark(path)
        r = row(_cell_from_path(path, 0))
        r["embed wall s"] = bench.get("s")
        r["embed peak MB"] = bench.get("max_rss")
    scoring: dict[tuple[str, str, str], float] = {}
    for path in evaluate_benchmarks:
        cell = _cell_from_path(path, 1)
        scoring[cell] = scoring.get(cell, 0.0) + read_benchmark(path).get("s", 0.0)
    for cell, by_task in results.items():
        r = row(cell)
        sts_s = sum(
            sum((res.get("timings") or {}).values())
            for t, res in by_task.items()
            if t in data.STS_TASKS
        )
        r["scoring wall s"] = scoring.get(cell, 0.0) + sts_s
        sts = [res["score"] for t, res in by_task.items() if t in data.STS_TASKS]
        transfer = [res["score"] for t, res in by_task.items() if t in data.TRANSFER_TASKS]
        r[STS_AVG] = paper_average(sts) if sts else math.nan
        r[TRANSFER_AVG] = paper_average(transfer) if transfer else math.nan
    for r in rows.values():
        r["total wall s"] = (r.get("embed wall s") or 0.0) + (r.get("scoring wall s") or 0.0)
    columns = CELL_KEYS + [
        "dtype", "n sentences", "sentences/s", "embed wall s", "embed peak MB",
        "scoring wall s", "total wall s", STS_AVG, TRANSFER_AVG,
    ]  # fmt: skip
    table = pd.DataFrame(list(rows.values()), columns=columns)
    return _sort_cells(table.round(2), sizes)
