"""Snakemake adapter: dev-score distribution of the candidates, per model (sentscale.demos)."""

from sentscale.demos import plot_dev_scores
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    plot_dev_scores(
        list(snakemake.input.selected),  # noqa: F821
        list(snakemake.input.rankings),  # noqa: F821
        snakemake.output[0],  # noqa: F821
        title=(
            f"prompt {snakemake.wildcards.prompt}, demos {snakemake.wildcards.demo}:\n"  # noqa: F821
            "STS-B dev score of every candidate demonstration"
        ),
    )
