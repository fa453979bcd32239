# Contrastive LoRA fine-tuning (PromptEOL+CSE, sentscale.finetune), for the models listed in
# the config's `finetune.models`. One job per model trains on the NLI triplets of
# `finetune.data` (read by the script from the config, like data_dir: moving the file reruns
# nothing; its sha256 is in train.json), keeps the best checkpoint on STS-B dev and writes
#   results/finetune/<model>/adapter/     the LoRA adapter (peft) + sentscale-finetune.json
#   results/finetune/<model>/train.json   loss per step, dev Spearman per checkpoint, best step
# The tuned model is then an ordinary cell (<model>, <finetune.prompt>, cse): the embed rule
# applies the adapter (common.smk: get_finetune_adapter), evaluate/aggregate/track as any cell.
# A recipe with world_size N asks for N GPUs: the script spawns one process per GPU
# (sentscale.finetune.distributed), as the original's `torchrun --nproc_per_node=N`.


rule finetune:
    input:
        model=get_provisioned_model,
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
        triplets=get_nli_input,  # [] unless rules/fetch.smk provides finetune.data
    output:
        adapter=directory("results/finetune/{model}/adapter"),
        train="results/finetune/{model}/train.json",
    log:
        "results/logs/finetune/{model}.log",
    benchmark:
        "results/benchmarks/finetune/{model}.tsv"
    wildcard_constraints:
        model=alternation(sorted(STUDY.finetune)),
    conda:
        "../envs/sentscale.yaml"
    threads: MODEL_THREADS
    resources:
        **get_finetune_resources(),
    params:
        job=get_finetune_params,
    script:
        "../scripts/finetune.py"
