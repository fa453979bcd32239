"""Snakemake adapter: choose one select cell's demonstration on STS-B dev (sentscale.demos)."""

from sentscale.demos import select_demo_job
from sentscale.logs import log_to

labelled = list(snakemake.input.candidates)  # noqa: F821 - injected by Snakemake

with log_to(snakemake.log[0]):  # noqa: F821
    select_demo_job(
        snakemake.params.cell,  # noqa: F821
        data_dir=snakemake.config["data_dir"],  # noqa: F821
        models_dir=snakemake.config["models_dir"],  # noqa: F821
        out_selected=snakemake.output.selected,  # noqa: F821
        out_ranking=snakemake.output.ranking,  # noqa: F821
        self_labelled_tsv=labelled[0] if labelled else None,
        threads=snakemake.threads,  # noqa: F821
    )
