# Pinned downloads (sentscale.fetch): files the study needs but the repository does not ship,
# checked against their sha256 and written atomically. For now the authors' demonstration
# candidates (`icl_examples` of a select choice, rules/demos.smk). A local rule: it runs where
# the network is (the login node), like provision_model.


localrules:
    fetch_file,


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
