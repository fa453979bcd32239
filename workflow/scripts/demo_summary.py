"""Snakemake adapter: chosen demonstrations and their gain over none (sentscale.demos)."""

from sentscale.demos import summary_rows, write_summary
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    rows = summary_rows(
        list(snakemake.input.selected),  # noqa: F821
        list(snakemake.input.scores),  # noqa: F821
        no_demo=snakemake.params.no_demo,  # noqa: F821
        tasks=snakemake.params.tasks,  # noqa: F821
    )
    write_summary(rows, csv=snakemake.output.csv, markdown=snakemake.output.markdown)  # noqa: F821
