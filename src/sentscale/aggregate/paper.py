"""The paper's reported figures and the gap between a reproduced cell and its counterpart.

Every reference row says how its numbers were checked (column ``confirmed``):
``readme@8567aa0`` (the authors' README at commit 8567aa0 of kongds/scaling_sentemb),
``paper-table`` (a table of the paper) or ``unconfirmed`` (cited from the paper's text, not
found in any reachable copy of its tables). Unconfirmed rows stay in the gap table, flagged,
but never enter its headline (:func:`gap_headline`); the figures draw them hollow.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from .. import data
from ..errors import DataError
from .scores import CELL_COLUMNS, STS_AVG, TRANSFER_AVG

CONFIRMATIONS = ("readme@8567aa0", "paper-table", "unconfirmed")
UNCONFIRMED = "unconfirmed"


def paper_results_sha256() -> str:
    """The sha256 of the shipped ``resources/paper_results.csv`` (the workflow's params)."""
    ref = resources.files("sentscale").joinpath("resources/paper_results.csv")
    return hashlib.sha256(ref.read_bytes()).hexdigest()


def paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported figures (``resources/paper_results.csv``), one row per
    (setting, model), our task names as columns, with the source of every row and how it was
    confirmed (``confirmed``, one of :data:`CONFIRMATIONS`; else a DataError naming the line)."""
    if path is None:
        ref = resources.files("sentscale").joinpath("resources/paper_results.csv")
        name, text = "sentscale/resources/paper_results.csv", ref.read_text(encoding="utf-8")
    else:
        name, text = str(path), Path(path).read_text(encoding="utf-8")
    table = pd.read_csv(io.StringIO(text))
    if "confirmed" not in table.columns:
        raise DataError(
            f"{name}, line 1: expected a 'confirmed' column (one of {', '.join(CONFIRMATIONS)} "
            f"per row); found columns {list(table.columns)}"
        )
    # csv.reader's line_num is the file line a record ends on (quoted fields may span lines).
    reader = csv.reader(io.StringIO(text))
    next(reader)
    lines = [reader.line_num for row in reader if row]
    for lineno, value in zip(lines, table["confirmed"], strict=True):
        if value not in CONFIRMATIONS:
            found = "an empty value" if pd.isna(value) else repr(value)
            raise DataError(
                f"{name}, line {lineno}: column 'confirmed' must be one of "
                f"{', '.join(CONFIRMATIONS)}; found {found}"
            )
    return table


def is_confirmed(confirmed: pd.Series) -> pd.Series:
    """Which rows' reference numbers were checked against a table (README or paper)."""
    return confirmed != UNCONFIRMED


#: The paper's settings a cell can reproduce (:func:`paper_setting`), in the paper's order.
SETTINGS = ("PromptEOL", "PromptEOL+ICL", "PromptEOL+CSE")


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


def _ours(sts: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with its STS and transfer columns."""
    return sts.merge(transfer, on=CELL_COLUMNS, how="outer") if len(transfer) else sts


def _counterparts(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    eol_prompts: Sequence[str],
    demo_kinds: Mapping[str, str],
) -> Iterator[tuple[pd.Series, str, pd.Series]]:
    """``(our row, paper setting, the paper's row)`` for every cell of ``ours`` with a
    PromptEOL prompt whose model the paper reports in the cell's setting."""
    for _, row in ours.iterrows():
        if row["prompt"] not in eol_prompts:
            continue
        setting = paper_setting(row["demo"], demo_kinds)
        if setting is None:
            continue
        match = paper[(paper["model"] == row["model"]) & (paper["setting"] == setting)]
        if not match.empty:
            yield row, setting, match.iloc[0]


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
    paper's figure, the paper's source and how it was confirmed (``confirmed``; unconfirmed
    rows are kept and flagged, :func:`gap_headline` leaves them out). Averages are compared
    only when ours covers the paper's tasks (all seven STS or all seven transfer tasks).
    ``max_items`` flags subsampled studies (not comparable with the paper's full test sets)."""
    figures = [c for c in paper.columns if c in data.STS_TASKS or c in (STS_AVG, TRANSFER_AVG)]
    rows = []
    for row, setting, ref in _counterparts(
        _ours(sts, transfer), paper, eol_prompts=eol_prompts, demo_kinds=demo_kinds
    ):
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
                    "confirmed": ref["confirmed"],
                }
            )
    columns = [
        "model", "params", "prompt", "demo", "setting", "task", "ours", "ours lo", "ours hi",
        "paper", "delta", "paper in CI", "max_items", "source", "confirmed",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    order = {t: i for i, t in enumerate([*data.STS_TASKS, STS_AVG, *data.TRANSFER_TASKS])}
    table["_order"] = table["task"].map(order)
    table = table.sort_values(["params", "model", "prompt", "demo", "_order"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def gap_explanation(
    sts: pd.DataFrame,
    transfer: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    eol_prompts: Sequence[str],
    demo_kinds: Mapping[str, str],
) -> str:
    """Why :func:`gap_table` has no rows for these tables, in one paragraph: which cells the
    gap table compares (a PromptEOL prompt, a model the paper reports in the cell's setting, a
    figure the paper reports) and which of these conditions no cell of the study meets."""
    ours = _ours(sts, transfer)
    compares = (
        "the gap table compares each cell with a PromptEOL prompt "
        f"({', '.join(eol_prompts) or 'none in this study'}) with the paper's number for the "
        "same model and setting (no demonstration: PromptEOL; a demonstration: PromptEOL+ICL; "
        "fine-tuned: PromptEOL+CSE)"
    )
    eol = ours[ours["prompt"].isin(list(eol_prompts))]
    if eol.empty:
        prompts = ", ".join(sorted(set(ours["prompt"]))) or "none"
        return f"No rows: {compares}, and this study has no such cell (its prompts: {prompts})."
    matched = list(_counterparts(ours, paper, eol_prompts=eol_prompts, demo_kinds=demo_kinds))
    if not matched:
        # per setting our cells are in: the models the paper reports there (file order: by
        # family and size), and ours
        ours_by_setting: dict[str, list[str]] = {}
        for _, row in eol.sort_values("params", kind="stable").iterrows():
            setting = paper_setting(row["demo"], demo_kinds)
            if setting is not None and row["model"] not in ours_by_setting.get(setting, []):
                ours_by_setting.setdefault(setting, []).append(row["model"])
        if not ours_by_setting:
            demos = ", ".join(sorted(set(eol["demo"])))
            return (
                f"No rows: {compares}, and no demonstration choice of this study's PromptEOL "
                f"cells ({demos}) is one of these settings."
            )
        parts = []
        for setting in sorted(ours_by_setting, key=SETTINGS.index):
            models = ours_by_setting[setting]
            reported = paper.loc[paper["setting"] == setting, "model"].unique()
            parts.append(
                f"{setting}: the paper reports {', '.join(reported) or 'no model'}, this study "
                f"scores {', '.join(models)}"
            )
        return f"No rows: {compares}. No model is in both: {'; '.join(parts)}."
    models = ", ".join(sorted({row["model"] for row, _, _ in matched}))
    return (
        f"No rows: {compares}. {len(matched)} cells ({models}) have a counterpart, but none "
        "scores a figure the paper reports for it (its STS tasks; an average only with all "
        "seven of its tasks)."
    )


def gap_headline(gap: pd.DataFrame) -> dict[str, float | int]:
    """The gap table in a few numbers, over confirmed reference figures only: how many were
    compared (``figures``), their mean ``delta`` and mean absolute delta, how many CIs cover
    the paper's figure (``paper in CI``, of those with a CI), and how many unconfirmed rows were
    left out (``unconfirmed``): a number cited from the paper's text alone is shown, never
    summarised."""
    confirmed = gap[is_confirmed(gap["confirmed"])]
    covered = confirmed["paper in CI"].dropna()  # None: no CI (transfer, baselines)
    return {
        "figures": len(confirmed),
        "mean delta": round(float(confirmed["delta"].mean()), 2),  # nan when none
        "mean |delta|": round(float(confirmed["delta"].abs().mean()), 2),
        "paper in CI": int(covered.astype(bool).sum()),
        "with CI": len(covered),
        "unconfirmed": len(gap) - len(confirmed),
    }


def gap_caption(gap: pd.DataFrame, ci: str) -> str:
    """The gap table's caption, with its headline (confirmed reference figures only)."""
    head = gap_headline(gap)
    text = f"Ours vs the paper's reported figures, delta = ours - paper [{ci}]"
    if head["figures"]:
        text += (
            f"; over {head['figures']} confirmed figures: mean delta {head['mean delta']:+.2f}, "
            f"mean |delta| {head['mean |delta|']:.2f}, paper in CI {head['paper in CI']} of "
            f"{head['with CI']}"
        )
    if head["unconfirmed"]:
        text += f"; {head['unconfirmed']} unconfirmed rows (paper text only) not summarised"
    return text
