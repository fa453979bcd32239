# One job per cell: load the model once, embed every sentence the study's tasks score.


rule embed:
    input:
        model=get_provisioned_model,
        demos_file=get_selected_demo_file,  # [] unless the cell's demo is chosen on STS-B dev
        adapter=get_finetune_adapter,  # [] unless the cell is fine-tuned (demo `cse`)
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
    output:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
        meta="results/embeddings/{model}/{prompt}/{demo}.json",
    log:
        "results/logs/embed/{model}/{prompt}/{demo}.log",
    benchmark:
        "results/benchmarks/embed/{model}/{prompt}/{demo}.tsv"
    conda:
        "../envs/sentscale.yaml"
    threads: MODEL_THREADS
    resources:
        **get_model_resources(get_model_name),
    params:
        cell=get_embed_params,
    script:
        "../scripts/embed.py"
