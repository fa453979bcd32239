"""Figures of a study, drawn from the tables of ``sentscale.aggregate`` (PNG + PDF each).

- :func:`plot_scaling`  STS or transfer average vs parameter count (log x): one line per
  prompt/demonstration choice with its bootstrap CI band, baselines as stars, the paper's
  reported points as an overlay (hollow, unjoined markers for the rows no table confirms), each
  line's peak marked.
- :func:`plot_tasks`    the same per task, as small multiples.
- :func:`plot_demo_spread`  how much the choice of demonstration matters: STS-B dev Spearman of
  every candidate per model (``results/demos/<model>/<prompt>/ranking.tsv``); a placeholder
  figure when no rankings exist.
- :func:`plot_candidates`  the candidate figure itself, shared by ``plot_demo_spread`` and the
  per-selection figure of :func:`sentscale.demos.plot_dev_scores` (their differences are
  :class:`CandidateStyle` fields).
- :func:`plot_cost`     cost vs score: throughput, peak memory and wall time per cell.

Modules: ``base`` (saving, colours, axes), ``scaling``, ``candidates``, ``cost``, ``figures``
(:func:`plots_job`). Output is byte-stable for equal input (no timestamps in the files).
"""

import matplotlib

matplotlib.use("Agg")  # before any submodule imports pyplot

from .base import DODGE, NO_STAMP, YLABELS, save  # noqa: E402
from .candidates import (  # noqa: E402
    SPREAD_STYLE,
    CandidateColumn,
    CandidateStyle,
    dev_scores_style,
    plot_candidates,
    plot_demo_spread,
    read_rankings,
)
from .cost import MODEL_MARKERS, plot_cost  # noqa: E402
from .figures import plots_job  # noqa: E402
from .scaling import PAPER_STYLES, UNCONFIRMED_LABEL, plot_scaling, plot_tasks  # noqa: E402

__all__ = [
    "DODGE",
    "MODEL_MARKERS",
    "NO_STAMP",
    "PAPER_STYLES",
    "SPREAD_STYLE",
    "UNCONFIRMED_LABEL",
    "YLABELS",
    "CandidateColumn",
    "CandidateStyle",
    "dev_scores_style",
    "plot_candidates",
    "plot_cost",
    "plot_demo_spread",
    "plot_scaling",
    "plot_tasks",
    "read_rankings",
    "save",
    "plots_job",
]
