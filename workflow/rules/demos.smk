# In-context demonstrations chosen on STS-B dev (sentscale.demos), for `select` demo choices.
#   label_candidates  one labeller LM writes the word of N sampled STS-B train sentences
#   select_demo       per model x prompt x select choice: score every candidate on STS-B dev
#                     (model loaded once), keep the best -> selected.json, feeds `embed`
#   demo_ranking      per model x prompt: the rankings of its select choices in one table
#   demo_plot         per prompt x choice: dev-score distribution across candidates by model
#   demo_summary      chosen demo, dev gain and test gain over the no-demonstration cell
# Selection never reads test data: only sts-dev.csv (and sts-train.csv for labelling).


include: "demos_common.smk"


localrules:
    demo_ranking,
    demo_plot,
    demo_summary,


rule label_candidates:
    input:
        model=lambda wildcards: f"{MODELS_DIR}/{wildcards.labeller}/sentscale-provenance.json",
    output:
        tsv="results/demos/candidates/{demo}/{labeller}.tsv",
        meta="results/demos/candidates/{demo}/{labeller}.json",
    wildcard_constraints:
        demo=_alternation(SELECT_CHOICES),
        labeller=_alternation(sorted({labeller for _, labeller in label_sets()})),
    params:
        labelled=lambda wildcards: _select(wildcards.demo)["candidates"]["self_labelled"],
        # how the labeller is loaded (batching does not enter one-at-a-time greedy decoding)
        embed={k: STUDY.embed.get(k) for k in ("dtype", "device", "quantization")},
        registry=dict(STUDY.registry),
    log:
        "results/logs/demos/label/{demo}/{labeller}.log",
    benchmark:
        "results/benchmarks/demos/label/{demo}/{labeller}.tsv"
    threads: STUDY.embed.get("threads", 2)
    resources:
        **model_resources(lambda wildcards: wildcards.labeller),
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/label_candidates.py"


rule select_demo:
    input:
        model=provisioned,
        candidates=self_labelled_tsv,
        files=lambda wildcards: _select(wildcards.demo)["candidates"]["files"],
    output:
        selected="results/demos/{model}/{prompt}/{demo}/selected.json",
        ranking="results/demos/{model}/{prompt}/{demo}/ranking.tsv",
    wildcard_constraints:
        model=_alternation(STUDY.models),
        demo=_alternation(SELECT_CHOICES),
    params:
        cell=select_params,
    log:
        "results/logs/demos/select/{model}/{prompt}/{demo}.log",
    benchmark:
        # wall time and memory of the whole selection: the cost of choosing the demo
        "results/benchmarks/demos/select/{model}/{prompt}/{demo}.tsv"
    threads: STUDY.embed.get("threads", 2)
    resources:
        **model_resources(lambda wildcards: wildcards.model, select_scale),
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/select_demo.py"


rule demo_ranking:
    input:
        lambda wildcards: [
            f"results/demos/{c.path}/ranking.tsv"
            for c in SELECT_CELLS
            if (c.model, c.prompt) == (wildcards.model, wildcards.prompt)
        ],
    output:
        "results/demos/{model}/{prompt}/ranking.tsv",
    wildcard_constraints:
        model=_alternation(STUDY.models),
    params:
        choices=lambda wildcards: [
            c.demo
            for c in SELECT_CELLS
            if (c.model, c.prompt) == (wildcards.model, wildcards.prompt)
        ],
    log:
        "results/logs/demos/ranking/{model}/{prompt}.log",
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/demo_ranking.py"


rule demo_plot:
    input:
        selected=lambda wildcards: [
            f"results/demos/{c.path}/selected.json" for c in _cells_of(wildcards)
        ],
        rankings=lambda wildcards: [
            f"results/demos/{c.path}/ranking.tsv" for c in _cells_of(wildcards)
        ],
    output:
        "results/demos/plots/{prompt}/{demo}.png",
    wildcard_constraints:
        demo=_alternation(SELECT_CHOICES),
    log:
        "results/logs/demos/plot/{prompt}/{demo}.log",
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/demo_plot.py"


rule demo_summary:
    input:
        selected=[f"results/demos/{c.path}/selected.json" for c in SELECT_CELLS],
        scores=[
            f"results/scores/{c.model}/{c.prompt}/{demo}/{task}.json"
            for c in SELECT_CELLS
            for demo in dict.fromkeys([c.demo, NO_DEMO_CHOICE])
            if demo is not None
            for task in STUDY.tasks
        ],
    output:
        csv="results/demos/summary.csv",
        markdown="results/demos/summary.md",
    params:
        no_demo=NO_DEMO_CHOICE,
        tasks=list(STUDY.tasks),
    log:
        "results/logs/demos/summary.log",
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/demo_summary.py"
