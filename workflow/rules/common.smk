# Glue between the config and the rules: config validation, the study's cells, the lists of
# outputs and every input/params function (get_*). Logic lives in the sentscale package; this
# file only maps wildcards to package calls. Rule files use names defined here and nothing
# defined in another rule file, so each stands alone (after this one).
import math
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from sentscale import aggregate as sentscale_aggregate
from sentscale import data as sentscale_data
from sentscale import datasets as sentscale_datasets
from sentscale import demos as sentscale_demos
from sentscale import fetch as sentscale_fetch
from sentscale import provision as sentscale_provision
from sentscale import finetune as sentscale_finetune
from sentscale import track as sentscale_track
from sentscale.errors import SentscaleError
from sentscale.planning import finetune_resources, job_resources
from sentscale.prompts import DEFAULT_VARIANTS
from sentscale.config_schema import schema_error
from sentscale.study import CSE_DEMO, Study

CONFIG_SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    validate(config, CONFIG_SCHEMA)
except WorkflowError:
    # Snakemake prints jsonschema's one best match and then the whole schema (hundreds of
    # lines), and reads a misspelt required key as a missing one: say instead every problem on
    # one line (key path, value, expectation; unknown keys first, with their close match).
    readable = schema_error(config, CONFIG_SCHEMA)
    if readable is None:
        raise
    raise WorkflowError(str(readable)) from None


# --- the study -------------------------------------------------------------------------------
def is_planning_only():
    """True for `snakemake --lint` and dry runs (-n): they only plan, so they need neither
    SentEval's data folder nor finetune.data. Snakemake 9 parses the Snakefile before it
    knows the executor (workflow.dryrun is False until then); what it does know at parse time:
    output_settings.dryrun (set from -n/--dry-run) and check_envvars, which the lint API (and
    only it) turns off."""
    return bool(workflow.output_settings.dryrun) or not workflow.check_envvars


# --- fetched data (rules/fetch.smk; sentscale.datasets) --------------------------------------
# SentEval's data folder and finetune.data are fetched when missing (or when an earlier fetch
# made them: its stamp file is there); a folder or file the user provides is used as it is and
# no fetch job runs. Consumers depend on the stamp only when the fetch provides the data, so
# the input lists stay the same from run to run (a path that changes would rerun every cell).
SOURCES = config.get("sources") or {}
SENTEVAL_STAMP = sentscale_datasets.senteval_stamp(config["data_dir"])
FETCH_SENTEVAL = sentscale_datasets.is_fetch_managed(config["data_dir"], SENTEVAL_STAMP)
FINETUNE_DATA = (config.get("finetune") or {}).get("data")
NLI_STAMP = FINETUNE_DATA and sentscale_datasets.nli_stamp(FINETUNE_DATA)
FETCH_NLI = bool(
    (config.get("finetune") or {}).get("models")
    and FINETUNE_DATA
    and sentscale_datasets.is_fetch_managed(FINETUNE_DATA, NLI_STAMP)
)
try:
    for _name, _url in (
        ("senteval", sentscale_datasets.SENTEVAL_URL),
        ("nli", sentscale_datasets.NLI_URL),
    ):
        _source = SOURCES.setdefault(_name, {})
        _source.setdefault("url", _url)
        sentscale_fetch.check_url(
            _source["url"], f"sources.{_name}.url", sentscale_fetch.SOURCE_SCHEMES
        )
    if SOURCES["nli"].get("sha256") is not None:
        sentscale_fetch.check_sha256(SOURCES["nli"]["sha256"], "sources.nli.sha256")
    # A real run checks the data up front: one readable message (no traceback) before any job.
    STUDY = Study.from_config(
        config,
        check_data=not is_planning_only(),
        to_fetch=[
            key
            for key, fetched in (
                ("data_dir", FETCH_SENTEVAL),
                ("finetune.data", FETCH_NLI),
            )
            if fetched
        ],
    )
except SentscaleError as err:
    raise WorkflowError(str(err)) from None

# What the jobs read from data_dir and finetune.data, by content (sentscale.datasets): a
# digest in their params, so editing a file reruns the jobs that read it while the same bytes
# under another path rerun nothing (paths are not params; see below).
try:
    DATA_DIGESTS = sentscale_datasets.task_digests(
        STUDY.tasks_read(), STUDY.data_dir, fetched=FETCH_SENTEVAL
    )
    # the labelling jobs read STS-B train (sentscale.demos: LABELLING_FILES)
    LABELLING_DIGEST = sentscale_datasets.files_digest(
        sentscale_demos.LABELLING_FILES, STUDY.data_dir, fetched=FETCH_SENTEVAL
    )
    NLI_DIGEST = FINETUNE_DATA and sentscale_datasets.nli_digest(
        FINETUNE_DATA, fetched=FETCH_NLI, sha256=SOURCES["nli"].get("sha256")
    )
except SentscaleError as err:
    raise WorkflowError(str(err)) from None
# Params hold what determines a result, never where things live: scripts read data_dir and
# models_dir from the config, so moving the data (fingerprinted in every score) or running
# from another checkout does not rerun finished cells. Mappings in params are canonical
# (sorted keys; Study.from_config), so re-saving the config YAML does not either.
CELLS = list(STUDY.cells())
STS_TASKS = [
    t for t in STUDY.tasks if t in sentscale_data.STS_TASKS + sentscale_data.EXTRA_TASKS
]
TRANSFER_TASKS = [t for t in STUDY.tasks if t in sentscale_data.TRANSFER_TASKS]
# Fine-tuned cells (model, finetune.prompt, cse): the model plus its LoRA adapter.
TUNED_CELLS = list(STUDY.tuned_cells())
# Cells whose demonstration is chosen on STS-B dev (`select` demo choices, rules/demos.smk).
SELECT_CELLS = list(STUDY.selection_cells())
SELECT_CHOICES = sorted({cell.demo for cell in SELECT_CELLS})
SELECT_CELL_PATHS = {cell.path for cell in SELECT_CELLS}
# The zero-shot choice the demo summary measures gains against (None: the study has none).
NO_DEMO_CHOICE = next((n for n, c in STUDY.demos.items() if c.kind == "none"), None)
# Threads of the jobs that load a model (embed, label_candidates, select_demo, finetune).
MODEL_THREADS = STUDY.embed.threads


wildcard_constraints:
    model="[^/]+",
    prompt="[^/]+",
    demo="[^/]+",


def alternation(names):
    """A wildcard constraint matching exactly `names` (nothing when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def get_cell(wildcards):
    return next(
        c
        for c in CELLS
        if (c.model, c.prompt, c.demo)
        == (wildcards.model, wildcards.prompt, wildcards.demo)
    )


# --- tables, figures, benchmarks (rules/aggregate.smk, rules/track.smk) ----------------------
# In reading order (sentscale.aggregate.report: the report lists them so).
TABLES = list(sentscale_aggregate.REPORT_TABLES)
TABLE_FORMATS = {"csv": "csv", "markdown": "md", "latex": "tex", "html": "html"}
FIGURES = list(sentscale_aggregate.REPORT_FIGURES)
FIGURE_FORMATS = ("png", "pdf")
# The paper's reported numbers ship with the package (sentscale/resources): their digest in
# the params of the jobs that read them, so an update of the file redraws tables and figures.
PAPER_RESULTS_DIGEST = sentscale_datasets.content_digest(
    {"paper_results.csv": sentscale_aggregate.paper_results_sha256()}
)
# Cells with one of the paper's PromptEOL templates can be compared with its numbers.
EOL_TEMPLATES = {
    DEFAULT_VARIANTS[name]["template"] for name in ("eol", "eol-paper-text")
}
# The benchmark of a scoring job: evaluate_transfer declares it (rules/evaluate.smk), so its
# wall time goes into the `cost` table; evaluate_sts declares none (seconds per job).
EVALUATE_BENCHMARK = "results/benchmarks/evaluate/{model}/{prompt}/{demo}/{task}.tsv"
BENCHMARKED_EVALUATE_TASKS = TRANSFER_TASKS


def get_score_files(cells=CELLS):
    return [
        f"results/scores/{cell.path}/{task}.json"
        for cell in cells
        for task in STUDY.tasks
    ]


def get_evaluate_benchmarks(wildcards=None):
    """Benchmark files of the scoring jobs that declare one: every cell's (wildcards None) or
    one cell's (track_cell)."""
    cells = CELLS if wildcards is None else [get_cell(wildcards)]
    return [
        EVALUATE_BENCHMARK.format(
            model=c.model, prompt=c.prompt, demo=c.demo, task=task
        )
        for c in cells
        for task in BENCHMARKED_EVALUATE_TASKS
    ]


def get_eol_prompts():
    """The study's prompts comparable with the paper's PromptEOL numbers (the gap table)."""
    return [
        name
        for name, variant in STUDY.prompts.items()
        if variant.template in EOL_TEMPLATES and variant.pooling == "last"
    ]


def get_demo_kinds():
    return {
        **{name: choice.kind for name, choice in STUDY.demos.items()},
        **({CSE_DEMO: "cse"} if TUNED_CELLS else {}),  # PromptEOL+CSE in the gap table
    }


def get_model_params():
    """Parameter counts of every model of the study (the scaling plots' x axis)."""
    return STUDY.model_params()


def get_model_families():
    """Family of every model of the study (a scaling line joins one family's sizes)."""
    return STUDY.model_families()


def get_demo_rankings_all():
    """Demonstration rankings (STS-B dev) per model and prompt of `select` cells."""
    return [
        f"results/demos/{model}/{prompt}/ranking.tsv"
        for model, prompt in sorted({(c.model, c.prompt) for c in SELECT_CELLS})
    ]


# --- tracking (rules/track.smk) --------------------------------------------------------------
# MLflow is a view of the files (sentscale.track).
TRACKING_URI = STUDY.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI")
# Checked here, while the workflow is read, so a URI with credentials (however spelt: an
# unencoded slash, question mark or hash in the password too) stops the run before it
# reaches the mlflow_parent params (.snakemake/metadata), a job log or the console; the
# message shows no secret. MLflow reads credentials from its own environment variables.
try:
    sentscale_track.check_uri(TRACKING_URI)
except SentscaleError as err:
    raise WorkflowError(str(err)) from None
TRACKING_ENABLED = STUDY.tracking.enabled
# sqlite / file stores are written from this machine only (no concurrent cluster writers on
# a network file system); with a server URI the jobs log over HTTP from wherever they run.
TRACKING_LOCAL = TRACKING_URI is None or sentscale_track.is_local_store(TRACKING_URI)
# sentscale/<study>, apart from MLflow's own "Default" experiment (sentscale.track_sweep)
TRACKING_EXPERIMENT = sentscale_track.experiment_name(
    STUDY.name, STUDY.tracking.experiment
)
# Short model names for the child runs' names (MLflow 3.17's runs table shows ~12 characters of a
# name), derived from the registry names and unique within the study.
MODEL_ALIASES = sentscale_track.model_aliases(cell.model for cell in CELLS)


def get_model_alias(wildcards):
    """The study's short name of a cell's model (its run is `<alias> <prompt>/<demo>`)."""
    return MODEL_ALIASES[wildcards.model]


def get_tracked_cells():
    """Every cell's tracking record (rules/track.smk: track_cell)."""
    return [f"results/tracking/{cell.path}.json" for cell in CELLS]


def get_cell_scores(wildcards):
    """Every score file of one cell."""
    return get_score_files([get_cell(wildcards)])


def get_cell_demo_files(wildcards):
    """A `select` cell's candidate ranking and chosen demo; [] for every other cell."""
    path = get_cell(wildcards).path
    if path not in SELECT_CELL_PATHS:
        return []
    return [f"results/demos/{path}/{name}" for name in ("ranking.tsv", "selected.json")]


def get_cell_training(wildcards):
    """A fine-tuned cell's training log (loss and STS-B dev curves); [] for every other cell."""
    if get_cell(wildcards) not in TUNED_CELLS:
        return []
    return [f"results/finetune/{wildcards.model}/train.json"]


# --- models and embedding (rules/provision.smk, rules/embed.smk) ------------------------------
# A model-loading job's input is the study's record of its model (rules/provision.smk: the
# spec's identity and the files it is read from), never a path under models_dir: the same
# models under another models_dir rerun nothing. What the path no longer guards, a real run
# checks here, before any job (names and sizes of the recorded files; no hashing).
MODEL_RECORD = "results/models/{model}.json"


def model_record(name):
    return MODEL_RECORD.format(model=name)


def check_model_records():
    """One WorkflowError naming every model of the study whose record lists files that are
    not where the config now says (sentscale.provision.record_check), unless its provision
    job is forced. Real runs only: a dry run or lint needs no models."""
    records = {model_record(name): name for name in STUDY.all_models()}
    # Snakemake's --forcerun is known only after this file is parsed: read from sys.argv
    forced = sentscale_provision.forced_records(sys.argv[1:], records)
    problems = [
        sentscale_provision.record_check(
            STUDY.spec(name),
            record,
            STUDY.models_dir,
            overridden=name in STUDY.registry_overrides,
        )
        for record, name in sorted(records.items())
        if record not in forced
    ]
    problems = [p for p in problems if p is not None]
    if problems:
        raise WorkflowError("\n".join(problems))


if not is_planning_only():
    check_model_records()


def get_provisioned_model(wildcards):
    """The record of the cell's model (written by the provision job)."""
    return model_record(wildcards.model)


def get_model_identity(wildcards):
    """The provision job's params: the model's identity (name, kind, source) only, so an
    override of another model, or of this one's params or notes, reprovisions nothing.
    """
    return STUDY.spec(wildcards.model).identity()


def get_registry_overrides(*names):
    """The study's registry overrides of `names` only: what the job's JobContext needs, so
    overriding one model reruns only the jobs that load it."""
    overrides = STUDY.registry_overrides
    return {name: overrides[name] for name in names if name in overrides}


def get_labeller_registry(wildcards):
    return get_registry_overrides(wildcards.labeller)


def get_embed_params(wildcards):
    """Everything that determines a cell's embeddings; a change here reruns only that cell."""
    cell = get_cell(wildcards)
    variant = STUDY.prompts.get(cell.prompt)
    return {
        "model": cell.model,
        "prompt": None if variant is None else variant.to_dict(),
        "demos": [d.to_dict() for d in STUDY.fixed_demos(cell)],
        "tasks": list(STUDY.tasks),
        "data": {task: DATA_DIGESTS[task] for task in STUDY.tasks},
        "embed": STUDY.embed.for_model(cell.model).to_dict(),
        # which items get scored decides which sentences are embedded
        "evaluate": STUDY.evaluate.sampling(),
        "registry": get_registry_overrides(cell.model),
        # fine-tuned cells only (other cells' params stay as they were): the adapter's recipe
        **(
            {"finetune": STUDY.finetune[cell.model].to_dict()}
            if cell in TUNED_CELLS
            else {}
        ),
    }


def get_finetune_adapter(wildcards):
    """A fine-tuned cell's LoRA adapter (rules/finetune.smk); [] for every other cell."""
    if get_cell(wildcards) not in TUNED_CELLS:
        return []
    return [f"results/finetune/{wildcards.model}/adapter"]


def get_selected_demo_file(wildcards):
    """A select cell's chosen demonstration (rules/demos.smk); [] for every other cell."""
    if get_cell(wildcards).path not in SELECT_CELL_PATHS:
        return []
    w = wildcards
    return [f"results/demos/{w.model}/{w.prompt}/{w.demo}/selected.json"]


def resource_functions(plan):
    """Snakemake `resources:` from `plan(wildcards, attempt)` -> dict (sentscale.planning):
    mem_mb and runtime, plus `gpu`, `cpus_per_gpu` (and `gpu_model`) only when the study
    configures a GPU."""

    def resource(key):
        return lambda wildcards, attempt: plan(wildcards, attempt).get(key)

    keys = ["mem_mb", "runtime"]
    if STUDY.resources.gpu_mem_gb:
        keys += ["gpu", "cpus_per_gpu"]
        if STUDY.resources.gpu_model:
            keys.append("gpu_model")
    return {key: resource(key) for key in keys}


def get_model_resources(name_of, scale=lambda wildcards: 1):
    """Resources of a job that loads the model `name_of(wildcards)` (runtime x `scale`)."""

    def plan(wildcards, attempt):
        name = name_of(wildcards)
        res = job_resources(
            STUDY.spec(name),
            STUDY.embed.for_model(name),
            STUDY.resources,
            attempt=attempt,
        )
        return {**res, "runtime": int(res["runtime"] * scale(wildcards))}

    return resource_functions(plan)


def get_model_name(wildcards):
    return wildcards.model


def get_labeller_name(wildcards):
    return wildcards.labeller


# --- scoring (rules/evaluate.smk) -------------------------------------------------------------
def get_transfer_runtime(wildcards):
    """Minutes of one transfer task: the paper's protocol trains a classifier per fold."""
    return 240 if STUDY.evaluate.transfer_mode == "paper" else 30


# --- demonstration selection (rules/demos.smk; logic in sentscale.demos) ----------------------
def get_select_spec(demo):
    """The `select` block of a demo choice."""
    return STUDY.demos[demo].select


def get_label_sets():
    """(choice, labeller) of every self-labelled candidate set the study needs."""
    return sorted(
        {
            (cell.demo, labeller)
            for cell in SELECT_CELLS
            for labeller in [get_select_spec(cell.demo).labeller_for(cell.model)]
            if labeller is not None
        }
    )


def get_labellers():
    return sorted({labeller for _, labeller in get_label_sets()})


def get_labeller_model(wildcards):
    """The record of the labeller LM of a candidate set (see model_record)."""
    return model_record(wildcards.labeller)


def get_self_labelled_spec(wildcards):
    """How a choice's candidates are drawn and labelled (candidates.self_labelled)."""
    return get_select_spec(wildcards.demo).candidates.self_labelled.to_dict()


def get_labelling_data(wildcards):
    """The content digest of STS-B train, where candidates are drawn from."""
    return LABELLING_DIGEST


def get_labeller_load_params(wildcards):
    """How the labeller is loaded (batching does not enter one-at-a-time greedy decoding)."""
    return STUDY.embed.for_model(wildcards.labeller).loading()


def get_self_labelled_tsv(wildcards):
    """The self-labelled candidate set of a select cell ([] when it has none)."""
    labeller = get_select_spec(wildcards.demo).labeller_for(wildcards.model)
    if labeller is None:
        return []
    return [f"results/demos/candidates/{wildcards.demo}/{labeller}.tsv"]


def get_candidate_files(wildcards):
    """Candidate files of a choice (candidates.files in the config)."""
    return list(get_select_spec(wildcards.demo).candidates.files)


def get_icl_examples_file(wildcards):
    """A choice's icl_examples file ([] when it has none): a local file, or the pinned download
    of rules/fetch.smk. ancient(): a pinned file's content is fixed by its sha256 (checked again
    when read), so a refetch (new mtime, same bytes) must not rerun the selections."""
    icl = get_select_spec(wildcards.demo).candidates.icl_examples
    if icl is None:
        return []
    return [ancient(icl.file) if icl.fetched else icl.file]


def get_select_params(wildcards):
    """Everything that determines a selection; a change here reruns only its job."""
    cell = get_cell(wildcards)
    select = get_select_spec(cell.demo)
    return {
        "model": cell.model,
        "prompt": STUDY.prompts[cell.prompt].to_dict(),
        "choice": cell.demo,
        "select": select.to_params(),
        "labeller": select.labeller_for(cell.model),
        "data": DATA_DIGESTS[sentscale_demos.SELECTION_TASK],  # STS-B dev
        "embed": STUDY.embed.for_model(cell.model).to_dict(),
        "registry": get_registry_overrides(cell.model),
    }


def get_select_scale(wildcards):
    """Selection runtime in embed-job runtimes: one pass over the dev sentences per
    candidate (halving: its rounds' share of full passes) plus the no-demonstration baseline,
    against the ~200k sentences of an embed job of the paper's grid (all 14 tasks), which the
    per-model runtime is sized for."""
    select = get_select_spec(wildcards.demo)
    passes = math.ceil(sentscale_demos.estimated_full_passes(select)) + 1
    sentences = 2 * (select.dev_max_items or 1500)
    return max(1, math.ceil(passes * sentences / 200_000))


# --- fetched data and pinned downloads (rules/fetch.smk; sentscale.fetch, .datasets) -----------
def get_senteval_input(wildcards=None):
    """The fetched SentEval folder's stamp when the fetch provides data_dir; else [] (the
    user's folder, checked before any job). ancient(): a refetch of the same verified files
    must not rerun finished cells."""
    return [ancient(SENTEVAL_STAMP)] if FETCH_SENTEVAL else []


def get_nli_input(wildcards=None):
    """The fetched NLI triplets when the fetch provides finetune.data; else [] (a file you
    provide is identified by its sha256 in the params). Not ancient(): the params cannot
    hold a digest of bytes fetched later (sentscale.datasets.nli_digest); Snakemake compares
    this file's mtime instead."""
    return [FINETUNE_DATA] if FETCH_NLI else []


def get_task_data(wildcards):
    """The content digest of the files a scoring job's task reads."""
    return DATA_DIGESTS[wildcards.task]


def _fetch_job(log, what, fetch_it):
    """Run one data fetch of rules/fetch.smk with its log open (progress, retries, result);
    a failure is one WorkflowError (and the log's last line)."""
    with open(log, "w", encoding="utf-8") as fh:
        try:
            fetch_it(fh)
        except (SentscaleError, OSError) as err:
            fh.write(f"{err}\n")
            raise WorkflowError(f"fetching {what}: {err}") from None


def fetch_senteval_data(log):
    """rules/fetch.smk: SentEval's data into data_dir, checked against the manifest."""
    _fetch_job(
        log,
        "SentEval's data",
        lambda fh: sentscale_datasets.fetch_senteval(
            SOURCES["senteval"]["url"], STUDY.data_dir, STUDY.tasks_read(), log=fh
        ),
    )


def fetch_nli_data(log):
    """rules/fetch.smk: the NLI triplets of finetune.data (row count; sha256 if pinned)."""
    _fetch_job(
        log,
        "the NLI triplets",
        lambda fh: sentscale_datasets.fetch_nli(
            SOURCES["nli"]["url"],
            FINETUNE_DATA,
            sha256=SOURCES["nli"].get("sha256"),
            log=fh,
        ),
    )


def get_fetches():
    """{path: {url, sha256}} of every file the study downloads: the fetched icl_examples files
    of its select choices (one per pin; a path is named by its pin, so two choices that pin the
    same file share one download)."""
    fetches = {}
    for name in SELECT_CHOICES:
        icl = get_select_spec(name).candidates.icl_examples
        if icl is not None and icl.fetched:
            fetches.setdefault(icl.file, {"url": icl.url, "sha256": icl.sha256})
    return fetches


FETCHES = get_fetches()


def get_fetch_sha256(wildcards):
    return FETCHES[wildcards.fetched]["sha256"]


def fetch_pinned(fetched, log):
    """Run one download of rules/fetch.smk; its log says what came from where."""
    url, sha256 = FETCHES[fetched]["url"], FETCHES[fetched]["sha256"]
    try:
        sentscale_fetch.fetch(url, fetched, sha256)
    except SentscaleError as err:
        with open(log, "w", encoding="utf-8") as fh:
            fh.write(f"{err}\n")
        raise WorkflowError(str(err)) from None
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(f"{url} -> {fetched} (sha256 {sha256}, pin checked)\n")


def _select_cells_of_pair(wildcards):
    """Select cells of one model and prompt (one per select choice)."""
    return [
        c
        for c in SELECT_CELLS
        if (c.model, c.prompt) == (wildcards.model, wildcards.prompt)
    ]


def get_pair_rankings(wildcards):
    """The candidate rankings of one model and prompt (one per select choice)."""
    return [
        f"results/demos/{c.path}/ranking.tsv" for c in _select_cells_of_pair(wildcards)
    ]


def get_pair_choices(wildcards):
    return [c.demo for c in _select_cells_of_pair(wildcards)]


def _select_cells_of_choice(wildcards):
    """Select cells of one prompt and select choice (one per model)."""
    return [
        c
        for c in SELECT_CELLS
        if (c.prompt, c.demo) == (wildcards.prompt, wildcards.demo)
    ]


def get_choice_selected(wildcards):
    return [
        f"results/demos/{c.path}/selected.json"
        for c in _select_cells_of_choice(wildcards)
    ]


def get_choice_rankings(wildcards):
    return [
        f"results/demos/{c.path}/ranking.tsv"
        for c in _select_cells_of_choice(wildcards)
    ]


def get_demo_summary_selected():
    return [f"results/demos/{c.path}/selected.json" for c in SELECT_CELLS]


def get_demo_summary_scores():
    """Scores of every select cell and of its zero-shot counterpart."""
    return [
        f"results/scores/{c.model}/{c.prompt}/{demo}/{task}.json"
        for c in SELECT_CELLS
        for demo in dict.fromkeys([c.demo, NO_DEMO_CHOICE])
        if demo is not None
        for task in STUDY.tasks
    ]


# --- fine-tuning (rules/finetune.smk; logic in sentscale.finetune) ----------------------------
def get_finetune_params(wildcards):
    """Everything that determines an adapter; a change here retrains only that model."""
    return {
        "model": wildcards.model,
        "prompt": STUDY.prompts[STUDY.finetune_prompt].to_dict(),
        "recipe": STUDY.finetune[wildcards.model].to_dict(),
        "embed": {
            k: STUDY.embed.to_dict()[k] for k in ("device", "batch_size", "preprocess")
        },
        # the seed of the STS-B dev subsample scored at each checkpoint (evaluate.seed)
        "dev_seed": STUDY.evaluate.seed,
        "data": DATA_DIGESTS[sentscale_demos.SELECTION_TASK],  # STS-B dev
        "triplets": NLI_DIGEST,
        "registry": get_registry_overrides(wildcards.model),
    }


def get_finetune_resources():
    """Resources of a fine-tune job (sentscale.planning.finetune_resources): one GPU per
    process of the recipe's world_size, runtime from sentscale.finetune.runtime_scale.
    """

    def plan(wildcards, attempt):
        recipe = STUDY.finetune[wildcards.model]
        return finetune_resources(
            STUDY.spec(wildcards.model),
            dtype=recipe.dtype,
            quantization=recipe.quantization,
            world_size=recipe.world_size,
            cluster=STUDY.resources,
            runtime_scale=sentscale_finetune.runtime_scale(recipe),
            attempt=attempt,
        )

    return resource_functions(plan)


# --- what `rule all` builds -------------------------------------------------------------------
def get_aggregate_outputs():
    """Every table and figure (rules/aggregate.smk)."""
    tables = [
        f"results/tables/{n}.{ext}" for n in TABLES for ext in TABLE_FORMATS.values()
    ]
    figures = [f"results/plots/{n}.{ext}" for n in FIGURES for ext in FIGURE_FORMATS]
    return tables + figures


def get_tracking_outputs():
    """One tracked run per cell and the study's summary on the parent run (rules/track.smk);
    nothing when tracking.enabled is false."""
    if not TRACKING_ENABLED:
        return []
    return get_tracked_cells() + ["results/tracking/summary.json"]


def get_demo_outputs():
    """Rankings, plots and summary of the demo selection (nothing without a `select` choice)."""
    if not SELECT_CELLS:
        return []
    pairs = sorted({(c.model, c.prompt) for c in SELECT_CELLS})
    plots = sorted({(c.prompt, c.demo) for c in SELECT_CELLS})
    return (
        [f"results/demos/{m}/{p}/ranking.tsv" for m, p in pairs]
        + [f"results/demos/plots/{p}/{d}.png" for p, d in plots]
        + ["results/demos/summary.csv", "results/demos/summary.md"]
    )


def get_final_output():
    return (
        get_score_files()
        + get_aggregate_outputs()
        + get_tracking_outputs()
        + get_demo_outputs()
    )
