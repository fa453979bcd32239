"""The newer scaling ladders (config/ladders.yaml, docs/ladders.md): Pythia, Qwen2.5 and
Llama 3.x in the registry with their exact sizes, and a dry run through the cluster profile that
plans every size with GPUs, memory and time that fit."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, job_stats

from sentscale.models import Registry

LADDERS = REPO_ROOT / "config" / "ladders.yaml"
CLUSTER_PROFILE = REPO_ROOT / "profiles" / "slurm"
CONFIG = yaml.safe_load(LADDERS.read_text(encoding="utf-8"))
REGISTRY = Registry.load()

#: name -> (hub id, exact total parameters, dtype the study runs it in). Pythia: the cards'
#: "naming convention and parameter count" table (the standard Pile series); Qwen2.5 and
#: Llama 3.x: the safetensors totals (tied embeddings once), which the cards round.
LADDER = {
    "pythia": {
        "pythia-70m": ("EleutherAI/pythia-70m", 70_426_624, "float32"),
        "pythia-160m": ("EleutherAI/pythia-160m", 162_322_944, "float32"),
        "pythia-410m": ("EleutherAI/pythia-410m", 405_334_016, "float32"),
        "pythia-1b": ("EleutherAI/pythia-1b", 1_011_781_632, "float32"),
        "pythia-1.4b": ("EleutherAI/pythia-1.4b", 1_414_647_808, "float32"),
        "pythia-2.8b": ("EleutherAI/pythia-2.8b", 2_775_208_960, "float32"),
        "pythia-6.9b": ("EleutherAI/pythia-6.9b", 6_857_302_016, "float32"),
        "pythia-12b": ("EleutherAI/pythia-12b", 11_846_072_320, "float32"),
    },
    "qwen2.5": {
        "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B", 494_032_768, "bfloat16"),
        "qwen2.5-1.5b": ("Qwen/Qwen2.5-1.5B", 1_543_714_304, "bfloat16"),
        "qwen2.5-3b": ("Qwen/Qwen2.5-3B", 3_085_938_688, "bfloat16"),
        "qwen2.5-7b": ("Qwen/Qwen2.5-7B", 7_615_616_512, "bfloat16"),
        "qwen2.5-14b": ("Qwen/Qwen2.5-14B", 14_770_033_664, "bfloat16"),
        "qwen2.5-32b": ("Qwen/Qwen2.5-32B", 32_763_876_352, "bfloat16"),
        "qwen2.5-72b": ("Qwen/Qwen2.5-72B", 72_706_203_648, "bfloat16"),
    },
    "llama3": {
        "llama3.2-1b": ("meta-llama/Llama-3.2-1B", 1_235_814_400, "bfloat16"),
        "llama3.2-3b": ("meta-llama/Llama-3.2-3B", 3_212_749_824, "bfloat16"),
        "llama3.1-8b": ("meta-llama/Llama-3.1-8B", 8_030_261_248, "bfloat16"),
        "llama3.1-70b": ("meta-llama/Llama-3.1-70B", 70_553_706_496, "bfloat16"),
    },
}
MODELS = {name: entry for family in LADDER.values() for name, entry in family.items()}
BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}


# --- the registry -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(LADDER))
def test_registry_entries_are_the_base_models_with_exact_sizes(family):
    for name, (hub, params, dtype) in LADDER[family].items():
        spec = REGISTRY[name]
        assert spec.kind == "causal-lm" and spec.family == family, name
        assert spec.source.hub == hub, name
        assert "instruct" not in hub.lower() and "deduped" not in hub, name  # one base series
        assert spec.params == params, name
        assert spec.params % 1_000_000 != 0, f"{name}: a rounded (nominal) size"
        assert spec.default_dtype == dtype, name
        assert spec.license and spec.trust_remote_code is False and spec.safetensors_only


@pytest.mark.parametrize("family", sorted(LADDER))
def test_parameter_counts_increase_within_each_family(family):
    sizes = [REGISTRY[name].params for name in LADDER[family]]
    assert len(sizes) >= 4
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    # a ladder: the largest is more than an order of magnitude above the smallest
    assert sizes[-1] > 10 * sizes[0]


def test_gated_and_non_apache_licences_are_stated():
    for name in LADDER["llama3"]:
        assert "gated" in REGISTRY[name].license and "Llama 3." in REGISTRY[name].license
    for name in LADDER["pythia"]:
        assert REGISTRY[name].license == "Apache-2.0"
    assert "Research" in REGISTRY["qwen2.5-3b"].license  # not Apache, unlike 0.5B/1.5B/7B-32B
    assert "Qwen License" in REGISTRY["qwen2.5-72b"].license


# --- the study config -------------------------------------------------------------------------


def test_the_study_runs_the_papers_protocol_on_every_ladder():
    assert CONFIG["models"] == list(MODELS)  # every family, smallest to largest
    assert CONFIG["baselines"] == []
    assert CONFIG["prompts"] == {"eol": {}}
    assert CONFIG["demos"]["none"] == {}
    select = CONFIG["demos"]["paper-search"]["select"]  # chosen per model on all of STS-B dev
    assert select["candidates"] == {"icl_examples": {}}  # the authors' 300 candidates
    assert select["max_candidates"] is None and select["dev_max_items"] is None
    assert set(CONFIG["demos"]) == {"none", "paper-search"}
    assert len(CONFIG["tasks"]) == 14 and len(set(CONFIG["tasks"])) == 14
    assert CONFIG["evaluate"] == {"transfer_mode": "paper"}
    assert CONFIG["resources"]["gpu_mem_gb"] == 80
    assert "finetune" not in CONFIG and "max_items" not in CONFIG["evaluate"]


def test_each_model_runs_in_its_registry_precision():
    embed = CONFIG["embed"]
    for name, (_, _, dtype) in MODELS.items():
        assert embed["model_dtype"].get(name, embed["dtype"]) == dtype, name
        assert REGISTRY[name].default_dtype == dtype, name


def test_the_default_study_keeps_the_local_cpu_ladder():
    default = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    assert default["models"] == ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]
    assert all(REGISTRY[name].source.wheels for name in default["models"])  # offline, CPU
    assert not set(MODELS) & set(default["models"])


# --- the dry run through the cluster profile --------------------------------------------------


def cluster_dry_run_cmd(workdir: Path, configfile: Path, data_dir: Path) -> list[str]:
    """The README's cluster command as a dry run of ``configfile`` in ``workdir``, run from the
    repository root (where the automatic workflow profile ``profiles/default`` applies too)."""
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(CLUSTER_PROFILE),
        "--configfile", str(configfile),
        "--config", f"data_dir={data_dir}",
        "--dry-run",
    ]  # fmt: skip


def jobs_of(log: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(rule, wildcards, resources) of every job a dry run announces."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        pairs = {}
        for key in ("wildcards", "resources"):
            match = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            text = match.group(1) if match else ""
            pairs[key] = dict(i.split("=", 1) for i in text.split(", ") if "=" in i)
        jobs.append((head.group(1), pairs["wildcards"], pairs["resources"]))
    return jobs


@pytest.fixture(scope="module")
def ladders_dry_run(tmp_path_factory, data_dir) -> str:
    workdir = tmp_path_factory.mktemp("ladders-dry-run")
    proc = subprocess.run(
        cluster_dry_run_cmd(workdir, LADDERS, data_dir),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (workdir / "results").exists()
    return proc.stdout + proc.stderr


def model_resources(log: str, rule: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for job_rule, wildcards, res in jobs_of(log):
        if job_rule == rule:
            assert out.setdefault(wildcards["model"], res) == res  # every cell asks the same
    return out


@pytest.mark.integration
def test_dry_run_plans_every_size(ladders_dry_run):
    counts = job_stats(ladders_dry_run)
    n_models, n_cells = len(MODELS), len(MODELS) * 2  # {none, paper-search} per model
    assert counts["provision_model"] == n_models
    assert counts["select_demo"] == n_models  # one selection per model on STS-B dev
    assert counts["fetch_file"] == 1  # the authors' candidates, fetched once
    assert counts["embed"] == n_cells
    assert counts["evaluate_sts"] == counts["evaluate_transfer"] == n_cells * 7
    cells = {
        (w["model"], w["demo"])
        for rule, w, _ in jobs_of(ladders_dry_run)
        if rule == "embed" and w["prompt"] == "eol"
    }
    assert cells == {(m, d) for m in MODELS for d in ("none", "paper-search")}
    assert set(model_resources(ladders_dry_run, "select_demo")) == set(MODELS)


@pytest.mark.integration
@pytest.mark.parametrize("rule", ["embed", "select_demo"])
def test_each_size_gets_gpus_memory_and_time_that_fit(ladders_dry_run, rule):
    gpu_mem = CONFIG["resources"]["gpu_mem_gb"]
    res = model_resources(ladders_dry_run, rule)
    for name, (_, params, dtype) in MODELS.items():
        r = res[name]
        gpus = int(r["gpu"])
        weights_gb = params * BYTES_PER_PARAM[dtype] / 1e9
        need_gb = weights_gb * 1.1 + 2
        assert need_gb <= gpus * gpu_mem, (name, gpus)  # fits
        assert (gpus - 1) * gpu_mem < need_gb, (name, gpus)  # and no more GPUs than needed
        assert gpus == max(1, math.ceil(need_gb / gpu_mem)), name
        assert int(r["cpus_per_gpu"]) == CONFIG["resources"]["cpus_per_gpu"]
        assert weights_gb * 1024 < int(r["mem_mb"]) < (weights_gb + 32) * 1024, name
        for key in ("runtime", "mem_mb", "gpu"):
            assert re.fullmatch(r"\d+", r[key]), (name, key, r[key])  # integers for the plugin
        assert int(r["runtime"]) >= 30
        assert "gpus" not in r and "time_min" not in r and "gpu_type" not in r
    # the largest sizes really need several GPUs (bf16: 141 GB and 145 GB of weights)
    gpus = {name: int(res[name]["gpu"]) for name in MODELS}
    assert gpus["pythia-12b"] == gpus["qwen2.5-32b"] == 1
    assert gpus["llama3.1-70b"] == 2 and gpus["qwen2.5-72b"] == 3


@pytest.mark.integration
@pytest.mark.parametrize("family", sorted(LADDER))
def test_resources_grow_with_size(ladders_dry_run, family):
    res = model_resources(ladders_dry_run, "embed")
    for key in ("gpu", "mem_mb", "runtime"):
        values = [int(res[name][key]) for name in LADDER[family]]
        assert values == sorted(values), (family, key, values)
    runtimes = [int(res[name]["runtime"]) for name in LADDER[family]]
    assert runtimes[-1] > runtimes[0]
    select = model_resources(ladders_dry_run, "select_demo")
    for name in LADDER[family]:  # a selection is ~301 dev passes: longer than the embed job
        assert int(select[name]["runtime"]) > int(res[name]["runtime"])


@pytest.mark.integration
def test_lint_passes(tmp_path):
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--directory", str(tmp_path),
        "--workflow-profile", "none",
        "--configfile", str(LADDERS),  # as CI lints it: without a --config override
        "--lint",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "workflow is in a good condition" in proc.stdout + proc.stderr
