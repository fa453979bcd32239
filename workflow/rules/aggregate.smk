# Tables, figures and the Snakemake report, all from the score files (never from MLflow).
# Tables: results/tables/<name>.{csv,md,tex,html}; figures: results/plots/<name>.{png,pdf}.
# `snakemake --report report.html` collects every report() output below: each file of a table
# or figure is a row of its own (open or download), labelled and ordered by
# sentscale.aggregate.report (the report sorts rows by their label values).


# The report's workflow graph with one node per rule (Snakemake's draws a rule once per depth
# of its jobs: sentscale.aggregate.report).
sentscale_aggregate.use_rule_graph_spec()


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
            f"{name}_{fmt}": report(
                f"results/tables/{name}.{ext}",
                caption=f"../report/table_{name}.rst",
                category=sentscale_aggregate.REPORT_CATEGORIES["table"],
                labels=sentscale_aggregate.report_labels("table", name, ext),
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
            f"{name}_{ext}": report(
                f"results/plots/{name}.{ext}",
                caption=f"../report/plot_{name}.rst",
                category=sentscale_aggregate.REPORT_CATEGORIES["figure"],
                labels=sentscale_aggregate.report_labels("figure", name, ext),
            )
            for name in FIGURES
            for ext in FIGURE_FORMATS
        },
    log:
        "results/logs/plots.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        tasks=list(STUDY.tasks),
        figures=FIGURES,
        model_params=get_model_params(),
        model_families=get_model_families(),  # a scaling line joins one family's sizes
        paper_results=PAPER_RESULTS_DIGEST,  # the paper's points in the scaling figures
    script:
        "../scripts/plots.py"
