"""Snakemake adapter: one ranking table per model and prompt (sentscale.demos)."""

from sentscale.demos import merge_rankings
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    merge_rankings(
        list(snakemake.input),  # noqa: F821
        snakemake.params.choices,  # noqa: F821
        snakemake.output[0],  # noqa: F821
    )
