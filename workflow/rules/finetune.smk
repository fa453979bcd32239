# Contrastive LoRA fine-tuning (PromptEOL+CSE, sentscale.finetune), for the models listed in
# the config's `finetune.models`. One job per model trains on the NLI triplets of
# `finetune.data` (read by the script from the config, like data_dir: moving the file reruns
# nothing; its sha256 is in train.json), keeps the best checkpoint on STS-B dev and writes
#   results/finetune/<model>/adapter/     the LoRA adapter (peft) + sentscale-finetune.json
#   results/finetune/<model>/train.json   loss per step, dev Spearman per checkpoint, best step
# The tuned model is then an ordinary cell (<model>, <finetune.prompt>, cse): the embed rule
# applies the adapter (common.smk: finetune_adapter), evaluate/aggregate/track as any cell.


include: "finetune_common.smk"


rule finetune:
    input:
        model=provisioned,
    output:
        adapter=directory("results/finetune/{model}/adapter"),
        train="results/finetune/{model}/train.json",
    wildcard_constraints:
        model=_alternation(sorted(STUDY.finetune)),
    params:
        job=finetune_params,
    log:
        "results/logs/finetune/{model}.log",
    benchmark:
        "results/benchmarks/finetune/{model}.tsv"
    threads: STUDY.embed.get("threads", 2)
    resources:
        **model_resources(lambda wildcards: wildcards.model, scale=finetune_scale),
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/finetune.py"
