"""Figures of a study, drawn from the tables of ``sentscale.aggregate`` (PNG + PDF each).

- :func:`plot_scaling`  STS or transfer average vs parameter count (log x): one line per
  prompt/demonstration choice with its bootstrap CI band, baselines as stars, the paper's
  reported points as an overlay, each line's peak marked.
- :func:`plot_tasks`    the same per task, as small multiples.
- :func:`plot_demo_spread`  how much the choice of demonstration matters: STS-B dev Spearman of
  every candidate per model (``results/demos/<model>/<prompt>/ranking.tsv``); a placeholder
  figure when no rankings exist.
- :func:`plot_cost`     cost vs score: throughput, peak memory and wall time per cell.

Output is byte-stable for equal input (no timestamps in the files).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from . import io  # noqa: E402
from .aggregate import BASELINE_PROMPT, STS_AVG, TRANSFER_AVG, format_params  # noqa: E402

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
DODGE = 0.04  # decades between neighbouring lines at one model size
YLABELS = {
    STS_AVG: "STS avg (Spearman ×100)",
    TRANSFER_AVG: "transfer avg (accuracy %)",
}


def save(fig: plt.Figure, png: str | Path, pdf: str | Path | None = None) -> None:
    """Write ``fig`` atomically as PNG (150 dpi) and PDF, without timestamps."""
    io.atomic_write(
        png, lambda tmp: fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
    )
    if pdf is not None:
        io.atomic_write(
            pdf,
            lambda tmp: fig.savefig(
                tmp, format="pdf", metadata={"CreationDate": None, "Creator": None}
            ),
        )
    plt.close(fig)


def _choice(prompt: str, demo: str) -> str:
    return f"{prompt} / {demo}"


def _colors(choices: Iterable[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(sorted(set(choices)))}


def _log_x(ax: plt.Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_params(x) if x > 0 else ""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)


def _ci(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = f"{column} lo", f"{column} hi"
    if lo not in frame.columns or not frame[lo].notna().any():
        return None
    return frame[lo].to_numpy(float), frame[hi].to_numpy(float)


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
    for (setting, family), group in paper[paper[column].notna()].groupby(["setting", "family"]):
        label, style = PAPER_STYLES.get(
            (setting, family), (f"paper: {setting}, {family}", dict(color="0.5", marker="x"))
        )
        group = group.sort_values("params")
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


def read_rankings(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate ``results/demos/<model>/<prompt>/ranking.tsv`` files (model and prompt
    from the path); missing files are skipped."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        frame = pd.read_csv(path, sep="\t")
        frame["model"], frame["prompt"] = path.parts[-3], path.parts[-2]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["model", "prompt", "candidate", "dev_spearman"])
    return pd.concat(frames, ignore_index=True)


def plot_demo_spread(
    rankings: pd.DataFrame,
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    params: dict[str, int] | None = None,
) -> None:
    """Per model (sorted by size), prompt and select choice: every candidate demonstration's
    STS-B dev Spearman (×100; raw correlations in [-1, 1] are scaled), the spread (box) and the
    chosen one (ringed: ``rank`` 1 when the file ranks them, else the best)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    if rankings.empty or "dev_spearman" not in rankings.columns:
        ax.text(
            0.5,
            0.5,
            "no demonstration rankings yet\n(results/demos/<model>/<prompt>/ranking.tsv "
            "appears once a study selects demos on STS-B dev)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
        )
        ax.set_axis_off()
        save(fig, png, pdf)
        return
    frame = rankings.copy()
    values = frame["dev_spearman"].astype(float)
    scale = 100.0 if values.abs().max() <= 1.0 else 1.0  # ranking files may store raw rho
    frame["dev"] = values * scale
    params = params or {}
    if "choice" not in frame.columns:  # one select choice per ranking file
        frame["choice"] = ""
    frame["choice"] = frame["choice"].fillna("").astype(str)
    groups = sorted(
        frame.groupby(["model", "prompt", "choice"]),
        key=lambda g: (params.get(g[0][0], 0), g[0]),
    )
    prompts = sorted(frame["prompt"].unique())
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(prompts)}
    rng = np.random.default_rng(0)
    ticks, labels = [], []
    for pos, ((model, prompt, choice), group) in enumerate(groups):
        y = group["dev"].to_numpy(float)
        chosen = (
            int(np.flatnonzero(group["rank"].to_numpy() == 1)[0])
            if "rank" in group.columns and (group["rank"] == 1).any()
            else int(np.nanargmax(y))
        )
        ax.boxplot([y], positions=[pos], widths=0.5, showfliers=False, manage_ticks=False)
        x = pos + rng.uniform(-0.15, 0.15, len(y))
        ax.scatter(
            x,
            y,
            s=12,
            alpha=0.6,
            color=colors[prompt],
            label=prompt if prompt not in ax.get_legend_handles_labels()[1] else None,
        )
        ax.scatter([x[chosen]], [y[chosen]], s=120, facecolors="none", edgecolors="red", lw=1.5)
        ax.annotate(
            f"spread {np.nanmax(y) - np.nanmin(y):.1f}",
            (pos, np.nanmax(y)),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
        ticks.append(pos)
        labels.append(f"{model}\n{prompt}" + (f" / {choice}" if choice else ""))
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_ylabel("STS-B dev Spearman ×100")
    ax.set_title("Demonstration choice: spread over candidates (red ring: chosen)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="prompt", fontsize=7)
    save(fig, png, pdf)


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


def write_all_plots(
    *,
    sts_csv: str | Path,
    transfer_csv: str | Path,
    cost_csv: str | Path,
    paper_csv: str | Path | None,
    tasks: Sequence[str],
    rankings: Iterable[str | Path],
    out: dict[str, dict[str, str]],
    params: dict[str, int] | None = None,
) -> None:
    """Every figure from the aggregate tables. ``out``: figure name (scaling_sts,
    scaling_transfer, tasks, demo_spread, cost) -> {png, pdf}."""
    from .aggregate import paper_results

    sts = pd.read_csv(sts_csv)
    transfer = pd.read_csv(transfer_csv)
    cost = pd.read_csv(cost_csv)
    paper = paper_results(paper_csv)
    if "scaling_sts" in out:
        plot_scaling(sts, STS_AVG, paper=paper, **out["scaling_sts"])
    if "scaling_transfer" in out:
        plot_scaling(transfer, TRANSFER_AVG, paper=paper, **out["scaling_transfer"])
    if "tasks" in out:
        plot_tasks(sts, transfer, tasks, paper=paper, **out["tasks"])
    if "demo_spread" in out:
        plot_demo_spread(read_rankings(rankings), params=params, **out["demo_spread"])
    if "cost" in out:
        plot_cost(cost, **out["cost"])
