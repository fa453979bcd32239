# Glue of rules/finetune.smk: the fine-tuning job's params and runtime.
from sentscale import finetune as sentscale_finetune


def finetune_params(wildcards):
    """Everything that determines an adapter; a change here retrains only that model."""
    return {
        "model": wildcards.model,
        "prompt": STUDY.prompts[STUDY.finetune_prompt].to_dict(),
        "recipe": dict(STUDY.finetune[wildcards.model]),
        "embed": {k: STUDY.embed.get(k) for k in ("device", "batch_size", "preprocess")},
        # the seed of the STS-B dev subsample scored at each checkpoint (evaluate.seed)
        "dev_seed": STUDY.evaluate.get("seed", 1111),
        "registry": dict(STUDY.registry),
    }


def finetune_scale(wildcards):
    """Training runtime in embed-job runtimes (sentscale.finetune.runtime_scale)."""
    return sentscale_finetune.runtime_scale(STUDY.finetune[wildcards.model])
