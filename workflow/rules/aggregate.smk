localrules:
    aggregate,


rule aggregate:
    input:
        scores=lambda wildcards: [
            f"results/scores/{cell.path}/{task}.json" for cell in CELLS for task in STUDY.tasks
        ],
    output:
        csv="results/tables/scores.csv",
        markdown="results/tables/scores.md",
        latex="results/tables/scores.tex",
    params:
        tasks=list(STUDY.tasks),
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/aggregate.py"
