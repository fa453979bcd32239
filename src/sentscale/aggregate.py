"""Tables from score files (the files are the source of truth; MLflow is only a view).

One row per cell (model, prompt, demo), one column per task, plus the STS and transfer
averages over the tasks present, rounded to two decimals as in the paper's tables. Rows are
sorted by model size, then prompt and demonstration names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from . import data, io, models

CELL_COLUMNS = ["model", "params", "prompt", "demo"]


def load_scores(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Long table: one row per (cell, task) with the reported score."""
    rows = []
    for path in paths:
        result = io.read_json(path)
        cell = result["cell"]
        rows.append(
            {
                "model": cell["model"],
                "prompt": cell["prompt"],
                "demo": cell["demo"],
                "task": result["task"],
                "score": float(result["score"]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "prompt", "demo", "task", "score"])


def score_table(long: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """Wide table: a row per cell, task columns in ``tasks`` order, then the averages."""
    wide = long.pivot_table(index=["model", "prompt", "demo"], columns="task", values="score")
    wide = wide.reindex(columns=[t for t in tasks if t in wide.columns])
    sts = [t for t in wide.columns if t in data.STS_TASKS]
    transfer = [t for t in wide.columns if t in data.TRANSFER_TASKS]
    if sts:
        wide["STS avg"] = wide[sts].mean(axis=1)
    if transfer:
        wide["transfer avg"] = wide[transfer].mean(axis=1)
    wide = wide.round(2).reset_index()
    wide.insert(1, "params", [models.get_spec(m).params for m in wide["model"]])
    wide = wide.sort_values(["params", "model", "prompt", "demo"], kind="stable")
    return wide.reset_index(drop=True)


def format_params(params: int) -> str:
    """125000000 -> '125M', 6700000000 -> '6.7B' (the paper's labels)."""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


def write_score_tables(
    score_files: Iterable[str | Path],
    *,
    tasks: Sequence[str],
    csv: str | Path,
    markdown: str | Path,
    latex: str | Path,
) -> pd.DataFrame:
    table = score_table(load_scores(score_files), tasks)
    io.atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    shown = table.assign(params=table["params"].map(format_params))
    io.atomic_write(
        markdown,
        lambda tmp: tmp.write_text(shown.to_markdown(index=False, floatfmt=".2f") + "\n"),
    )
    io.atomic_write(
        latex,
        lambda tmp: tmp.write_text(
            shown.to_latex(index=False, float_format="%.2f", escape=True), encoding="utf-8"
        ),
    )
    return table
