"""Cost vs score per cell: throughput, peak memory, wall time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..aggregate import BASELINE_PROMPT, STS_AVG, TRANSFER_AVG  # noqa: E402
from .base import YLABELS, _choice, _colors, save  # noqa: E402

MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def plot_cost(cost: pd.DataFrame, png: str | Path, pdf: str | Path | None = None) -> None:
    """Score vs cost per cell: throughput, peak memory, wall time (each log x). Colour: the
    prompt/demo choice; marker: the model (legend), stars: sentence-encoder baselines."""
    column = STS_AVG if STS_AVG in cost.columns and cost[STS_AVG].notna().any() else TRANSFER_AVG
    panels = [
        ("sentences/s", "embedding throughput (sentences/s)"),
        ("embed peak MB", "embed job peak memory (MB, max RSS)"),
        ("total wall s", "wall time per cell (s, embed + scoring)"),
    ]
    lms = cost[cost["prompt"] != BASELINE_PROMPT]
    colors = _colors(_choice(p, d) for p, d in zip(lms["prompt"], lms["demo"], strict=True))
    models = list(dict.fromkeys(lms.sort_values("params")["model"]))
    markers = {m: MODEL_MARKERS[i % len(MODEL_MARKERS)] for i, m in enumerate(models)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained", sharey=True)
    for ax, (col, xlabel) in zip(axes, panels, strict=True):
        ok = cost[cost[col].notna() & cost[column].notna()] if col in cost.columns else cost[:0]
        for _, row in ok.iterrows():
            base = row["prompt"] == BASELINE_PROMPT
            ax.scatter(
                row[col],
                row[column],
                s=110 if base else 45,
                marker="*" if base else markers[row["model"]],
                color="black" if base else colors[_choice(row["prompt"], row["demo"])],
                edgecolors="none",
                alpha=0.9,
                zorder=3,
            )
        if len(ok) and (ok[col] > 0).all():
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        ax.margins(x=0.15, y=0.12)
    axes[0].set_ylabel(YLABELS.get(column, column))
    handles = [
        plt.Line2D([], [], ls="none", marker="o", color=c, label=choice)
        for choice, c in colors.items()
    ]
    handles += [
        plt.Line2D([], [], ls="none", marker=markers[m], color="0.4", label=m) for m in models
    ]
    handles += [
        plt.Line2D([], [], ls="none", marker="*", ms=10, color="black", label=f"{m} (baseline)")
        for m in cost.loc[cost["prompt"] == BASELINE_PROMPT, "model"]
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle("Cost vs score per cell (colour: prompt / demo; marker: model)", fontsize=11)
    save(fig, png, pdf)
