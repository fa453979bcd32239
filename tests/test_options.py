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
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    assert sorted(properties) == sorted(fields), f"{block}: schema keys differ from {cls}"
    for key, prop in properties.items():
        assert prop.get("default") == fields[key], f"{block}.{key}"


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
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        assert sorted(schema_block) == sorted(fields), cls
        for key, prop in schema_block.items():
            if "default" in prop:
                assert prop["default"] == fields[key], f"{cls.__name__}.{key}"
