# In-context demonstrations chosen on STS-B dev (sentscale.demos), for `select` demo choices.
#   label_candidates  one labeller LM writes the word of N sampled STS-B train sentences
#   select_demo       per model x prompt x select choice: score every candidate on STS-B dev
#                     (model loaded once), keep the best -> selected.json, feeds `embed`
#                     (an `icl_examples` download comes from fetch_file, rules/fetch.smk)
#   demo_ranking      per model x prompt: the rankings of its select choices in one table
#   demo_plot         per prompt x choice: dev-score distribution across candidates by model
#   demo_summary      chosen demo, dev gain and test gain over the no-demonstration cell
# Selection never reads test data: only sts-dev.csv (and sts-train.csv for labelling).


localrules:
    demo_ranking,
    demo_plot,
    demo_summary,


rule label_candidates:
    input:
        model=get_labeller_model,
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
    output:
        tsv="results/demos/candidates/{demo}/{labeller}.tsv",
        meta="results/demos/candidates/{demo}/{labeller}.json",
    log:
        "results/logs/demos/label/{demo}/{labeller}.log",
    benchmark:
        "results/benchmarks/demos/label/{demo}/{labeller}.tsv"
    wildcard_constraints:
        demo=alternation(SELECT_CHOICES),
        labeller=alternation(get_labellers()),
    conda:
        "../envs/sentscale.yaml"
    threads: MODEL_THREADS
    resources:
        **get_model_resources(get_labeller_name),
    params:
        labelled=get_self_labelled_spec,
        embed=get_labeller_load_params,
        data=get_labelling_data,
        registry=get_labeller_registry,
    script:
        "../scripts/label_candidates.py"


rule select_demo:
    input:
        model=get_provisioned_model,
        candidates=get_self_labelled_tsv,
        files=get_candidate_files,
        icl_examples=get_icl_examples_file,
        data=get_senteval_input,  # [] unless rules/fetch.smk provides data_dir
    output:
        selected="results/demos/{model}/{prompt}/{demo}/selected.json",
        ranking="results/demos/{model}/{prompt}/{demo}/ranking.tsv",
    log:
        "results/logs/demos/select/{model}/{prompt}/{demo}.log",
    benchmark:
        # wall time and memory of the whole selection: the cost of choosing the demo
        "results/benchmarks/demos/select/{model}/{prompt}/{demo}.tsv"
    wildcard_constraints:
        model=alternation(STUDY.models),
        demo=alternation(SELECT_CHOICES),
    conda:
        "../envs/sentscale.yaml"
    threads: MODEL_THREADS
    resources:
        **get_model_resources(get_model_name, get_select_scale),
    params:
        cell=get_select_params,
    script:
        "../scripts/select_demo.py"


rule demo_ranking:
    input:
        get_pair_rankings,
    output:
        "results/demos/{model}/{prompt}/ranking.tsv",
    log:
        "results/logs/demos/ranking/{model}/{prompt}.log",
    wildcard_constraints:
        model=alternation(STUDY.models),
    conda:
        "../envs/sentscale.yaml"
    params:
        choices=get_pair_choices,
    script:
        "../scripts/demo_ranking.py"


rule demo_plot:
    input:
        selected=get_choice_selected,
        rankings=get_choice_rankings,
    output:
        "results/demos/plots/{prompt}/{demo}.png",
    log:
        "results/logs/demos/plot/{prompt}/{demo}.log",
    wildcard_constraints:
        demo=alternation(SELECT_CHOICES),
    conda:
        "../envs/sentscale.yaml"
    params:
        model_params=get_model_params(),
    script:
        "../scripts/demo_plot.py"


rule demo_summary:
    input:
        selected=get_demo_summary_selected(),
        scores=get_demo_summary_scores(),
    output:
        csv="results/demos/summary.csv",
        markdown="results/demos/summary.md",
    log:
        "results/logs/demos/summary.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        no_demo=NO_DEMO_CHOICE,
        tasks=list(STUDY.tasks),
        model_params=get_model_params(),
    script:
        "../scripts/demo_summary.py"
