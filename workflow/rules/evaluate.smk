# STS and transfer scoring read a cell's embeddings; neither loads a model.


rule evaluate_sts:
    input:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
    output:
        "results/scores/{model}/{prompt}/{demo}/{task}.json",
    log:
        "results/logs/evaluate/{model}/{prompt}/{demo}/{task}.log",
    wildcard_constraints:
        task=alternation(STS_TASKS),
    conda:
        "../envs/sentscale.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        evaluate=STUDY.evaluate.sts_params(),
        data=get_task_data,  # the task's files, by content
    script:
        "../scripts/evaluate.py"


rule evaluate_transfer:
    input:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
    output:
        "results/scores/{model}/{prompt}/{demo}/{task}.json",
    log:
        "results/logs/evaluate/{model}/{prompt}/{demo}/{task}.log",
    benchmark:
        # common.smk: the transfer tasks' benchmarks (get_evaluate_benchmarks) feed `cost`
        EVALUATE_BENCHMARK
    wildcard_constraints:
        task=alternation(TRANSFER_TASKS),
    conda:
        "../envs/sentscale.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=get_transfer_runtime,
    params:
        evaluate=STUDY.evaluate.to_dict(),
        data=get_task_data,  # the task's files, by content
    script:
        "../scripts/evaluate.py"
