# Tables, figures and the Snakemake report, all from the score files (never from MLflow).
# Tables: results/tables/<name>.{csv,md,tex,html}; figures: results/plots/<name>.{png,pdf}.
# `snakemake --report report.html` collects every report() output below, by category.


localrules:
    aggregate,
    plots,


rule aggregate:
    input:
        scores=get_score_files(),
        meta=[f"results/embeddings/{cell.path}.json" for cell in CELLS],
        embed_benchmarks=[f"results/benchmarks/embed/{cell.path}.tsv" for cell in CELLS],
        evaluate_benchmarks=get_evaluate_benchmarks(),
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
        bootstrap=STUDY.aggregate.to_dict(),
        eol_prompts=get_eol_prompts(),
        demo_kinds=get_demo_kinds(),
        model_params=get_model_params(),
        paper_results=PAPER_RESULTS_DIGEST,  # the reference numbers (gap, paper tables)
    script:
        "../scripts/aggregate.py"


rule plots:
    input:
        sts="results/tables/sts.csv",
        transfer="results/tables/transfer.csv",
        cost="results/tables/cost.csv",
        rankings=get_demo_rankings_all(),
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
            for ext in FIGURE_FORMATS
        },
    log:
        "results/logs/plots.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        tasks=list(STUDY.tasks),
        figures=list(FIGURES),
        model_params=get_model_params(),
        paper_results=PAPER_RESULTS_DIGEST,  # the paper's points in the scaling figures
    script:
        "../scripts/plots.py"
