# Model provisioning runs where the network is (login node): local rules, upstream of all.


localrules:
    provision_model,


rule provision_model:
    output:
        f"{MODELS_DIR}/{{model}}/sentscale-provenance.json",
    log:
        "results/logs/provision/{model}.log",
    conda:
        "../envs/sentscale.yaml"
    params:
        models_dir=get_models_dir,
        registry=dict(STUDY.registry_overrides),
    script:
        "../scripts/provision_model.py"
