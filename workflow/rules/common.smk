# Glue between the config and the rules. Logic lives in the sentscale package; this file only
# maps wildcards to package calls.
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from sentscale import data as sentscale_data
from sentscale.errors import SentscaleError
from sentscale.planning import job_resources
from sentscale.study import CSE_DEMO, Study, canonical


validate(config, workflow.source_path("../schemas/config.schema.yaml"))

try:
    STUDY = Study.from_config(config)
except SentscaleError as err:
    # One readable message (no traceback) before any job runs.
    raise WorkflowError(str(err)) from None

MODELS_DIR = str(STUDY.models_dir)
# Params hold what determines a result, never where things live: scripts read data_dir and
# models_dir from the config, so moving the data (fingerprinted in every score) or running
# from another checkout does not rerun finished cells. Mappings in params are canonical
# (sorted keys; Study.from_config), so re-saving the config YAML does not either.
CELLS = list(STUDY.cells())
STS_TASKS = [t for t in STUDY.tasks if t in sentscale_data.STS_TASKS + sentscale_data.EXTRA_TASKS]
TRANSFER_TASKS = [t for t in STUDY.tasks if t in sentscale_data.TRANSFER_TASKS]
# Fine-tuned cells (model, finetune.prompt, cse): the model plus its LoRA adapter.
TUNED_CELLS = list(STUDY.tuned_cells())


wildcard_constraints:
    model="[^/]+",
    prompt="[^/]+",
    demo="[^/]+",


def _alternation(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


def cell_of(wildcards):
    return next(
        c
        for c in CELLS
        if (c.model, c.prompt, c.demo) == (wildcards.model, wildcards.prompt, wildcards.demo)
    )


def provisioned(wildcards):
    """The marker file `sentscale provision` writes once a model is ready to load offline."""
    return f"{MODELS_DIR}/{wildcards.model}/sentscale-provenance.json"


def embed_params(wildcards):
    """Everything that determines a cell's embeddings; a change here reruns only that cell."""
    cell = cell_of(wildcards)
    variant = STUDY.prompts.get(cell.prompt)
    return {
        "model": cell.model,
        "prompt": None if variant is None else variant.to_dict(),
        "demos": [d.to_dict() for d in STUDY.fixed_demos(cell)],
        "tasks": list(STUDY.tasks),
        "embed": dict(STUDY.embed),
        # which items get scored decides which sentences are embedded
        "evaluate": {k: STUDY.evaluate.get(k) for k in ("max_items", "seed")},
        "registry": dict(STUDY.registry),
        # fine-tuned cells only (other cells' params stay as they were): the adapter's recipe
        **({"finetune": dict(STUDY.finetune[cell.model])} if cell in TUNED_CELLS else {}),
    }


def finetune_adapter(wildcards):
    """A fine-tuned cell's LoRA adapter (rules/finetune.smk); [] for every other cell."""
    if cell_of(wildcards) not in TUNED_CELLS:
        return []
    return [f"results/finetune/{wildcards.model}/adapter"]


def selected_demo_file(wildcards):
    """A select cell's chosen demonstration (rules/demos.smk); [] for every other cell."""
    if cell_of(wildcards) not in set(STUDY.selection_cells()):
        return []
    w = wildcards
    return [f"results/demos/{w.model}/{w.prompt}/{w.demo}/selected.json"]


def model_resources(name_of, scale=lambda wildcards: 1):
    """Resources of a job that loads the model `name_of(wildcards)` (sentscale.planning):
    mem_mb and runtime (x `scale`), plus `gpu` only when a GPU is configured."""

    def resource(key):
        def get(wildcards, attempt):
            res = job_resources(
                name_of(wildcards), STUDY.embed, config.get("resources", {}), attempt=attempt
            )
            if key == "runtime":
                return int(res["runtime"] * scale(wildcards))
            return res.get(key)

        return get

    keys = ["mem_mb", "runtime"]
    if config.get("resources", {}).get("gpu_mem_gb"):
        keys += ["gpu", "cpus_per_gpu"]
        if config["resources"].get("gpu_model"):
            keys.append("gpu_model")
    return {key: resource(key) for key in keys}


def all_outputs():
    scores = [
        f"results/scores/{cell.path}/{task}.json" for cell in CELLS for task in STUDY.tasks
    ]
    # AGGREGATE_OUTPUTS / TRACKING_OUTPUTS / demo_outputs: rules/{aggregate,track,demos}.smk
    return scores + AGGREGATE_OUTPUTS + TRACKING_OUTPUTS + demo_outputs()
