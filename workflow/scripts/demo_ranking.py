"""Snakemake adapter: one ranking table per model and prompt (sentscale.demos)."""

from sentscale.demos import merge_rankings
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    merge_rankings(
        list(snakemake.input),
        snakemake.params.choices,
        snakemake.output[0],
    )
