"""The STS, transfer and "does scale help?" tables from a study's results and bootstraps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import data
from ..models import params_of
from .bootstrap import Bootstrap, CellBootstrap, compare_samples, percentile_ci, verdict
from .scores import (
    BASELINE_PROMPT,
    CELL_KEYS,
    STS_AVG,
    TRANSFER_AVG,
    _sort_cells,
    paper_average,
)


def _sts_tasks(results, tasks: Sequence[str]) -> list[str]:
    present = {t for r in results.values() for t in r}
    return [t for t in tasks if t in data.STS_TASKS and t in present]


def _transfer_tasks(results, tasks: Sequence[str]) -> list[str]:
    present = {t for r in results.values() for t in r}
    return [t for t in tasks if t in data.TRANSFER_TASKS and t in present]


def sts_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    tasks: Sequence[str],
    boots: Mapping[tuple[str, str, str], CellBootstrap],
    boot: Bootstrap,
    *,
    sizes: Mapping[str, int],
) -> pd.DataFrame:
    """STS per task and average, each with ``<col> lo`` / ``<col> hi`` bootstrap CI columns."""
    sts = _sts_tasks(results, tasks)
    rows = []
    for cell, by_task in results.items():
        row: dict[str, Any] = dict(zip(CELL_KEYS, cell, strict=True))
        cb = boots.get(cell)
        for task in sts:
            row[task] = float(by_task[task]["score"]) if task in by_task else math.nan
            lo, hi = (
                percentile_ci(cb.samples[task], boot.confidence)
                if cb and task in cb.samples
                else (math.nan, math.nan)
            )
            row[f"{task} lo"], row[f"{task} hi"] = lo, hi
        if sts:
            row[STS_AVG] = paper_average(row[t] for t in sts)
            avg = cb.average_samples(sts) if cb else None
            lo, hi = (
                percentile_ci(avg, boot.confidence) if avg is not None else (math.nan, math.nan)
            )
            row[f"{STS_AVG} lo"], row[f"{STS_AVG} hi"] = lo, hi
        rows.append(row)
    columns = CELL_KEYS + [
        c for t in sts + ([STS_AVG] if sts else []) for c in (t, f"{t} lo", f"{t} hi")
    ]
    return _sort_cells(pd.DataFrame(rows, columns=columns).round(2), sizes)


def transfer_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    tasks: Sequence[str],
    *,
    sizes: Mapping[str, int],
) -> pd.DataFrame:
    """Transfer accuracy per task (and MRPC F1 when scored), plus the average accuracy."""
    transfer = _transfer_tasks(results, tasks)
    rows = []
    for cell, by_task in results.items():
        row: dict[str, Any] = dict(zip(CELL_KEYS, cell, strict=True))
        for task in transfer:
            row[task] = float(by_task[task]["score"]) if task in by_task else math.nan
        if "MRPC" in transfer:
            row["MRPC F1"] = float(by_task.get("MRPC", {}).get("f1", math.nan))
        if transfer:
            row[TRANSFER_AVG] = paper_average(row[t] for t in transfer)
        rows.append(row)
    columns = CELL_KEYS + transfer + (["MRPC F1"] if "MRPC" in transfer else [])
    columns += [TRANSFER_AVG] if transfer else []
    return _sort_cells(pd.DataFrame(rows, columns=columns).round(2), sizes)


def scale_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    tasks: Sequence[str],
    boots: Mapping[tuple[str, str, str], CellBootstrap],
    boot: Bootstrap,
    *,
    sizes: Mapping[str, int],
) -> pd.DataFrame:
    """Does scale help? For each prompt/demo choice, adjacent model sizes (LMs, not baselines)
    compared per STS task and on the STS average with a paired bootstrap on the same pairs."""
    sts = _sts_tasks(results, tasks)
    groups: dict[tuple[str, str], list[str]] = {}
    for model, prompt, demo in results:
        if prompt != BASELINE_PROMPT:
            groups.setdefault((prompt, demo), []).append(model)
    rows = []
    for (prompt, demo), names in sorted(groups.items()):
        names = sorted(names, key=lambda m: (params_of(m, sizes), m))
        for small, large in zip(names, names[1:], strict=False):
            a, b = boots[(small, prompt, demo)], boots[(large, prompt, demo)]
            paired_tasks = []
            for task in sts + ([STS_AVG] if len(sts) > 1 else []):
                row = {
                    "prompt": prompt,
                    "demo": demo,
                    "smaller": small,
                    "larger": large,
                    "params smaller": params_of(small, sizes),
                    "params larger": params_of(large, sizes),
                    "task": task,
                }
                if task == STS_AVG:
                    score_a = paper_average(a.scores.get(t, math.nan) for t in sts)
                    score_b = paper_average(b.scores.get(t, math.nan) for t in sts)
                    ok = len(paired_tasks) == len(sts)
                    delta = b.average_samples(sts) - a.average_samples(sts) if ok else None
                else:
                    score_a = a.scores.get(task, math.nan)
                    score_b = b.scores.get(task, math.nan)
                    ok = (
                        task in a.samples
                        and task in b.samples
                        and np.array_equal(a.gold[task], b.gold[task])
                    )
                    delta = b.samples[task] - a.samples[task] if ok else None
                    if ok:
                        paired_tasks.append(task)
                stats = (
                    compare_samples(delta, boot.confidence)
                    if delta is not None
                    else {"delta_lo": math.nan, "delta_hi": math.nan, "p_value": math.nan}
                )
                rows.append(
                    {
                        **row,
                        "score smaller": score_a,
                        "score larger": score_b,
                        "delta": score_b - score_a,
                        "delta lo": stats["delta_lo"],
                        "delta hi": stats["delta_hi"],
                        "p value": stats["p_value"],
                        "verdict": verdict(stats["delta_lo"], stats["delta_hi"])
                        if delta is not None
                        else "n/a (pairs not shared)",
                    }
                )
    columns = [
        "prompt", "demo", "smaller", "larger", "params smaller", "params larger", "task",
        "score smaller", "score larger", "delta", "delta lo", "delta hi", "p value", "verdict",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    rounded = [c for c in columns[7:12]]
    table[rounded] = table[rounded].astype(float).round(2)
    table["p value"] = table["p value"].astype(float).round(4)
    return table
