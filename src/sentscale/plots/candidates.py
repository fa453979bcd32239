"""The candidate figure: every candidate demonstration's STS-B dev score, per model.

One drawing routine (:func:`plot_candidates`) serves the study's ``demo_spread`` figure
(:func:`plot_demo_spread`) and the per-selection figure of
:func:`sentscale.demos.plot_dev_scores`; what differs between them is a :class:`CandidateStyle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..demos.ranking import read_ranking  # noqa: E402
from ..models import params_of  # noqa: E402
from .base import NO_STAMP, save  # noqa: E402


def read_rankings(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate ``results/demos/<model>/<prompt>/ranking.tsv`` files (model and prompt
    from the path; each read by :func:`sentscale.demos.read_ranking`); missing files are
    skipped."""
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        frame = read_ranking(path)
        frame["model"], frame["prompt"] = path.parts[-3], path.parts[-2]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["model", "prompt", "candidate", "dev_spearman"])
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class CandidateColumn:
    """One x position of the candidate figure (:func:`plot_candidates`): ``values``, every
    candidate's STS-B dev Spearman x100, as dots over a box; ``chosen``, the chosen candidate
    (its index in ``values`` for a ``ring``, its score for a ``star``, see
    :class:`CandidateStyle`); ``legend``, the dots' legend label; ``baseline``, the score
    without a demonstration (a dashed bar) or None."""

    label: str
    values: np.ndarray
    chosen: float
    color: Any = "tab:blue"
    legend: str | None = None
    baseline: float | None = None


@dataclass(frozen=True)
class CandidateStyle:
    """What differs between the two candidate figures (the study's ``demo_spread`` and the
    per-selection ``results/demos/plots/<prompt>/<choice>.png``)."""

    title: str
    ylabel: str
    figsize: tuple[float, float]
    layout: str | None  # "constrained", or None: tight layout once drawn
    dot_size: float
    box_single: bool  # a box over a single candidate too
    chosen: str  # "ring" around the chosen dot, or "star" at the column's centre
    spread: bool  # annotate each column's max - min
    tick_fontsize: float
    xlim: bool  # half a column of margin on both sides
    title_fontsize: float | None  # None: matplotlib's default
    grid: bool
    legend: str  # "prompts" (the dots' labels and the ring, outside the axes) or "markers"
    # (candidate, chosen, none; where they cover the least data)
    dpi: int
    png_metadata: Mapping[str, Any] | None


#: The study's demo_spread figure.
SPREAD_STYLE = CandidateStyle(
    title="Demonstration choice: spread over candidates (red ring: chosen)",
    ylabel="STS-B dev Spearman ×100",
    figsize=(9, 4.8),
    layout="constrained",
    dot_size=12,
    box_single=True,
    chosen="ring",
    spread=True,
    tick_fontsize=8,
    xlim=False,
    title_fontsize=None,
    grid=True,
    legend="prompts",
    dpi=150,
    png_metadata=NO_STAMP,
)


def dev_scores_style(n_columns: int, title: str | None = None) -> CandidateStyle:
    """The per-selection figure (workflow rule ``demo_plot``); its PNG keeps matplotlib's
    "Software" entry and 120 dpi, as it always had (byte-identical outputs)."""
    return CandidateStyle(
        title=title or "demonstration choice: dev score of every candidate",
        ylabel="STS-B dev Spearman x100",
        figsize=(max(5.0, 2.4 + 1.6 * n_columns), 4.5),
        layout=None,
        dot_size=14,
        box_single=False,
        chosen="star",
        spread=False,
        tick_fontsize=8,
        xlim=True,
        title_fontsize=10,
        grid=False,
        legend="markers",
        dpi=120,
        png_metadata=None,
    )


def plot_candidates(
    columns: Sequence[CandidateColumn],
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    style: CandidateStyle,
) -> None:
    """Every candidate demonstration's STS-B dev score, one column per model (and prompt or
    choice): jittered dots (seeded) over a box, the chosen one marked, optional baseline bars
    and spread annotations."""
    fig, ax = plt.subplots(figsize=style.figsize, layout=style.layout)
    rng = np.random.default_rng(0)
    for pos, column in enumerate(columns):
        y = np.asarray(column.values, dtype=float)
        if style.box_single or len(y) > 1:
            ax.boxplot([y], positions=[pos], widths=0.5, showfliers=False, manage_ticks=False)
        x = pos + rng.uniform(-0.15, 0.15, len(y))
        ax.scatter(x, y, s=style.dot_size, alpha=0.6, color=column.color, label=column.legend)
        if style.chosen == "ring":
            i = int(column.chosen)
            ax.scatter([x[i]], [y[i]], s=120, facecolors="none", edgecolors="red", lw=1.5)
        else:
            ax.scatter([pos], [column.chosen], marker="*", s=160, color="tab:red", zorder=3)
        if column.baseline is not None:
            ax.hlines(column.baseline, pos - 0.3, pos + 0.3, colors="k", lw=2, ls="--")
        if style.spread:
            ax.annotate(
                f"spread {np.nanmax(y) - np.nanmin(y):.1f}",
                (pos, np.nanmax(y)),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
    if style.spread:  # headroom above the highest dot, so every label stays inside the frame
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.15 * (high - low))
    ax.set_xticks(range(len(columns)), [c.label for c in columns], fontsize=style.tick_fontsize)
    if style.xlim:
        ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylabel(style.ylabel)
    if style.title_fontsize is None:
        ax.set_title(style.title)
    else:
        ax.set_title(style.title, fontsize=style.title_fontsize)
    if style.grid:
        ax.grid(True, axis="y", alpha=0.3)
    if style.legend == "prompts":
        # outside the axes: inside, it covers dots (the chosen one sits at a column's top)
        ring = plt.Line2D(
            [], [], ls="", marker="o", ms=10, mfc="none", mec="red", mew=1.5, label="chosen"
        )
        handles = [*ax.get_legend_handles_labels()[0], ring]
        ax.legend(
            handles=handles, title="prompt", fontsize=8, loc="upper left",
            bbox_to_anchor=(1.01, 1.0), frameon=False,
        )  # fmt: skip
    else:
        handles = [
            plt.Line2D([], [], marker="o", ls="", color="tab:blue", alpha=0.6, label="candidate"),
            plt.Line2D([], [], marker="*", ls="", ms=12, color="tab:red", label="chosen"),
            plt.Line2D([], [], color="k", lw=2, ls="--", label="no demonstration"),
        ]
        ax.legend(handles=handles, fontsize=8, loc="best")
    if style.layout is None:
        fig.tight_layout()
    save(fig, png, pdf, dpi=style.dpi, png_metadata=style.png_metadata)


def plot_demo_spread(
    rankings: pd.DataFrame,
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    sizes: Mapping[str, int],
) -> None:
    """Per model (sorted by size: ``sizes``, model -> parameter count), prompt and select
    choice: every candidate demonstration's STS-B dev Spearman (x100; raw correlations in
    [-1, 1] are scaled), the spread (box) and the chosen one (ringed: ``rank`` 1 when the file
    ranks them, else the best)."""
    if rankings.empty or "dev_spearman" not in rankings.columns:
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
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
    if "choice" not in frame.columns:  # one select choice per ranking file
        frame["choice"] = ""
    frame["choice"] = frame["choice"].fillna("").astype(str)
    groups = sorted(
        frame.groupby(["model", "prompt", "choice"]),
        key=lambda g: (params_of(g[0][0], sizes), g[0]),
    )
    prompts = sorted(frame["prompt"].unique())
    colors = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(prompts)}
    columns, labelled = [], set()
    for (model, prompt, choice), group in groups:
        y = group["dev"].to_numpy(float)
        chosen = (
            int(np.flatnonzero(group["rank"].to_numpy() == 1)[0])
            if "rank" in group.columns and (group["rank"] == 1).any()
            else int(np.nanargmax(y))
        )
        columns.append(
            CandidateColumn(
                label=f"{model}\n{prompt}" + (f" / {choice}" if choice else ""),
                values=y,
                chosen=chosen,
                color=colors[prompt],
                legend=None if prompt in labelled else prompt,  # one legend entry per prompt
            )
        )
        labelled.add(prompt)
    plot_candidates(columns, png, pdf, style=SPREAD_STYLE)
