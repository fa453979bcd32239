"""Snakemake adapter: self-label demonstration candidates (see sentscale.demos)."""

from sentscale.demos import label_candidates_job
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    label_candidates_job(
        snakemake.wildcards.labeller,
        snakemake.params.labelled,
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_tsv=snakemake.output.tsv,
        out_meta=snakemake.output.meta,
        embed_options=snakemake.params.embed,
        registry=snakemake.params.registry,
        threads=snakemake.threads,
    )
