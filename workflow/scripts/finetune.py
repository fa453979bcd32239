"""Snakemake adapter: contrastive LoRA fine-tuning of one model (sentscale.finetune)."""

from sentscale.finetune import finetune_model
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    finetune_model(
        snakemake.params.job,
        triplets_path=snakemake.config["finetune"]["data"],
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_adapter=snakemake.output.adapter,
        out_log=snakemake.output.train,
        threads=snakemake.threads,
    )
