"""Snakemake adapter: the study's figures (PNG + PDF) from the aggregate tables."""

from sentscale.logs import log_to
from sentscale.plots import write_all_plots

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    output = snakemake.output  # noqa: F821
    write_all_plots(
        sts_csv=snakemake.input.sts,  # noqa: F821
        transfer_csv=snakemake.input.transfer,  # noqa: F821
        cost_csv=snakemake.input.cost,  # noqa: F821
        paper_csv=None,
        tasks=snakemake.params.tasks,  # noqa: F821
        rankings=list(snakemake.input.rankings),  # noqa: F821
        params=snakemake.params.model_params,  # noqa: F821
        out={
            name: {"png": output[f"{name}_png"], "pdf": output[f"{name}_pdf"]}
            for name in snakemake.params.figures  # noqa: F821
        },
    )
