# Model provisioning runs where the network is (login node): local rules, upstream of all.
# The output is the study's record of the model (common.smk: model_record), not a file under
# models_dir: the model-loading jobs take it as input, so moving models_dir reruns nothing.
# The job checks every sha256 of an existing copy (it runs rarely) and rebuilds a bad one;
# `snakemake --forcerun results/models/<model>.json` runs it again for one model.


localrules:
    provision_model,


rule provision_model:
    output:
        MODEL_RECORD,
    log:
        "results/logs/provision/{model}.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        identity=get_model_identity,
    script:
        "../scripts/provision_model.py"
