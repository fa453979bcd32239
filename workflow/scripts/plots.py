"""Snakemake adapter: the study's figures (PNG + PDF) from the aggregate tables."""

from sentscale.logs import log_to
from sentscale.plots import plots_job

with log_to(snakemake.log[0]):
    output = snakemake.output
    plots_job(
        sts_csv=snakemake.input.sts,
        transfer_csv=snakemake.input.transfer,
        cost_csv=snakemake.input.cost,
        paper_csv=None,
        tasks=snakemake.params.tasks,
        rankings=list(snakemake.input.rankings),
        sizes=snakemake.params.model_params,
        families=snakemake.params.model_families,
        out={
            name: {"png": output[f"{name}_png"], "pdf": output[f"{name}_pdf"]}
            for name in snakemake.params.figures
        },
    )
