"""Snakemake adapter: embed one cell (see sentscale.cells.embed_cell)."""

from sentscale.cells import embed_cell
from sentscale.logs import log_to

# select cells get the demonstration chosen on STS-B dev (rules/demos.smk); others get []
chosen = snakemake.input.get("demos_file", [])  # noqa: F821 - injected by Snakemake
# fine-tuned (cse) cells get their LoRA adapter (rules/finetune.smk); others get []
adapter = snakemake.input.get("adapter", [])  # noqa: F821

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    embed_cell(
        snakemake.params.cell,  # noqa: F821
        data_dir=snakemake.config["data_dir"],  # noqa: F821
        models_dir=snakemake.config["models_dir"],  # noqa: F821
        out_npz=snakemake.output.embeddings,  # noqa: F821
        out_meta=snakemake.output.meta,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        demos_file=chosen if isinstance(chosen, str) else next(iter(chosen), None),
        adapter=adapter if isinstance(adapter, str) else next(iter(adapter), None),
    )
