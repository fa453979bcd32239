# Model provisioning runs where the network is (login node): local rules, upstream of all.


localrules:
    provision_model,


rule provision_model:
    output:
        f"{MODELS_DIR}/{{model}}/sentscale-provenance.json",
    params:
        # <models_dir>/<model>/sentscale-provenance.json -> <models_dir>
        models_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        registry=STUDY.registry,
    log:
        "results/logs/provision/{model}.log",
    conda:
        "../envs/sentscale.yaml"
    script:
        "../scripts/provision_model.py"
