"""The paper's reported figures and the gap between a reproduced cell and its counterpart."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from .. import data
from .scores import CELL_COLUMNS, STS_AVG, TRANSFER_AVG


def paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported figures (``resources/paper_results.csv``), one row per
    (setting, model), our task names as columns, with the source of every row."""
    if path is None:
        with resources.files("sentscale").joinpath("resources/paper_results.csv").open() as fh:
            return pd.read_csv(fh)
    return pd.read_csv(path)


def paper_setting(demo: str, demo_kinds: Mapping[str, str]) -> str | None:
    """The paper's setting a PromptEOL cell reproduces, or None. ``demo_kinds``: demo name ->
    kind (none / fixed / per_model / select / cse): zero-shot is PromptEOL, any demo
    PromptEOL+ICL, a fine-tuned cell (kind ``cse``, sentscale.finetune) PromptEOL+CSE."""
    kind = demo_kinds.get(demo)
    if kind is None:
        return None
    if kind == "cse":
        return "PromptEOL+CSE"
    return "PromptEOL" if kind == "none" else "PromptEOL+ICL"


#: The tasks behind the paper's averages: ours is comparable only when it has all of them.
AVERAGED = {
    STS_AVG: data.STS_TASKS,
    TRANSFER_AVG: data.TRANSFER_TASKS,
}


def gap_table(
    sts: pd.DataFrame,
    transfer: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    eol_prompts: Sequence[str],
    demo_kinds: Mapping[str, str],
    max_items: int | None = None,
) -> pd.DataFrame:
    """Ours vs the paper wherever a cell has a counterpart: one row per (cell, figure) with
    ``ours`` (and its CI), ``paper``, ``delta`` = ours - paper, whether the CI covers the
    paper's figure, and the paper's source. Averages are compared only when ours covers the
    paper's tasks (all seven STS or all seven transfer tasks). ``max_items`` flags subsampled
    studies (not comparable with the paper's full test sets)."""
    ours = sts.merge(transfer, on=CELL_COLUMNS, how="outer") if len(transfer) else sts
    figures = [c for c in paper.columns if c in data.STS_TASKS or c in (STS_AVG, TRANSFER_AVG)]
    rows = []
    for _, row in ours.iterrows():
        if row["prompt"] not in eol_prompts:
            continue
        setting = paper_setting(row["demo"], demo_kinds)
        if setting is None:
            continue
        match = paper[(paper["model"] == row["model"]) & (paper["setting"] == setting)]
        if match.empty:
            continue
        ref = match.iloc[0]
        for fig in figures:
            if fig not in row.index or pd.isna(row[fig]) or pd.isna(ref[fig]):
                continue
            if fig in AVERAGED and not all(
                t in row.index and pd.notna(row[t]) for t in AVERAGED[fig]
            ):
                continue  # our average covers fewer tasks than the paper's: not comparable
            lo, hi = row.get(f"{fig} lo", math.nan), row.get(f"{fig} hi", math.nan)
            covered = None if pd.isna(lo) or pd.isna(hi) else bool(lo <= ref[fig] <= hi)
            rows.append(
                {
                    "model": row["model"],
                    "params": row["params"],
                    "prompt": row["prompt"],
                    "demo": row["demo"],
                    "setting": setting,
                    "task": fig,
                    "ours": row[fig],
                    "ours lo": lo,
                    "ours hi": hi,
                    "paper": float(ref[fig]),
                    "delta": round(float(row[fig]) - float(ref[fig]), 2),
                    "paper in CI": covered,
                    "max_items": max_items,
                    "source": ref["source"],
                }
            )
    columns = [
        "model", "params", "prompt", "demo", "setting", "task", "ours", "ours lo", "ours hi",
        "paper", "delta", "paper in CI", "max_items", "source",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    order = {t: i for i, t in enumerate([*data.STS_TASKS, STS_AVG, *data.TRANSFER_TASKS])}
    table["_order"] = table["task"].map(order)
    table = table.sort_values(["params", "model", "prompt", "demo", "_order"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)
