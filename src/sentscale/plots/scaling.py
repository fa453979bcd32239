"""Score vs model size: the scaling figures (averages, and per task as small multiples)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..aggregate import (  # noqa: E402
    BASELINE_PROMPT,
    CONFIRMATIONS,
    format_params,
    is_confirmed,
)
from ..errors import DataError  # noqa: E402
from .base import DODGE, YLABELS, _choice, _ci, _colors, _log_x, save  # noqa: E402

#: Paper settings drawn as overlays (setting, family) -> (label, style)
PAPER_STYLES = {
    ("PromptEOL+ICL", "opt"): (
        "paper: PromptEOL+ICL, OPT",
        dict(color="0.35", ls="--", marker="s"),
    ),
    ("PromptEOL+CSE", "opt"): (
        "paper: PromptEOL+CSE (fine-tuned), OPT",
        dict(color="0.6", ls=":", marker="^"),
    ),
    ("PromptEOL+CSE", "llama"): (
        "paper: PromptEOL+CSE (fine-tuned), LLaMA",
        dict(color="0.6", ls="-.", marker="v"),
    ),
    ("PromptEOL", "opt"): (
        "paper: PromptEOL (no demo), OPT",
        dict(color="0.2", ls="none", marker="D"),
    ),
}
#: Legend suffix of reference points no table confirms (``confirmed == "unconfirmed"``).
UNCONFIRMED_LABEL = "unconfirmed (paper text only)"


def _draw_ours(ax, table: pd.DataFrame, column: str, colors, *, mark_peak: bool, labels: bool):
    """Our lines (LMs, one per prompt/demo) and baselines (stars) on ``ax``; returns the
    plotted (dodged) x of every LM cell, ``{(model, prompt, demo): x}``."""
    positions: dict[tuple[str, str, str], float] = {}
    if column not in table.columns:
        return positions
    lms = table[(table["prompt"] != BASELINE_PROMPT) & table[column].notna()]
    groups = list(lms.groupby(["prompt", "demo"], sort=True))
    for k, ((prompt, demo), group) in enumerate(groups):
        group = group.sort_values("params")
        choice = _choice(prompt, demo)
        # dodge: lines at the same sizes are shifted apart a little (log x), so CIs stay legible
        shift = 10 ** (DODGE * (k - (len(groups) - 1) / 2))
        x, y = group["params"].to_numpy(float) * shift, group[column].to_numpy(float)
        cells = zip(group["model"], group["prompt"], group["demo"], strict=True)
        positions.update(zip(cells, x, strict=True))
        color = colors[choice]
        ax.plot(x, y, "-o", color=color, lw=1.6, ms=5, label=choice if labels else None)
        ci = _ci(group, column)
        if ci is not None:
            lo, hi = ci
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.sum() >= 2:
                ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.15, lw=0)
            ax.errorbar(
                x[ok],
                y[ok],
                yerr=[y[ok] - lo[ok], hi[ok] - y[ok]],
                fmt="none",
                ecolor=color,
                elinewidth=1,
                capsize=3,
            )
        if mark_peak and len(y) > 1:
            i = int(np.nanargmax(y))
            ax.plot(x[i], y[i], "o", ms=13, mfc="none", mec=color, mew=1.8)
    baselines = table[(table["prompt"] == BASELINE_PROMPT) & table[column].notna()]
    for _, row in baselines.iterrows():
        ax.plot(
            row["params"],
            row[column],
            "*",
            ms=13,
            color="black",
            label=f"{row['model']} (sentence encoder)" if labels else None,
        )
        ci = _ci(baselines.loc[[_]], column)
        if ci is not None and np.isfinite(ci[0][0]):
            err = [[row[column] - ci[0][0]], [ci[1][0] - row[column]]]
            ax.errorbar(row["params"], row[column], yerr=err, fmt="none", ecolor="black", capsize=3)
    return positions


def _draw_paper(ax, paper: pd.DataFrame | None, column: str, *, mark_peak: bool, labels: bool):
    if paper is None or column not in paper.columns:
        return
    if "confirmed" not in paper.columns:  # a missing flag must not pass as confirmed
        raise DataError(
            f"paper reference table: expected a 'confirmed' column ({', '.join(CONFIRMATIONS)}), "
            f"as sentscale.aggregate.paper_results loads it; found {list(paper.columns)}"
        )
    for (setting, family), group in paper[paper[column].notna()].groupby(["setting", "family"]):
        label, style = PAPER_STYLES.get(
            (setting, family), (f"paper: {setting}, {family}", dict(color="0.5", marker="x"))
        )
        group = group.sort_values("params")
        checked = is_confirmed(group["confirmed"])
        # Unconfirmed points: hollow, unjoined, their own legend entry (never part of a line).
        loose = group[~checked]
        if len(loose):
            ax.plot(
                loose["params"].to_numpy(float),
                loose[column].to_numpy(float),
                ms=6,
                mfc="none",
                mew=1.4,
                label=f"{label}, {UNCONFIRMED_LABEL}" if labels else None,
                **{**style, "ls": "none"},
            )
        group = group[checked]
        if group.empty:
            continue
        x, y = group["params"].to_numpy(float), group[column].to_numpy(float)
        ax.plot(x, y, ms=5, lw=1.2, label=label if labels else None, **style)
        i = int(np.argmax(y)) if len(y) else 0
        if mark_peak and 0 < i < len(y) - 1:  # an interior peak: where scaling stops helping
            ax.annotate(
                f"peak {group['label'].iloc[i]}: {y[i]:.2f}",
                (x[i], y[i]),
                xytext=(0, 10),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=style.get("color", "0.3"),
            )


def _mark_best(ax, table: pd.DataFrame, column: str, positions) -> str:
    """Ring our best LM cell (red) and return its description for the title."""
    lms = table[(table["prompt"] != BASELINE_PROMPT) & table[column].notna()]
    if lms.empty:
        return ""
    best = lms.loc[lms[column].idxmax()]
    x = positions.get((best["model"], best["prompt"], best["demo"]), best["params"])
    ax.plot(x, best[column], "o", ms=16, mfc="none", mec="red", mew=1.5, zorder=4)
    ci = ""
    if f"{column} lo" in lms.columns and pd.notna(best.get(f"{column} lo")):
        ci = f" [{best[f'{column} lo']:.2f}, {best[f'{column} hi']:.2f}]"
    return (
        f"our peak (red ring): {best['model']} ({format_params(best['params'])}),\n"
        f"{best['prompt']} / {best['demo']}: {best[column]:.2f}{ci}"
    )


def plot_scaling(
    table: pd.DataFrame,
    column: str,
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    paper: pd.DataFrame | None = None,
    title: str = "",
) -> None:
    """``column`` (``STS avg`` or ``transfer avg``) vs parameters, log x."""
    colors = _colors(_choice(p, d) for p, d in zip(table["prompt"], table["demo"], strict=True))
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    has_ours = column in table.columns and table[column].notna().any()
    peak = ""
    if has_ours:
        positions = _draw_ours(ax, table, column, colors, mark_peak=True, labels=True)
        peak = _mark_best(ax, table, column, positions)
    _draw_paper(ax, paper, column, mark_peak=True, labels=True)
    if not has_ours:
        ax.text(0.5, 0.5, f"no {column} in this study", transform=ax.transAxes, ha="center")
    _log_x(ax)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(YLABELS.get(column, column))
    has_ci = _ci(table, column) is not None
    heading = title or f"{column} vs model size" + (
        " (bars/bands: bootstrap CI)" if has_ci else " (no CI: cross-validated classifiers)"
    )
    ax.set_title(heading + (f"\n{peak}" if peak else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    save(fig, png, pdf)


def plot_tasks(
    sts: pd.DataFrame,
    transfer: pd.DataFrame,
    tasks: Sequence[str],
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    paper: pd.DataFrame | None = None,
) -> None:
    """Small multiples: one panel per task (score vs parameters)."""
    panels = [(t, sts) for t in tasks if t in sts.columns]
    panels += [(t, transfer) for t in tasks if t in transfer.columns]
    colors = _colors(
        _choice(p, d)
        for frame in (sts, transfer)
        for p, d in zip(frame["prompt"], frame["demo"], strict=True)
    )
    ncols = min(4, max(1, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.4 * ncols + 2.2, 2.9 * nrows),
        layout="constrained",
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_visible(False)
            continue
        task, frame = panels[i]
        _draw_ours(ax, frame, task, colors, mark_peak=False, labels=i == 0)
        _draw_paper(ax, paper, task, mark_peak=False, labels=i == 0)
        _log_x(ax)
        ax.set_title(task, fontsize=10)
        ax.set_ylabel("Spearman ×100" if frame is sts else "accuracy %", fontsize=8)
        ax.set_xlabel("parameters", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle("Per-task scores vs model size (bars: bootstrap CI for STS)", fontsize=11)
    save(fig, png, pdf)
