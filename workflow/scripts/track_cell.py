"""Snakemake adapter: log one cell's files as a child run of the sweep (resumed on reruns)."""

from sentscale.aggregate import Bootstrap
from sentscale.logs import log_to
from sentscale.track import track_cell

# a fine-tuned (cse) cell's training log (rules/finetune.smk); [] for every other cell
training = snakemake.input.get("training", [])  # noqa: F821

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    track_cell(
        sweep_json=snakemake.input.sweep,  # noqa: F821
        cell={k: snakemake.wildcards[k] for k in ("model", "prompt", "demo")},  # noqa: F821
        settings=snakemake.params.cell,  # noqa: F821
        score_files=list(snakemake.input.scores),  # noqa: F821
        embed_meta=snakemake.input.meta,  # noqa: F821
        embed_benchmark=snakemake.input.embed_benchmark,  # noqa: F821
        evaluate_benchmarks=list(snakemake.input.evaluate_benchmarks),  # noqa: F821
        demos=list(snakemake.input.demos),  # noqa: F821
        boot=Bootstrap.from_config(snakemake.params.bootstrap),  # noqa: F821
        training_log=training if isinstance(training, str) else next(iter(training), None),
        out_json=snakemake.output[0],  # noqa: F821
    )
