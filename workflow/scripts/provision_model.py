"""Snakemake adapter: provision one model into models_dir, write the study's record of it
(see sentscale.provision.provision_job). models_dir and the registry come from the config, as
data_dir does: the params hold only the model's identity, so neither a moved models_dir nor
another model's registry entry reruns this job."""

from sentscale.context import JobContext
from sentscale.models import Registry
from sentscale.provision import provision_job

ctx = JobContext(Registry.load(snakemake.config.get("registry")), name="provision")
with ctx.logging_to(snakemake.log[0]):
    provision_job(
        ctx.registry[snakemake.wildcards.model],
        snakemake.params.identity,
        models_dir=snakemake.config["models_dir"],
        record=snakemake.output[0],
    )
