"""Snakemake adapter: choose one select cell's demonstration on STS-B dev (sentscale.demos)."""

from sentscale.context import JobContext
from sentscale.demos import select_demo_job

labelled = list(snakemake.input.candidates)

ctx = JobContext.from_params(snakemake.params.cell, threads=snakemake.threads, name="demos")
with ctx.logging_to(snakemake.log[0]):
    select_demo_job(
        ctx,
        snakemake.params.cell,
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_selected=snakemake.output.selected,
        out_ranking=snakemake.output.ranking,
        self_labelled_tsv=labelled[0] if labelled else None,
    )
