"""Snakemake adapter: contrastive LoRA fine-tuning of one model (sentscale.finetune)."""

from sentscale.finetune import finetune_model
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    finetune_model(
        snakemake.params.job,  # noqa: F821
        triplets_path=snakemake.config["finetune"]["data"],  # noqa: F821
        data_dir=snakemake.config["data_dir"],  # noqa: F821
        models_dir=snakemake.config["models_dir"],  # noqa: F821
        out_adapter=snakemake.output.adapter,  # noqa: F821
        out_log=snakemake.output.train,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
    )
