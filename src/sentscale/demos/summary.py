"""Reports of the selection jobs: the summary table (chosen demos and their gains) and the
dev-score figure of every candidate (drawn by :func:`sentscale.plots.plot_candidates`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..models import params_of
from .ranking import read_ranking


def plot_dev_scores(
    selections: Sequence[str | Path],
    rankings: Sequence[str | Path],
    out_png: str | Path,
    *,
    sizes: Mapping[str, int],
    title: str | None = None,
) -> Path:
    """Distribution of candidates' STS-B dev Spearman per model (models by size): every
    candidate as a dot over a box, the chosen one as a star, no demonstration as a bar.
    ``selections[i]`` and ``rankings[i]`` are one selection job's ``selected.json`` and
    ``ranking.tsv``; ``sizes``: model -> parameter count (models sort by it)."""
    from ..plots.candidates import CandidateColumn, dev_scores_style, plot_candidates

    pairs = [(io.read_json(s), read_ranking(r)) for s, r in zip(selections, rankings, strict=True)]
    pairs.sort(key=lambda p: (params_of(p[0]["model"], sizes), p[0]["model"]))
    columns = []
    for record, ranking in pairs:
        values = ranking["dev_spearman"].to_numpy(dtype=float)
        columns.append(
            CandidateColumn(
                label=f"{record['model']}\n({record['n_candidates']} cand., "
                f"{record['dev_pairs']} pairs)",
                values=values[np.isfinite(values)],
                chosen=record["dev_spearman"],
                baseline=record.get("no_demo_dev_spearman"),
            )
        )
    plot_candidates(columns, out_png, style=dev_scores_style(len(columns), title))
    return Path(out_png)


def summary_rows(
    selections: Sequence[str | Path],
    scores: Sequence[str | Path],
    *,
    no_demo: str | None,
    tasks: Sequence[str],
    sizes: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Per select cell: the chosen demo, its dev score and gain over no demonstration, and per
    task the selected cell's test score and its gain over the no-demo cell (``no_demo``: that
    choice's name) of the same model and prompt. ``scores``: score JSON files of those cells
    (each names its cell and task)."""
    by_key = {}
    for path in scores:
        result = io.read_json(path)
        cell = result["cell"]
        by_key[(cell["model"], cell["prompt"], cell["demo"], result["task"])] = float(
            result["score"]
        )
    rows = []
    for path in selections:
        r = io.read_json(path)
        row: dict[str, Any] = {
            "model": r["model"],
            "params": params_of(r["model"], sizes),
            "prompt": r["prompt"],
            "choice": r["choice"],
            "sentence": r["demo"]["sentence"],
            "word": r["demo"]["word"],
            "source": r["source"],
            "candidates": r["n_candidates"],
            "dev_pairs": r["dev_pairs"],
            "dev_no_demo": r.get("no_demo_dev_spearman"),
            "dev_selected": r["dev_spearman"],
            "dev_gain": r.get("dev_gain"),
            "dev_spread": r["dev_scores"]["max"] - r["dev_scores"]["min"],
            "select_s": round(r["cost"]["load_s"] + r["cost"]["score_s"], 1),
        }
        for task in tasks:
            selected = by_key.get((r["model"], r["prompt"], r["choice"], task))
            base = by_key.get((r["model"], r["prompt"], no_demo, task))
            row[f"{task} no_demo"] = base
            row[f"{task} selected"] = selected
            row[f"{task} gain"] = None if selected is None or base is None else selected - base
        rows.append(row)
    rows.sort(key=lambda x: (x["params"], x["model"], x["prompt"], x["choice"]))
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else format(value, spec)


def write_summary(
    rows: Sequence[Mapping[str, Any]], *, csv: str | Path, markdown: str | Path
) -> None:
    """The selection summary as CSV (every column) and Markdown (gains, two decimals)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    text = frame.to_csv(index=False, float_format="%.4f")
    io.atomic_write(csv, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    shown = frame.drop(
        columns=["params", "source", "dev_pairs", "dev_spread"]
        + [c for c in frame.columns if c.endswith((" no_demo", " selected"))],
        errors="ignore",
    )
    shown.insert(
        3, "demo", [f"{s} -> {w}" for s, w in zip(frame["sentence"], frame["word"], strict=True)]
    )
    shown = shown.drop(columns=["sentence", "word"])
    for column in shown.columns:
        if column == "dev_gain" or column.endswith(" gain"):
            shown[column] = [_fmt(v, "+.2f") for v in shown[column]]
        elif column in ("dev_no_demo", "dev_selected"):
            shown[column] = [_fmt(v, ".2f") for v in shown[column]]
    md = (
        "# Demonstrations chosen on STS-B dev, and their gain over no demonstration\n\n"
        "dev: STS-B dev Spearman x100 (selection data); `<task> gain`: test score of the "
        "selected cell minus the no-demonstration cell of the same model and prompt.\n\n"
        + shown.to_markdown(index=False, floatfmt=".1f", disable_numparse=True)
        + "\n"
    )
    io.atomic_write(markdown, lambda tmp: tmp.write_text(md, encoding="utf-8"))
