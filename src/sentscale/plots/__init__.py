"""Figures of a study, drawn from the tables of ``sentscale.aggregate`` (PNG + PDF each).

- :func:`plot_scaling`  STS or transfer average vs parameter count (log x): one line per model
  family and prompt/demonstration choice (colour: the choice, marker: the family; models of
  different families are never joined) with its bootstrap CI band, baselines as stars, the
  paper's reported points as an overlay (hollow, unjoined markers for the rows no table
  confirms), each line's peak ringed and our best cell marked with :data:`PEAK_MARKER`, a
  shape no series uses.
- :func:`plot_tasks`    the same per task, as a grid of small multiples (STS rows, then
  transfer rows; panels of at least 3 x 3 inches).
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

from .base import DODGE, NO_STAMP, YLABELS, model_families, save  # noqa: E402
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
from .scaling import (  # noqa: E402
    FAMILY_MARKERS,
    PAPER_STYLES,
    PEAK_MARKER,
    UNCONFIRMED_LABEL,
    plot_scaling,
    plot_tasks,
)

__all__ = [
    "DODGE",
    "FAMILY_MARKERS",
    "MODEL_MARKERS",
    "NO_STAMP",
    "PAPER_STYLES",
    "PEAK_MARKER",
    "SPREAD_STYLE",
    "UNCONFIRMED_LABEL",
    "YLABELS",
    "CandidateColumn",
    "CandidateStyle",
    "dev_scores_style",
    "model_families",
    "plot_candidates",
    "plot_cost",
    "plot_demo_spread",
    "plot_scaling",
    "plot_tasks",
    "read_rankings",
    "save",
    "plots_job",
]
