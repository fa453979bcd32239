"""Snakemake adapter: choose one select cell's demonstration on STS-B dev (sentscale.demos)."""

from sentscale.demos import select_demo_job
from sentscale.logs import log_to

labelled = list(snakemake.input.candidates)

with log_to(snakemake.log[0]):
    select_demo_job(
        snakemake.params.cell,
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_selected=snakemake.output.selected,
        out_ranking=snakemake.output.ranking,
        self_labelled_tsv=labelled[0] if labelled else None,
        threads=snakemake.threads,
    )
