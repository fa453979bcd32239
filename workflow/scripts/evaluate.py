"""Snakemake adapter: score one task of one cell from its stored embeddings."""

from sentscale.cells import evaluate_job
from sentscale.logs import log_to
from sentscale.options import EvaluateOptions

with log_to(snakemake.log[0]):
    evaluate_job(
        snakemake.input.embeddings,
        snakemake.wildcards.task,
        data_dir=snakemake.config["data_dir"],
        out_json=snakemake.output[0],
        options=EvaluateOptions.from_mapping(snakemake.params.evaluate, "evaluate"),
        cell={k: snakemake.wildcards[k] for k in ("model", "prompt", "demo")},
    )
