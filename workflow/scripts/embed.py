"""Snakemake adapter: embed one cell (see sentscale.cells.embed_job)."""

from sentscale.cells import embed_job
from sentscale.context import JobContext

# select cells get the demonstration chosen on STS-B dev (rules/demos.smk); others get []
chosen = snakemake.input.get("demos_file", [])
# fine-tuned (cse) cells get their LoRA adapter (rules/finetune.smk); others get []
adapter = snakemake.input.get("adapter", [])

ctx = JobContext.from_params(snakemake.params.cell, threads=snakemake.threads, name="embed")
with ctx.logging_to(snakemake.log[0]):
    embed_job(
        ctx,
        snakemake.params.cell,
        data_dir=snakemake.config["data_dir"],
        models_dir=snakemake.config["models_dir"],
        out_npz=snakemake.output.embeddings,
        out_meta=snakemake.output.meta,
        demos_file=chosen if isinstance(chosen, str) else next(iter(chosen), None),
        adapter=adapter if isinstance(adapter, str) else next(iter(adapter), None),
    )
