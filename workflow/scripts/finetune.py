"""Snakemake adapter: contrastive LoRA fine-tuning of one model (sentscale.finetune)."""

from sentscale.context import JobContext
from sentscale.finetune import finetune_job

ctx = JobContext.from_params(snakemake.params.job, threads=snakemake.threads, name="finetune")
with ctx.logging_to(snakemake.log[0]):
    finetune_job(
        ctx,
        snakemake.params.job,
        triplets_path=snakemake.config["finetune"]["data"],
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_adapter=snakemake.output.adapter,
        out_log=snakemake.output.train,
        log_file=snakemake.log[0],
    )
