"""Snakemake adapter: provision one model into the models folder (idempotent)."""

from sentscale import models, provision
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    models.load_registry(snakemake.params.registry)
    provision.provision(snakemake.wildcards.model, snakemake.params.models_dir)
