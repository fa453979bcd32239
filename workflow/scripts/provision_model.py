"""Snakemake adapter: provision one model into the models folder (idempotent)."""

from sentscale.context import JobContext
from sentscale.provision import provision

ctx = JobContext.from_params(snakemake.params, name="provision")
with ctx.logging_to(snakemake.log[0]):
    provision(ctx.registry[snakemake.wildcards.model], snakemake.params.models_dir)
