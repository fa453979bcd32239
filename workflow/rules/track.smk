# MLflow tracking, a view of the files (they stay the source of truth; see sentscale.track).
# mlflow_parent (local, upstream of every tracking job) creates the store, the study's
# experiment and the sweep's parent run once; track_cell logs one cell as a child run.
# Reruns resume the same runs (deterministic run keys), never add new ones.
import os

from sentscale import track as sentscale_track

TRACKING = dict(config.get("tracking") or {})
TRACKING_URI = TRACKING.get("uri") or os.environ.get("MLFLOW_TRACKING_URI")
try:  # credentials never go into params or logs: MLflow reads them from its env variables
    sentscale_track.check_uri(TRACKING_URI)
except SentscaleError as err:
    raise WorkflowError(str(err)) from None
# sqlite / file stores are written from this machine only (no concurrent cluster writers on
# a network file system); with a server URI the jobs log over HTTP from wherever they run.
TRACKING_LOCAL = TRACKING_URI is None or sentscale_track.is_local_store(TRACKING_URI)
# What `rule all` needs from this file (nothing when tracking.enabled is false).
TRACKING_OUTPUTS = (
    [f"results/tracking/{cell.path}.json" for cell in CELLS]
    if TRACKING.get("enabled", True)
    else []
)
SELECT_CELL_PATHS = {cell.path for cell in STUDY.selection_cells()}


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
        experiment=TRACKING.get("experiment") or STUDY.name,
        uri=TRACKING_URI,
        # what every cell of the sweep shares: a change starts a new parent run
        sweep={
            "tasks": list(STUDY.tasks),
            "embed": dict(STUDY.embed),
            "evaluate": dict(STUDY.evaluate),
            "registry": dict(STUDY.registry),
        },
    script:
        "../scripts/track_parent.py"


rule track_cell:
    input:
        sweep="results/tracking/parent.json",
        scores=lambda wildcards: [
            f"results/scores/{wildcards.model}/{wildcards.prompt}/{wildcards.demo}/{task}.json"
            for task in STUDY.tasks
        ],
        meta="results/embeddings/{model}/{prompt}/{demo}.json",
        embed_benchmark="results/benchmarks/embed/{model}/{prompt}/{demo}.tsv",
        evaluate_benchmarks=lambda wildcards: [
            path
            for path in EVALUATE_BENCHMARKS
            if path.startswith(
                f"results/benchmarks/evaluate/{wildcards.model}/{wildcards.prompt}/{wildcards.demo}/"
            )
        ],
        # a `select` cell's demo choice: its candidate ranking and the chosen demo
        demos=lambda wildcards: [
            f"results/demos/{path}/{name}"
            for path in [f"{wildcards.model}/{wildcards.prompt}/{wildcards.demo}"]
            if path in SELECT_CELL_PATHS
            for name in ("ranking.tsv", "selected.json")
        ],
        # a fine-tuned cell's training log: loss and STS-B dev curves (rules/finetune.smk)
        training=lambda wildcards: [
            f"results/finetune/{wildcards.model}/train.json"
            for cell in [cell_of(wildcards)]
            if cell in TUNED_CELLS
        ],
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
        cell=embed_params,
        bootstrap=canonical(config.get("aggregate", {})),
    script:
        "../scripts/track_cell.py"
