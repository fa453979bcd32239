"""Snakemake adapter: score one task of one cell from its stored embeddings."""

from sentscale.cells import evaluate_cell_task
from sentscale.logs import log_to

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    evaluate_cell_task(
        snakemake.input.embeddings,  # noqa: F821
        snakemake.wildcards.task,  # noqa: F821
        data_dir=snakemake.config["data_dir"],  # noqa: F821
        out_json=snakemake.output[0],  # noqa: F821
        options=snakemake.params.evaluate,  # noqa: F821
        cell={k: snakemake.wildcards[k] for k in ("model", "prompt", "demo")},  # noqa: F821
    )
