"""Config semantics (sentscale.study) and per-model job resources (sentscale.planning)."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO_ROOT

from sentscale.errors import ConfigError
from sentscale.models import Registry
from sentscale.options import EmbedOptions, ResourceOptions
from sentscale.planning import job_resources
from sentscale.study import NO_DEMO, Cell, Study


@pytest.fixture
def config(repo_root, data_dir):
    cfg = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    return cfg


def test_default_grid_crosses_demos_with_templated_prompts_only(config):
    study = Study.from_config(config)
    cells = list(study.cells())
    n_models, n_demos = len(config["models"]), len(config["demos"])
    # eol x every demo choice, avg x one zero-shot cell, one row per baseline
    assert len(cells) == n_models * (n_demos + 1) + len(config["baselines"])
    assert Cell("smollm2-135m", "avg", NO_DEMO) in cells
    assert Cell("smollm2-135m", "avg", "smoking") not in cells
    assert Cell("minilm-l6", "native", "none") in cells
    demos = study.fixed_demos(Cell("gemma3-270m", "eol", "smoking"))
    assert [tuple(d) for d in demos] == [("A man is smoking.", "Smoking")]
    assert study.spec("minilm-l6").kind == "sentence-transformers"
    sizes = study.model_params()
    assert set(sizes) == set(study.all_models()) and sizes["smollm2-135m"] == 134_515_008


def test_key_order_of_the_config_does_not_change_what_jobs_see(config):
    """Snakemake compares params as text: a re-ordered config must give identical params."""
    reordered = copy.deepcopy(config)
    reordered["embed"] = dict(reversed(list(config["embed"].items())))
    reordered["evaluate"] = dict(reversed(list(config["evaluate"].items())))
    a, b = Study.from_config(config), Study.from_config(reordered)
    assert list(reordered["embed"]) != list(config["embed"])
    assert a.embed == b.embed and a.evaluate == b.evaluate
    assert a.embed.to_dict() == b.embed.to_dict() and a.evaluate.to_dict() == b.evaluate.to_dict()
    assert list(a.embed.to_dict()) == sorted(a.embed.to_dict())
    assert list(b.evaluate.to_dict()) == sorted(b.evaluate.to_dict())
    select = [c.select for c in a.demos.values() if c.kind == "select"]
    assert select and all(list(s.to_dict()) == sorted(s.to_dict()) for s in select)
    assert [c.select for c in b.demos.values() if c.kind == "select"] == select


def test_every_problem_is_reported_in_one_error(config, tmp_path):
    bad = copy.deepcopy(config)
    bad["models"].append("opt-7b")
    bad["prompts"]["broken"] = {"template": "no slot here"}
    bad["tasks"] = ["STSBenchmark", "STS17"]
    with pytest.raises(ConfigError) as err:
        Study.from_config(bad)
    message = str(err.value)
    assert "'opt-7b'" in message and "smollm2-135m" in message  # lists the known names
    assert "prompts.broken" in message and "{sentence}" in message
    assert "STS17" in message


def test_missing_data_file_is_named_before_anything_runs(config, tmp_path):
    (tmp_path / "downstream").mkdir()
    bad = dict(config, data_dir=str(tmp_path))
    with pytest.raises(ConfigError) as err:
        Study.from_config(bad)
    assert "data_dir" in str(err.value)
    assert "downstream/STS/STSBenchmark/sts-test.csv" in str(err.value)


def test_per_model_demos_must_cover_every_model(config):
    bad = copy.deepcopy(config)
    bad["demos"]["paper"] = {"per_model": {"smollm2-135m": {"sentence": "x.", "word": "X"}}}
    with pytest.raises(ConfigError, match=r"demos.paper.per_model.*gemma3-270m"):
        Study.from_config(bad)


def test_baseline_must_be_a_sentence_transformer(config):
    bad = dict(config, baselines=["smollm2-135m"])
    with pytest.raises(ConfigError, match="expected a sentence-transformers"):
        Study.from_config(bad)


@pytest.mark.parametrize(
    ("model", "gpus", "min_mem_gb"),
    [("opt-125m", 1, 16), ("opt-6.7b", 1, 29), ("opt-66b", 2, 148)],
)
def test_gpu_resources_fit_the_paper_grid(model, gpus, min_mem_gb):
    spec = Registry.load()[model]
    res = job_resources(
        spec, EmbedOptions(dtype="float16"), ResourceOptions(gpu_mem_gb=80, cpus_per_gpu=8)
    )
    assert res["gpu"] == gpus and res["cpus_per_gpu"] == 8
    # fp16 weights (2 bytes/param) plus 10 % must fit the GPUs granted
    weights_gb = 2 * spec.params / 1e9
    assert weights_gb * 1.1 < res["gpu"] * 80
    assert res["mem_mb"] >= min_mem_gb * 1024
    assert isinstance(res["runtime"], int) and res["runtime"] >= 30


def test_cpu_resources_have_no_gpu_and_grow_on_retry():
    spec = Registry.load()["qwen2.5-coder-0.5b"]
    first = job_resources(spec, EmbedOptions(dtype="float32"), ResourceOptions())
    second = job_resources(spec, EmbedOptions(dtype="float32"), ResourceOptions(), attempt=2)
    assert "gpu" not in first
    assert first["mem_mb"] > 0.63 * 4 * 1024  # fp32 weights of 630M params
    assert abs(second["mem_mb"] - 2 * first["mem_mb"]) <= 1
    assert second["runtime"] == 2 * first["runtime"]


# --- the name `none` (issue 16, item 3) ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "holds"),
    [
        ({"sentence": "A man is smoking.", "word": "Smoking"}, "a fixed demonstration"),
        ({"select": {"candidates": {"dictionary": True}}}, "a selection"),
    ],
)
def test_a_demo_named_none_must_be_the_zero_shot_choice(config, spec, holds):
    """`none` is the demo label of every zero-shot cell (avg, baselines): a choice of that name
    holding a demonstration would be prepended to `avg` and still read `none` in the tables."""
    bad = copy.deepcopy(config)
    bad["demos"]["none"] = spec
    with pytest.raises(ConfigError) as err:
        Study.from_config(bad)
    message = str(err.value)
    assert "demos.none: the name 'none' is reserved for no demonstration (none: {}); " in message
    assert f"it holds {holds}" in message and "give it another name" in message
    assert "demos.smoking" not in message  # only the offending choice
    fine = Study.from_config(dict(config, demos={"none": {}, "smoking": bad["demos"]["smoking"]}))
    assert fine.demos["none"].kind == "none"


# --- unknown keys at any depth (issue 16, items 10 and 11) ------------------------------------

SCHEMA_FILE = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"

#: (where the key goes, misspelt key, the close match the message suggests)
MISSPELLINGS = [
    ((), "modles", "models"),
    (("resources",), "gpu_mem_gbb", "gpu_mem_gb"),
    (("embed",), "batchsize", "batch_size"),
    (("evaluate",), "max_item", "max_items"),
    (("aggregate",), "bootstrap_resample", "bootstrap_resamples"),
    (("tracking",), "enabeld", "enabled"),
    (("sources", "senteval"), "ulr", "url"),
    (("prompts", "eol"), "templte", "template"),
    (("demos", "smoking"), "sentense", "sentence"),
    (("demos", "selected", "select"), "dev_max_item", "dev_max_items"),
    (("demos", "selected", "select", "candidates"), "self_labeled", "self_labelled"),
    (("demos", "selected", "select", "candidates", "self_labelled"), "labeler", "labeller"),
    (("finetune",), "lora_rr", "lora_r"),
    (("finetune", "models", "smollm2-135m"), "learning_rte", "learning_rate"),
    (("registry", "smollm2-135m"), "parms", "params"),
    (("registry", "smollm2-135m", "source"), "revison", "revision"),
]


@pytest.mark.parametrize(
    ("where", "key", "close"), MISSPELLINGS, ids=[".".join((*w, k)) for w, k, _ in MISSPELLINGS]
)
def test_a_misspelt_key_at_any_depth_is_refused_naming_it_and_its_close_match(
    config, where, key, close
):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    bad = copy.deepcopy(config)
    bad["finetune"] = {"models": {"smollm2-135m": {}}}
    bad["registry"] = {"smollm2-135m": {"source": {"hub": "HuggingFaceTB/SmolLM2-135M"}}}
    block = bad
    for part in where:
        block = block.setdefault(part, {})
    block[key] = block.pop(close, 1)
    with pytest.raises(WorkflowError):  # the schema refuses it (Snakemake's validate)
        validate(copy.deepcopy(bad), str(SCHEMA_FILE))
    from sentscale.config_schema import schema_problems

    inside = ".".join(where) or "the config"
    assert schema_problems(bad, yaml.safe_load(SCHEMA_FILE.read_text())) == [
        f"unknown key {key!r} in {inside} (did you mean {close!r}?)"
    ]


def test_schema_failures_name_the_key_the_value_and_the_expectation(config):
    from sentscale.config_schema import schema_problems

    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    bad = copy.deepcopy(config)
    bad["embed"]["batch_size"] = 0
    bad["evaluate"]["transfer_mode"] = "slow"
    bad["tasks"] = []
    del bad["prompts"]
    assert schema_problems(bad, schema) == [
        "missing key 'prompts' in the config",
        "tasks: got []; expected a list of strings (at least 1 item, unique)",
        "embed.batch_size: got 0; expected an integer >= 1",
        "evaluate.transfer_mode: got 'slow'; expected one of 'fast', 'paper'",
    ]
    assert schema_problems(config, schema) == []


def test_the_registry_schema_knows_every_spec_field():
    """The config schema lists the registry's spec and source fields (sentscale.models checks
    their values); the two lists must not drift apart."""
    from sentscale import models

    entry = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["registry"][
        "additionalProperties"
    ]
    assert set(entry["properties"]) == models._SPEC_KEYS - {"name"}
    assert set(entry["properties"]["source"]["properties"]) == models._SOURCE_KEYS
