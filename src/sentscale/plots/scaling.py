"""Score vs model size: the scaling figures (averages, and per task as small multiples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..aggregate import (  # noqa: E402
    BASELINE_PROMPT,
    CONFIRMATIONS,
    format_params,
    is_confirmed,
)
from ..errors import DataError  # noqa: E402
from .base import DODGE, YLABELS, _choice, _ci, _colors, _log_x, model_families, save  # noqa: E402

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
#: Our best cell's mark: a shape no series uses (families take FAMILY_MARKERS, the paper's
#: overlays PAPER_STYLES' markers, baselines a star), so it never reads as a data point.
PEAK_MARKER = "H"
#: One marker per model family (a line joins the sizes of one family only); none of them is
#: the paper's, the baselines' or the peak's.
FAMILY_MARKERS = ("o", "p", "P", "X", "8", "d", "<", ">")


def _family_markers(families: Mapping[str, str]) -> dict[str, str]:
    """family -> marker, in the order of the families' names."""
    names = sorted(set(families.values()))
    return {f: FAMILY_MARKERS[i % len(FAMILY_MARKERS)] for i, f in enumerate(names)}


def _draw_ours(
    ax,
    table: pd.DataFrame,
    column: str,
    colors,
    families: Mapping[str, str],
    *,
    mark_peak: bool,
):
    """Our lines and baselines (stars) on ``ax``: one line per model family and prompt/demo
    choice (colour: the choice; marker: the family), so models of different families are
    never joined. Returns the plotted (dodged) x of every LM cell,
    ``{(model, prompt, demo): x}``. No artist is labelled: :func:`_legend_handles` builds the
    legend (one entry per colour and per marker, not one per line)."""
    positions: dict[tuple[str, str, str], float] = {}
    if column not in table.columns:
        return positions
    lms = table[(table["prompt"] != BASELINE_PROMPT) & table[column].notna()]
    lms = lms.assign(family=[families[m] for m in lms["model"]])
    markers = _family_markers(families)
    choices = sorted({_choice(p, d) for p, d in zip(lms["prompt"], lms["demo"], strict=True)})
    for (family, prompt, demo), group in lms.groupby(["family", "prompt", "demo"], sort=True):
        group = group.sort_values("params")
        choice = _choice(prompt, demo)
        k = choices.index(choice)
        # dodge: choices at the same sizes are shifted apart a little (log x), so CIs stay legible
        shift = 10 ** (DODGE * (k - (len(choices) - 1) / 2))
        x, y = group["params"].to_numpy(float) * shift, group[column].to_numpy(float)
        cells = zip(group["model"], group["prompt"], group["demo"], strict=True)
        positions.update(zip(cells, x, strict=True))
        color = colors[choice]
        ax.plot(
            x, y, marker=markers[family], ls="-", color=color, lw=1.6, ms=6,
            gid=f"ours|{family}|{choice}",
        )  # fmt: skip
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
        if mark_peak and len(y) > 1:  # where scaling stops helping within the family
            i = int(np.nanargmax(y))
            ax.plot(x[i], y[i], "o", ms=13, mfc="none", mec=color, mew=1.8, gid="line peak")
    baselines = table[(table["prompt"] == BASELINE_PROMPT) & table[column].notna()]
    for index, row in baselines.iterrows():
        ax.plot(row["params"], row[column], "*", ms=13, color="black", gid="baseline")
        ci = _ci(baselines.loc[[index]], column)
        if ci is not None and np.isfinite(ci[0][0]):
            err = [[row[column] - ci[0][0]], [ci[1][0] - row[column]]]
            ax.errorbar(row["params"], row[column], yerr=err, fmt="none", ecolor="black", capsize=3)
    return positions


def _legend_handles(
    drawn: pd.DataFrame, colors, families: Mapping[str, str], *, rings: bool, peak: bool
) -> list[Line2D]:
    """Legend entries of our ``drawn`` cells: a colour per prompt/demo choice, a marker per
    model family, the baselines, the ring of a line's peak (``rings``: some line has one) and
    our best cell's mark (``peak``)."""
    lms = drawn[drawn["prompt"] != BASELINE_PROMPT]
    used = {_choice(p, d) for p, d in zip(lms["prompt"], lms["demo"], strict=True)}
    handles = [Line2D([], [], color=colors[c], lw=2, label=c) for c in sorted(used)]
    markers = _family_markers(families)
    handles += [
        Line2D([], [], ls="none", marker=markers[f], color="0.3", label=f"{f} (model family)")
        for f in sorted({families[m] for m in lms["model"]})
    ]
    handles += [
        Line2D([], [], ls="none", marker="*", ms=11, color="black", label=f"{m} (sentence encoder)")
        for m in dict.fromkeys(drawn.loc[drawn["prompt"] == BASELINE_PROMPT, "model"])
    ]
    if rings:
        handles.append(
            Line2D(
                [], [], ls="none", marker="o", ms=10, mfc="none", mec="0.3", mew=1.5,
                label="a line's peak (ring)",
            )
        )  # fmt: skip
    if peak and not lms.empty:
        handles.append(
            Line2D(
                [], [], ls="none", marker=PEAK_MARKER, ms=12, mfc="none", mec="black", mew=2,
                label="our best cell (hexagon)",
            )
        )  # fmt: skip
    return handles


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
    """Mark our best LM cell (:data:`PEAK_MARKER`, black) and return its description for the
    title."""
    lms = table[(table["prompt"] != BASELINE_PROMPT) & table[column].notna()]
    if lms.empty:
        return ""
    best = lms.loc[lms[column].idxmax()]
    x = positions.get((best["model"], best["prompt"], best["demo"]), best["params"])
    ax.plot(
        x, best[column], marker=PEAK_MARKER, ls="none", ms=20, mfc="none", mec="black", mew=2,
        zorder=4, gid="our peak",
    )  # fmt: skip
    ci = ""
    if f"{column} lo" in lms.columns and pd.notna(best.get(f"{column} lo")):
        ci = f" [{best[f'{column} lo']:.2f}, {best[f'{column} hi']:.2f}]"
    return (
        f"our best cell (black hexagon): {best['model']} ({format_params(best['params'])}),\n"
        f"{best['prompt']} / {best['demo']}: {best[column]:.2f}{ci}"
    )


def plot_scaling(
    table: pd.DataFrame,
    column: str,
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    paper: pd.DataFrame | None = None,
    families: Mapping[str, str] | None = None,
    title: str = "",
) -> None:
    """``column`` (``STS avg`` or ``transfer avg``) vs parameters, log x: a line per model
    family and prompt/demo choice (``families``: model -> family, see
    :func:`sentscale.plots.base.model_families`)."""
    families = model_families(table["model"], families)
    colors = _colors(_choice(p, d) for p, d in zip(table["prompt"], table["demo"], strict=True))
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    has_ours = column in table.columns and table[column].notna().any()
    peak = ""
    if has_ours:
        positions = _draw_ours(ax, table, column, colors, families, mark_peak=True)
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
    drawn = table[table[column].notna()] if has_ours else table.iloc[:0]
    rings = any(line.get_gid() == "line peak" for line in ax.get_lines())
    handles = _legend_handles(drawn, colors, families, rings=rings, peak=has_ours)
    handles += ax.get_legend_handles_labels()[0]  # the paper's overlays
    if handles:
        ax.legend(
            handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
            frameon=False,
        )  # fmt: skip
    save(fig, png, pdf)


#: Size of one panel of the per-task figure (inches): at least 3 x 3 for the axes themselves.
TASK_PANEL = (4.0, 3.7)


def plot_tasks(
    sts: pd.DataFrame,
    transfer: pd.DataFrame,
    tasks: Sequence[str],
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    paper: pd.DataFrame | None = None,
    families: Mapping[str, str] | None = None,
) -> None:
    """Small multiples: one panel per task (score vs parameters), STS tasks on the first
    row(s), transfer tasks on the next, at most four panels a row (14 tasks: a 4 x 4 grid)."""
    sts_panels = [(t, sts) for t in tasks if t in sts.columns]
    transfer_panels = [(t, transfer) for t in tasks if t in transfer.columns]
    families = model_families(pd.concat([sts["model"], transfer["model"]]), families)
    colors = _colors(
        _choice(p, d)
        for frame in (sts, transfer)
        for p, d in zip(frame["prompt"], frame["demo"], strict=True)
    )
    ncols = min(4, max(1, len(sts_panels), len(transfer_panels)))
    rows = [sts_panels[i : i + ncols] for i in range(0, len(sts_panels), ncols)]
    rows += [transfer_panels[i : i + ncols] for i in range(0, len(transfer_panels), ncols)]
    rows = rows or [[]]
    width, height = TASK_PANEL
    fig, axes = plt.subplots(
        len(rows),
        ncols,
        figsize=(width * ncols + 3.2, height * len(rows) + 0.6),  # + legend, + suptitle
        layout="constrained",
        squeeze=False,
    )
    for r, row in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            if c >= len(row):
                ax.set_visible(False)
                continue
            task, frame = row[c]
            _draw_ours(ax, frame, task, colors, families, mark_peak=False)
            _draw_paper(ax, paper, task, mark_peak=False, labels=True)
            _log_x(ax)
            kind = "STS" if frame is sts else "transfer"
            ax.set_title(f"{task} ({kind})", fontsize=11)
            ax.set_ylabel("Spearman ×100" if frame is sts else "accuracy %", fontsize=10)
            ax.set_xlabel("parameters", fontsize=10)
            ax.tick_params(labelsize=9)
    # one legend for the figure: our series (colours, family markers, baselines), then every
    # paper overlay any panel drew (each once)
    handles = _legend_handles(
        pd.concat([sts, transfer], ignore_index=True), colors, families, rings=False, peak=False
    )
    seen = {h.get_label() for h in handles}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in seen:
                handles.append(handle)
                seen.add(label)
    if handles:
        fig.legend(handles=handles, loc="outside right center", fontsize=9, frameon=False)
    fig.suptitle("Per-task scores vs model size (bars: bootstrap CI for STS)", fontsize=13)
    save(fig, png, pdf)
