"""Snakemake adapter: collect score files into tables (CSV, Markdown, LaTeX)."""

from sentscale.aggregate import write_score_tables
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    write_score_tables(
        snakemake.input.scores,  # noqa: F821
        tasks=snakemake.params.tasks,  # noqa: F821
        csv=snakemake.output.csv,  # noqa: F821
        markdown=snakemake.output.markdown,  # noqa: F821
        latex=snakemake.output.latex,  # noqa: F821
    )
