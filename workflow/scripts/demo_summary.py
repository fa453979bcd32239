"""Snakemake adapter: chosen demonstrations and their gain over none (sentscale.demos)."""

from sentscale.demos import summary_rows, write_summary
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    rows = summary_rows(
        list(snakemake.input.selected),
        list(snakemake.input.scores),
        no_demo=snakemake.params.no_demo,
        tasks=snakemake.params.tasks,
        sizes=snakemake.params.model_params,
    )
    write_summary(rows, csv=snakemake.output.csv, markdown=snakemake.output.markdown)
