"""Snakemake adapter: score one task of one cell from its stored embeddings."""

from sentscale.cells import evaluate_cell_task
from sentscale.logs import log_to

with log_to(snakemake.log[0]):
    evaluate_cell_task(
        snakemake.input.embeddings,
        snakemake.wildcards.task,
        data_dir=snakemake.config["data_dir"],
        out_json=snakemake.output[0],
        options=snakemake.params.evaluate,
        cell={k: snakemake.wildcards[k] for k in ("model", "prompt", "demo")},
    )
