"""Snakemake adapter: log one cell's files as a child run of the sweep (resumed on reruns)."""

from sentscale.aggregate import Bootstrap
from sentscale.logs import log_to
from sentscale.track import track_cell_job

# a fine-tuned (cse) cell's training log (rules/finetune.smk); [] for every other cell
training = snakemake.input.get("training", [])

with log_to(snakemake.log[0]):
    track_cell_job(
        sweep_json=snakemake.input.sweep,
        cell={k: snakemake.wildcards[k] for k in ("model", "prompt", "demo")},
        settings=snakemake.params.cell,
        score_files=list(snakemake.input.scores),
        embed_meta=snakemake.input.meta,
        embed_benchmark=snakemake.input.embed_benchmark,
        evaluate_benchmarks=list(snakemake.input.evaluate_benchmarks),
        demos=list(snakemake.input.demos),
        boot=Bootstrap.from_config(snakemake.params.bootstrap),
        training_log=training if isinstance(training, str) else next(iter(training), None),
        alias=snakemake.params.alias,
        out_json=snakemake.output[0],
    )
