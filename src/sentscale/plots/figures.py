"""Every figure of a study from the aggregate tables (the workflow's ``plots`` rule)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..aggregate import STS_AVG, TRANSFER_AVG
from .candidates import plot_demo_spread, read_rankings
from .cost import plot_cost
from .scaling import plot_scaling, plot_tasks


def plots_job(
    *,
    sts_csv: str | Path,
    transfer_csv: str | Path,
    cost_csv: str | Path,
    paper_csv: str | Path | None,
    tasks: Sequence[str],
    rankings: Iterable[str | Path],
    out: dict[str, dict[str, str]],
    sizes: Mapping[str, int],
    families: Mapping[str, str] | None = None,
) -> None:
    """The ``plots`` rule: every figure from the aggregate tables. ``sizes``: model ->
    parameter count, ``families``: model -> model family (the study's registry; None: the
    packaged registry's); a scaling line joins the sizes of one family. ``out``: figure name
    (scaling_sts, scaling_transfer, tasks, demo_spread, cost) -> {png, pdf}."""
    from ..aggregate import paper_results

    sts = pd.read_csv(sts_csv)
    transfer = pd.read_csv(transfer_csv)
    cost = pd.read_csv(cost_csv)
    paper = paper_results(paper_csv)
    if "scaling_sts" in out:
        plot_scaling(sts, STS_AVG, paper=paper, families=families, **out["scaling_sts"])
    if "scaling_transfer" in out:
        plot_scaling(
            transfer, TRANSFER_AVG, paper=paper, families=families, **out["scaling_transfer"]
        )
    if "tasks" in out:
        plot_tasks(sts, transfer, tasks, paper=paper, families=families, **out["tasks"])
    if "demo_spread" in out:
        plot_demo_spread(read_rankings(rankings), sizes=sizes, **out["demo_spread"])
    if "cost" in out:
        plot_cost(cost, **out["cost"])
