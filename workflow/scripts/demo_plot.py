"""Snakemake adapter: dev-score distribution of the candidates, per model (sentscale.demos)."""

from sentscale.demos import plot_dev_scores
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    plot_dev_scores(
        list(snakemake.input.selected),
        list(snakemake.input.rankings),
        snakemake.output[0],
        sizes=snakemake.params.model_params,
        title=(
            f"prompt {snakemake.wildcards.prompt}, demos {snakemake.wildcards.demo}:\n"
            "STS-B dev score of every candidate demonstration"
        ),
    )
