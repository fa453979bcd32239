# STS and transfer scoring read a cell's embeddings; neither loads a model.


rule evaluate_sts:
    input:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
    output:
        "results/scores/{model}/{prompt}/{demo}/{task}.json",
    wildcard_constraints:
        task=_alternation(STS_TASKS),
    params:
        evaluate=STUDY.evaluate,
    log:
        "results/logs/evaluate/{model}/{prompt}/{demo}/{task}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_transfer:
    input:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
    output:
        "results/scores/{model}/{prompt}/{demo}/{task}.json",
    wildcard_constraints:
        task=_alternation(TRANSFER_TASKS),
    params:
        evaluate=STUDY.evaluate,
    log:
        "results/logs/evaluate/{model}/{prompt}/{demo}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{prompt}/{demo}/{task}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wildcards: 240 if STUDY.evaluate.get("transfer_mode") == "paper" else 30,
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/evaluate.py"
