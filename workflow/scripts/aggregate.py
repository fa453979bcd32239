"""Snakemake adapter: every table of the study from the score files (CSV, Markdown, LaTeX,
HTML for the report), with bootstrap CIs, the paper gap and the scale comparison."""

from sentscale.aggregate import Bootstrap, aggregate_job
from sentscale.logs import log_to

FORMATS = ("csv", "markdown", "latex", "html")

with log_to(snakemake.log[0]):
    output = snakemake.output
    out = {
        name: {fmt: output[f"{name}_{fmt}"] for fmt in FORMATS} for name in snakemake.params.tables
    }
    aggregate_job(
        list(snakemake.input.scores),
        tasks=snakemake.params.tasks,
        sizes=snakemake.params.model_params,
        out=out,
        boot=Bootstrap.from_config(snakemake.params.bootstrap),
        eol_prompts=snakemake.params.eol_prompts,
        demo_kinds=snakemake.params.demo_kinds,
        embed_meta=list(snakemake.input.meta),
        embed_benchmarks=list(snakemake.input.embed_benchmarks),
        evaluate_benchmarks=list(snakemake.input.evaluate_benchmarks),
    )
