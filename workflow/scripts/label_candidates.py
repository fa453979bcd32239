"""Snakemake adapter: self-label demonstration candidates (see sentscale.demos)."""

from sentscale.demos import label_candidates_job
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    label_candidates_job(
        snakemake.wildcards.labeller,  # noqa: F821
        snakemake.params.labelled,  # noqa: F821
        data_dir=snakemake.config["data_dir"],  # noqa: F821
        models_dir=snakemake.config["models_dir"],  # noqa: F821
        out_tsv=snakemake.output.tsv,  # noqa: F821
        out_meta=snakemake.output.meta,  # noqa: F821
        embed_options=snakemake.params.embed,  # noqa: F821
        registry=snakemake.params.registry,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
