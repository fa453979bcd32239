"""Tables from score files (the files are the source of truth; MLflow is only a view).

One row per cell (model, prompt, demo), one column per task, plus the STS and transfer
averages over the tasks present. Averages follow the paper's tables (SimCSE): every task score
rounded to two decimals, then the mean rounded to two decimals. Rows are sorted by model size,
then prompt and demonstration names.

Uncertainty: every STS score file keeps its scored pairs (``pairs``: system cosine and gold
score, see ``sentscale.sts``), so confidence intervals come from a percentile bootstrap over
pairs: ``resamples`` (>= 1000) resamples of the pairs with replacement, Spearman recomputed on
each. The resample indices depend only on (seed, task, number of pairs), so every cell scored
on the same pairs sees the *same* resamples: a difference between two cells is a paired
bootstrap (the "does scale help" table), and the CI of an average uses, for each resample, the
mean over tasks of that resample's scores. Transfer scores come from cross-validated
classifiers and get no bootstrap CI.

The paper's reported figures ship in ``resources/paper_results.csv`` (with their source and how
each row was confirmed); where a reproduced cell has a paper counterpart, :func:`gap_table` shows
ours, theirs and the delta; :func:`gap_headline` summarises it over confirmed figures only.

Modules: ``scores`` (score files, the overview table, averages), ``bootstrap`` (CIs, paired
comparisons), ``tables`` (STS, transfer, scale), ``paper`` (reported figures, the gap), ``cost``
(cost per cell), ``output`` (writing every table), ``report`` (what ``snakemake --report``
shows: order, labels, a rule graph with one node per rule).
"""

from __future__ import annotations

from .bootstrap import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    CellBootstrap,
    bootstrap_all,
    bootstrap_cell,
    bootstrap_spearman,
    compare_samples,
    paired_bootstrap,
    percentile_ci,
    resample_indices,
    verdict,
)
from .cost import cost_table, read_benchmark
from .output import (
    aggregate_job,
    subsample_note,
    with_ci_text,
    write_score_tables,
    write_table,
)
from .paper import (
    AVERAGED,
    CONFIRMATIONS,
    UNCONFIRMED,
    gap_caption,
    gap_explanation,
    gap_headline,
    gap_table,
    is_confirmed,
    paper_results,
    paper_results_sha256,
    paper_setting,
)
from .report import (
    REPORT_CATEGORIES,
    REPORT_FIGURES,
    REPORT_TABLES,
    report_labels,
    rule_graph_spec,
    use_rule_graph_spec,
)
from .scores import (
    BASELINE_PROMPT,
    CELL_COLUMNS,
    CELL_KEYS,
    STS_AVG,
    TRANSFER_AVG,
    cell_of,
    format_params,
    load_scores,
    paper_average,
    params_of,
    read_results,
    score_table,
)
from .tables import scale_table, sts_table, transfer_table

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "AVERAGED",
    "BASELINE_PROMPT",
    "Bootstrap",
    "CELL_COLUMNS",
    "CELL_KEYS",
    "CellBootstrap",
    "CONFIRMATIONS",
    "REPORT_CATEGORIES",
    "REPORT_FIGURES",
    "REPORT_TABLES",
    "UNCONFIRMED",
    "STS_AVG",
    "TRANSFER_AVG",
    "bootstrap_all",
    "bootstrap_cell",
    "bootstrap_spearman",
    "cell_of",
    "compare_samples",
    "cost_table",
    "format_params",
    "gap_caption",
    "gap_explanation",
    "gap_headline",
    "gap_table",
    "is_confirmed",
    "load_scores",
    "paired_bootstrap",
    "paper_average",
    "paper_results",
    "paper_results_sha256",
    "paper_setting",
    "params_of",
    "percentile_ci",
    "read_benchmark",
    "read_results",
    "report_labels",
    "rule_graph_spec",
    "resample_indices",
    "scale_table",
    "score_table",
    "subsample_note",
    "sts_table",
    "transfer_table",
    "use_rule_graph_spec",
    "verdict",
    "with_ci_text",
    "aggregate_job",
    "write_score_tables",
    "write_table",
]
