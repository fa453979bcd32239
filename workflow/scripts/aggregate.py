"""Snakemake adapter: every table of the study from the score files (CSV, Markdown, LaTeX,
HTML for the report), with bootstrap CIs, the paper gap and the scale comparison."""

from sentscale.aggregate import Bootstrap, write_all_tables
from sentscale.logs import log_to

FORMATS = ("csv", "markdown", "latex", "html")

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    output = snakemake.output  # noqa: F821
    out = {
        name: {fmt: output[f"{name}_{fmt}"] for fmt in FORMATS}
        for name in snakemake.params.tables  # noqa: F821
    }
    write_all_tables(
        list(snakemake.input.scores),  # noqa: F821
        tasks=snakemake.params.tasks,  # noqa: F821
        out=out,
        boot=Bootstrap.from_config(snakemake.params.bootstrap),  # noqa: F821
        eol_prompts=snakemake.params.eol_prompts,  # noqa: F821
        demo_kinds=snakemake.params.demo_kinds,  # noqa: F821
        embed_meta=list(snakemake.input.meta),  # noqa: F821
        embed_benchmarks=list(snakemake.input.embed_benchmarks),  # noqa: F821
        evaluate_benchmarks=list(snakemake.input.evaluate_benchmarks),  # noqa: F821
    )
