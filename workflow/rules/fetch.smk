# Downloads (sentscale.fetch, sentscale.datasets): data the study needs but the repository does
# not ship. Local rules: they run where the network is (the login node), like provision_model.
#   fetch_senteval  SentEval's data folder (SimCSE's senteval.tar) into data_dir, each file
#                   checked against the package's manifest; only when data_dir is missing (or
#                   was fetched: its stamp is the output). A data_dir you provide is used as is.
#   fetch_nli       SimCSE's nli_for_simcse.csv to finetune.data (fine-tuning studies), row
#                   count checked (and its sha256 when sources.nli.sha256 pins it).
#   fetch_file      pinned single files: the authors' demonstration candidates (`icl_examples`
#                   of a select choice, rules/demos.smk).
# URLs are never params (sources.* in the config): they say where the bytes come from, the
# checks say what they are; a mirror must not refetch nor rerun anything.


localrules:
    fetch_file,
    fetch_senteval,


rule fetch_senteval:
    output:
        SENTEVAL_STAMP,
    log:
        "results/logs/fetch/senteval.log",
    # priority: downloads first, so a missing network or a bad mirror stops the run early
    priority: 10
    run:
        fetch_senteval_data(log[0])


if FETCH_NLI:  # finetune.data is only defined (and needed) in fine-tuning studies

    localrules:
        fetch_nli,

    rule fetch_nli:
        output:
            FINETUNE_DATA,
            NLI_STAMP,
        log:
            "results/logs/fetch/nli.log",
        priority: 10
        run:
            fetch_nli_data(log[0])


rule fetch_file:
    # run: rather than a script, so that the URL is not a param: it says where the bytes come
    # from, the pin says what they are; a mirror URL must not refetch nor rerun selections.
    output:
        "{fetched}",
    log:
        "results/logs/fetch/{fetched}.log",
    wildcard_constraints:
        fetched=alternation(FETCHES),
    params:
        sha256=get_fetch_sha256,
    run:
        fetch_pinned(wildcards.fetched, log[0])
