# MLflow tracking, a view of the files (they stay the source of truth; see sentscale.track).
# mlflow_parent (local, upstream of every tracking job) creates the store (a sqlite file
# atomically; a half-created one is rebuilt), the study's experiment and the sweep's parent
# run once; track_cell logs one cell as a child run (waiting while the store is locked);
# track_summary, once every cell is tracked and the tables and figures exist, puts the
# study's summary metrics, figures and tables on the parent run and prints its runs URL.
# Reruns resume the same runs (deterministic run keys), never add new ones.
# The tracking settings (TRACKING_*) are read and checked in common.smk.


localrules:
    mlflow_parent,


rule mlflow_parent:
    output:
        "results/tracking/parent.json",
    log:
        "results/logs/track/parent.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        study=STUDY.name,
        experiment=TRACKING_EXPERIMENT,
        # a changed store reruns the sweep rule (and so every track_cell); only a URI
        # check_uri accepted (common.smk: no credentials, no secret query) gets here
        uri=TRACKING_URI,
        # what every cell of the sweep shares: a change starts a new parent run
        sweep={
            "tasks": list(STUDY.tasks),
            "embed": STUDY.embed.to_dict(),
            "evaluate": STUDY.evaluate.to_dict(),
            "registry": dict(STUDY.registry_overrides),
        },
    script:
        "../scripts/track_parent.py"


rule track_cell:
    input:
        sweep="results/tracking/parent.json",
        scores=get_cell_scores,
        meta="results/embeddings/{model}/{prompt}/{demo}.json",
        embed_benchmark="results/benchmarks/embed/{model}/{prompt}/{demo}.tsv",
        evaluate_benchmarks=get_evaluate_benchmarks,
        # a `select` cell's demo choice: its candidate ranking and the chosen demo
        demos=get_cell_demo_files,
        # a fine-tuned cell's training log: loss and STS-B dev curves (rules/finetune.smk)
        training=get_cell_training,
    output:
        "results/tracking/{model}/{prompt}/{demo}.json",
    log:
        "results/logs/track/{model}/{prompt}/{demo}.log",
    localrule: TRACKING_LOCAL
    conda:
        "../envs/sentscale.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        cell=get_embed_params,
        bootstrap=STUDY.aggregate.to_dict(),
        # the run's name: `<alias> <prompt>/<demo>` (common.smk: MODEL_ALIASES)
        alias=get_model_alias,
    script:
        "../scripts/track_cell.py"


# Local whatever the store: it is light (a table, a few figures), and the runs URL it prints
# should reach the console of the machine that started the run, not a cluster job's log.
rule track_summary:
    input:
        sweep="results/tracking/parent.json",
        cells=get_tracked_cells(),
        scores="results/tables/scores.csv",
        # every table and figure, logged as artifacts of the parent run (plots/, tables/)
        files=get_aggregate_outputs(),
    output:
        "results/tracking/summary.json",
    log:
        "results/logs/track/summary.log",
    localrule: True
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/track_summary.py"
