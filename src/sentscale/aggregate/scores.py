"""Score files read into cells and tables: one row per cell (model, prompt, demo), one column
per task, the paper's averages, rows sorted by model size."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import data, io
from ..models import params_of

CELL_KEYS = ["model", "prompt", "demo"]
CELL_COLUMNS = ["model", "params", "prompt", "demo"]
STS_AVG = "STS avg"
TRANSFER_AVG = "transfer avg"
#: Prompt name of sentence-transformers baselines (see ``sentscale.study.NATIVE_PROMPT``).
BASELINE_PROMPT = "native"


def cell_of(result: Mapping[str, Any]) -> tuple[str, str, str]:
    cell = result["cell"]
    return (cell["model"], cell["prompt"], cell["demo"])


def read_results(paths: Iterable[str | Path]) -> dict[tuple[str, str, str], dict[str, dict]]:
    """``{(model, prompt, demo): {task: score file content}}``."""
    out: dict[tuple[str, str, str], dict[str, dict]] = {}
    for path in paths:
        result = io.read_json(path)
        out.setdefault(cell_of(result), {})[result["task"]] = result
    return out


def load_scores(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Long table: one row per (cell, task) with the reported score."""
    rows = []
    for path in paths:
        result = io.read_json(path)
        model, prompt, demo = cell_of(result)
        rows.append(
            {
                "model": model,
                "prompt": prompt,
                "demo": demo,
                "task": result["task"],
                "score": float(result["score"]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "prompt", "demo", "task", "score"])


def paper_average(scores: Iterable[float]) -> float:
    """The paper's (SimCSE's) average: each score rounded to two decimals, mean rounded."""
    values = [round(float(s), 2) for s in scores]
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return round(sum(values) / len(values), 2)


def _sort_cells(frame: pd.DataFrame, sizes: Mapping[str, int]) -> pd.DataFrame:
    frame.insert(1, "params", [params_of(m, sizes) for m in frame["model"]])
    frame = frame.sort_values(["params", "model", "prompt", "demo"], kind="stable")
    return frame.reset_index(drop=True)


def score_table(
    long: pd.DataFrame, tasks: Sequence[str], *, sizes: Mapping[str, int]
) -> pd.DataFrame:
    """Wide table: a row per cell, task columns in ``tasks`` order, then the averages."""
    wide = long.pivot_table(index=CELL_KEYS, columns="task", values="score")
    wide = wide.reindex(columns=[t for t in tasks if t in wide.columns])
    sts = [t for t in wide.columns if t in data.STS_TASKS]
    transfer = [t for t in wide.columns if t in data.TRANSFER_TASKS]
    if sts:
        wide[STS_AVG] = [paper_average(row) for row in wide[sts].to_numpy()]
    if transfer:
        wide[TRANSFER_AVG] = [paper_average(row) for row in wide[transfer].to_numpy()]
    wide = wide.round(2).reset_index()
    wide.columns.name = None
    return _sort_cells(wide, sizes)


def format_params(params: int) -> str:
    """125000000 -> '125M', 6700000000 -> '6.7B' (the paper's labels)."""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"
