"""Snakemake adapter: self-label demonstration candidates (see sentscale.demos)."""

from sentscale.context import JobContext
from sentscale.demos import label_candidates_job

ctx = JobContext.from_params(snakemake.params, threads=snakemake.threads, name="demos")
with ctx.logging_to(snakemake.log[0]):
    label_candidates_job(
        ctx,
        snakemake.wildcards.labeller,
        snakemake.params.labelled,
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_tsv=snakemake.output.tsv,
        out_meta=snakemake.output.meta,
        embed_options=snakemake.params.embed,
    )
