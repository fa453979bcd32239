# Tables, figures and the Snakemake report, all from the score files (never from MLflow).
# Tables: results/tables/<name>.{csv,md,tex,html}; figures: results/plots/<name>.{png,pdf}.
# `snakemake --report report.html` collects every report() output below, by category.
from sentscale import models as sentscale_models
from sentscale.prompts import DEFAULT_VARIANTS


report: "../report/workflow.rst"


localrules:
    aggregate,
    plots,


TABLES = ["scores", "sts", "transfer", "gap", "scale", "cost", "paper"]
TABLE_FORMATS = {"csv": "csv", "markdown": "md", "latex": "tex", "html": "html"}
FIGURES = {
    "scaling_sts": "Scaling",
    "scaling_transfer": "Scaling",
    "tasks": "Per task",
    "demo_spread": "Demonstrations",
    "cost": "Cost",
}
# Cells with one of the paper's PromptEOL templates can be compared with its numbers.
EOL_TEMPLATES = {
    DEFAULT_VARIANTS[name]["template"] for name in ("eol", "eol-paper-text")
}
# What `rule all` needs from this file (every table and figure).
AGGREGATE_OUTPUTS = [
    f"results/tables/{name}.{ext}" for name in TABLES for ext in TABLE_FORMATS.values()
] + [f"results/plots/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")]
# Benchmark files of the scoring rules that declare one (their wall time goes into `cost`).
EVALUATE_BENCHMARKS = [
    f"results/benchmarks/evaluate/{cell.path}/{task}.tsv"
    for rule, tasks in (
        (rules.evaluate_sts, STS_TASKS),
        (rules.evaluate_transfer, TRANSFER_TASKS),
    )
    if rule.rule.benchmark
    for cell in CELLS
    for task in tasks
]
# Demonstration rankings (STS-B dev) per model and prompt of `select` cells (rules/demos.smk).
DEMO_RANKINGS = [
    f"results/demos/{model}/{prompt}/ranking.tsv"
    for model, prompt in sorted({(c.model, c.prompt) for c in STUDY.selection_cells()})
]


rule aggregate:
    input:
        scores=[
            f"results/scores/{cell.path}/{task}.json"
            for cell in CELLS
            for task in STUDY.tasks
        ],
        meta=[f"results/embeddings/{cell.path}.json" for cell in CELLS],
        embed_benchmarks=[f"results/benchmarks/embed/{cell.path}.tsv" for cell in CELLS],
        evaluate_benchmarks=EVALUATE_BENCHMARKS,
    output:
        **{
            f"{name}_{fmt}": (
                report(
                    f"results/tables/{name}.{ext}",
                    caption=f"../report/table_{name}.rst",
                    category="Tables",
                    labels={
                        "table": name,
                        "also as": "CSV, Markdown, LaTeX beside it",
                    },
                )
                if fmt == "html"
                else f"results/tables/{name}.{ext}"
            )
            for name in TABLES
            for fmt, ext in TABLE_FORMATS.items()
        },
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        tasks=list(STUDY.tasks),
        tables=TABLES,
        bootstrap=canonical(config.get("aggregate", {})),
        eol_prompts=[
            name
            for name, variant in STUDY.prompts.items()
            if variant.template in EOL_TEMPLATES and variant.pooling == "last"
        ],
        demo_kinds={
            **{name: choice.kind for name, choice in STUDY.demos.items()},
            **({CSE_DEMO: "cse"} if TUNED_CELLS else {}),  # PromptEOL+CSE in the gap table
        },
    script:
        "../scripts/aggregate.py"


rule plots:
    input:
        sts="results/tables/sts.csv",
        transfer="results/tables/transfer.csv",
        cost="results/tables/cost.csv",
        rankings=DEMO_RANKINGS,
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"results/plots/{name}.png",
                    caption=f"../report/plot_{name}.rst",
                    category=category,
                    labels={"figure": name, "also as": "PDF beside it"},
                )
                if ext == "png"
                else f"results/plots/{name}.pdf"
            )
            for name, category in FIGURES.items()
            for ext in ("png", "pdf")
        },
    log:
        "results/logs/plots.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        tasks=list(STUDY.tasks),
        figures=list(FIGURES),
        model_params={
            name: sentscale_models.get_spec(name).params for name in STUDY.all_models()
        },
    script:
        "../scripts/plots.py"
