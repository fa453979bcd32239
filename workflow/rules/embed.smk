rule embed:
    input:
        model=provisioned,
        demos_file=selected_demo_file,  # [] unless the cell's demo is chosen on STS-B dev
        adapter=finetune_adapter,  # [] unless the cell is fine-tuned (demo `cse`)
    output:
        embeddings="results/embeddings/{model}/{prompt}/{demo}.npz",
        meta="results/embeddings/{model}/{prompt}/{demo}.json",
    params:
        cell=embed_params,
    log:
        "results/logs/embed/{model}/{prompt}/{demo}.log",
    benchmark:
        "results/benchmarks/embed/{model}/{prompt}/{demo}.tsv"
    threads: STUDY.embed.get("threads", 2)
    resources:
        **model_resources(lambda wildcards: wildcards.model),
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/embed.py"
