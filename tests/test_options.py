"""Typed options: one place for every default (the schema repeats them; this keeps them equal)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from conftest import REPO_ROOT

from sentscale.errors import ConfigError
from sentscale.options import (
    AggregateOptions,
    EmbedOptions,
    EvaluateOptions,
    ResourceOptions,
    TrackingOptions,
)

SCHEMA = yaml.safe_load((REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
BLOCKS = {
    "embed": EmbedOptions,
    "evaluate": EvaluateOptions,
    "resources": ResourceOptions,
    "tracking": TrackingOptions,
    "aggregate": AggregateOptions,
}


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_schema_defaults_equal_the_dataclass_defaults(block):
    cls = BLOCKS[block]
    properties = SCHEMA["properties"][block].get("properties", {})
    fields = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
    }
    assert sorted(properties) == sorted(fields), f"{block}: schema keys differ from {cls}"
    for key, prop in properties.items():
        assert prop.get("default") == fields[key], f"{block}.{key}"


def test_per_model_dtype_resolves_per_model_and_leaves_params_unchanged():
    """The paper grid's float32 with OPT-66B in float16: each model's options carry its dtype,
    and a job's params (to_dict) read exactly as before the key existed."""
    opts = EmbedOptions.from_mapping({"dtype": "float32", "model_dtype": {"opt-66b": "float16"}})
    assert opts.for_model("opt-66b").dtype == "float16"
    assert opts.for_model("opt-13b").dtype == "float32"
    assert opts.for_model("opt-66b").to_dict() == {**EmbedOptions(dtype="float16").to_dict()}
    assert "model_dtype" not in EmbedOptions().to_dict()
    with pytest.raises(ConfigError, match="embed.model_dtype.opt-66b must be one of"):
        EmbedOptions.from_mapping({"model_dtype": {"opt-66b": "fp16"}})


def test_unknown_key_names_the_key_and_the_close_match():
    with pytest.raises(ConfigError) as err:
        ResourceOptions.from_mapping({"gpu_mem_gbb": 80}, "resources")
    assert "resources: unknown key 'gpu_mem_gbb' (did you mean 'gpu_mem_gb'?)" in str(err.value)


def test_round_trip_is_canonical_and_equal():
    opts = EmbedOptions.from_mapping({"threads": 4, "dtype": "bfloat16"}, "embed")
    as_dict = opts.to_dict()
    assert list(as_dict) == sorted(as_dict)
    assert EmbedOptions.from_mapping(as_dict) == opts
    assert opts.batch_size == 16 and opts.threads == 4


@pytest.mark.parametrize("bad", [0, -1, True, "8"])
def test_bad_batch_size_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="embed.batch_size must be an integer >= 1"):
        EmbedOptions(batch_size=bad)


def test_select_block_defaults_equal_the_schema():
    from sentscale.demos import CandidateSources, SelectOptions, SelfLabelled

    select = SCHEMA["properties"]["demos"]["additionalProperties"]["properties"]["select"]
    candidates = select["properties"]["candidates"]["properties"]
    for schema_block, cls in (
        (select["properties"], SelectOptions),
        (candidates, CandidateSources),
        (candidates["self_labelled"]["properties"], SelfLabelled),
    ):
        fields = {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
        }
        assert sorted(schema_block) == sorted(fields), cls
        for key, prop in schema_block.items():
            if "default" in prop:
                assert prop["default"] == fields[key], f"{cls.__name__}.{key}"
