"""Models enter the DAG by identity, not by path (issue 16, items 2, 4 and 17).

The model-loading jobs take the study's record ``results/models/<name>.json`` as input (the
spec's identity and the files it is read from), never a path under ``models_dir``: moving
``models_dir`` reruns nothing, and a real run first checks (names and sizes) that every
recorded model is still where the config says. One real study (smollm2-135m from a copy in
``models_dir``, plus a new name read in place from a local folder), then moves and edits.

The model folders here are hard links to the real provisioned copy: a test may replace a
file (a new inode) but must never write into one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import job_stats, run_snakemake

from sentscale.integrity import PROVENANCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMOL = "smollm2-135m"
LOCAL_NAME = "my-smol"


def linked_copy(src: Path, dst: Path) -> Path:
    """``dst`` with a hard link to every file of ``src`` (a copy across file systems); the
    provenance marker is left out."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.is_file() and path.name != PROVENANCE:
            try:
                os.link(path, dst / path.name)
            except OSError:
                shutil.copy2(path, dst / path.name)
    return dst


def replace_file(path: Path, text: str) -> None:
    """New content under ``path`` as a new file (never in place: it may be a hard link)."""
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def study_config(data_dir: Path, local: Path, **extra) -> dict:
    return {
        "study": "model-identity",
        "data_dir": str(data_dir),
        "registry": {
            LOCAL_NAME: {
                "kind": "causal-lm",
                "family": "llama",
                "params": 134_515_009,
                "source": {"local": str(local)},
            }
        },
        "models": [LOCAL_NAME, SMOL],
        "prompts": {"eol": {}},
        "demos": {"none": {}},
        "tasks": ["STSBenchmark"],
        "embed": {"dtype": "float32", "batch_size": 32, "threads": 2},
        "evaluate": {"max_items": 10},
        "tracking": {"enabled": False},
        **extra,
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_dir, models_dir) -> dict:
    root = tmp_path_factory.mktemp("model-identity")
    models = root / "models-a"
    linked_copy(models_dir / SMOL, models / SMOL)
    # the copy's marker is its own file (provisioning replaces it; never a link to the real one)
    shutil.copyfile(models_dir / SMOL / PROVENANCE, models / SMOL / PROVENANCE)
    local = linked_copy(models_dir / SMOL, root / "my-weights")
    configfile = root / "config.yaml"
    configfile.write_text(yaml.safe_dump(study_config(data_dir, local)))
    workdir = root / "study"
    proc = run_snakemake(
        workdir, "--cores", "2", configfile=configfile, config={"models_dir": str(models)}
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert job_stats(proc.stdout + proc.stderr)["embed"] == 2
    return {"root": root, "models": models, "local": local, "config": configfile, "work": workdir}


def dry_run(study: dict, models: Path, configfile: Path | None = None):
    return run_snakemake(
        study["work"],
        "--dry-run",
        configfile=configfile or study["config"],
        config={"models_dir": str(models)},
    )


def test_a_new_local_source_name_is_provisioned_and_embedded(study):
    """Item 4: a registry entry under a new name with `source: {local: ...}` runs through
    provisioning and embedding; its models_dir folder holds only the marker."""
    record = json.loads((study["work"] / f"results/models/{LOCAL_NAME}.json").read_text())
    assert record["identity"]["source"] == {"local": str(study["local"])}
    assert record["reads_from"] == "local folder"
    weights = study["local"] / "model.safetensors"
    assert record["sizes"]["model.safetensors"] == weights.stat().st_size
    assert "models-a" not in json.dumps(record)  # no models_dir path in the record
    assert sorted(p.name for p in (study["models"] / LOCAL_NAME).iterdir()) == [PROVENANCE]
    meta = json.loads(
        (study["work"] / f"results/embeddings/{LOCAL_NAME}/eol/none.json").read_text()
    )
    assert meta["dim"] == 576
    scores = study["work"] / f"results/scores/{LOCAL_NAME}/eol/none/STSBenchmark.json"
    assert json.loads(scores.read_text())["n"] == 10


def test_moving_models_dir_reruns_nothing(study):
    """Item 17: the same models under another path: the records are unchanged, so no job."""
    moved = study["root"] / "models-moved"
    os.rename(study["models"], moved)
    try:
        proc = dry_run(study, moved)
    finally:
        os.rename(moved, study["models"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_a_models_dir_without_the_model_stops_before_any_job(study):
    """Item 17: a real run checks every recorded model (names and sizes, no hashing) and
    stops with one message naming the model, its record, the folder, the first differing
    file and both fixes."""
    empty = study["root"] / "models-empty"
    empty.mkdir()
    logs = study["work"] / "results" / "logs"
    before = sorted(p for p in logs.rglob("*") if p.is_file())
    proc = run_snakemake(
        study["work"], "--cores", "1", configfile=study["config"],
        config={"models_dir": str(empty)},
    )  # fmt: skip
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert f"model {SMOL!r}" in said and f"results/models/{SMOL}.json" in said
    assert f"{empty / SMOL}" in said and "chat_template.jinja: missing" in said
    assert f"sentscale provision {SMOL} --models-dir {empty}" in said
    assert "snakemake --forcerun results/models/" in said
    assert sorted(p for p in logs.rglob("*") if p.is_file()) == before  # no job started
    assert list(empty.iterdir()) == []
    # a dry run only plans: it needs no models
    assert dry_run(study, empty).returncode == 0


def test_an_override_reruns_only_its_own_provisioning(study, data_dir, tmp_path):
    """Item 2: the provision job's params are that model's identity, not the whole registry
    block: a registry entry for another model reruns no provisioning."""
    cfg = yaml.safe_load(study["config"].read_text())
    cfg["registry"]["opt-125m"] = {"source": {"hub": "someone/opt-125m"}}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    proc = dry_run(study, study["models"], configfile)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "provision_model" not in job_stats(proc.stdout + proc.stderr)


def test_a_changed_local_folder_is_found_at_the_start(study):
    """Item 17 for a local source: the record lists the local folder's files, so a changed
    folder stops a real run (the weights are read in place: nothing would rerun by itself);
    the fix the message gives reprovisions that model and reruns its cells only. Last of the
    tests on `study`: its local folder stays changed."""
    config = study["local"] / "tokenizer_config.json"
    original = config.read_text(encoding="utf-8")
    replace_file(config, original + " ")
    run = ["--cores", "1"]
    proc = run_snakemake(
        study["work"], *run, configfile=study["config"], config={"models_dir": str(study["models"])}
    )
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    size = len(original.encode())
    assert f"model {LOCAL_NAME!r}" in said and str(study["local"]) in said
    assert f"tokenizer_config.json: expected {size} bytes, found {size + 1}" in said
    fix = f"results/models/{LOCAL_NAME}.json"
    assert f"snakemake --forcerun {fix}" in said
    assert "sentscale provision" not in said  # it cannot see the study's registry block
    proc = run_snakemake(
        study["work"], *run, "--forcerun", fix, configfile=study["config"],
        config={"models_dir": str(study["models"])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = job_stats(proc.stdout + proc.stderr)
    assert counts["provision_model"] == 1 and counts["embed"] == 1
    record = json.loads((study["work"] / fix).read_text())
    assert record["sizes"]["tokenizer_config.json"] == size + 1


def test_overriding_a_provisioned_name_uses_the_new_weights(tmp_path, data_dir, models_dir):
    """Item 2: `smollm2-135m` overridden with a local folder of other weights while
    `<models_dir>/smollm2-135m` holds the provisioned copy: the new weights are embedded and
    the old copy makes way for the marker."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other-weights"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(other)
    AutoTokenizer.from_pretrained(models_dir / SMOL).save_pretrained(other)
    models = tmp_path / "models"
    linked_copy(models_dir / SMOL, models / SMOL)
    shutil.copyfile(models_dir / SMOL / PROVENANCE, models / SMOL / PROVENANCE)
    cfg = study_config(data_dir, other, models_dir=str(models))
    cfg["registry"] = {SMOL: {"source": {"local": str(other)}}}
    cfg["models"] = [SMOL]
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path / "study", "--cores", "2", configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-6000:]
    meta = json.loads((tmp_path / f"study/results/embeddings/{SMOL}/eol/none.json").read_text())
    assert meta["spec"]["source"] == {"local": str(other)} and meta["dim"] == 32
    assert sorted(p.name for p in (models / SMOL).iterdir()) == [PROVENANCE]
    assert (models_dir / SMOL / "model.safetensors").is_file()  # the linked original stays


def test_a_local_file_rewritten_with_the_same_size_is_found(tmp_path):
    """New weights of the same shape have the same sizes: the record keeps a local folder's
    mtimes, and a file whose mtime moved is hashed (a touch alone is no change)."""
    from sentscale import integrity

    local = tmp_path / "weights"
    local.mkdir()
    (local / "model.safetensors").write_bytes(b"A" * 64)
    (local / "config.json").write_text("{}", encoding="utf-8")
    identity = {"name": "mine", "kind": "causal-lm", "source": {"local": str(local)}}
    record = tmp_path / "results" / "mine.json"
    integrity.write_record(record, identity, integrity.inventory(local))
    copy = tmp_path / "models" / "mine"
    assert integrity.record_problem(record, identity, copy) is None
    stat = (local / "config.json").stat()
    os.utime(local / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert integrity.record_problem(record, identity, copy) is None  # touched, same bytes
    weights = local / "model.safetensors"
    weights.write_bytes(b"B" * 64)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    problem = integrity.record_problem(record, identity, copy)
    assert problem is not None and problem.startswith("model.safetensors: rewritten since")
    assert integrity.sha256_file(weights) in problem


def test_forced_records_follow_the_forcerun_forms_of_the_command_line():
    from sentscale.provision import forced_records

    records = ["results/models/a.json", "results/models/b.json"]
    assert forced_records(["--cores", "2"], records) == set()
    assert forced_records(["--forcerun", "results/models/b.json"], records) == {records[1]}
    assert forced_records(["--forcerun=provision_model"], records) == set(records)
    assert forced_records(["-F"], records) == set(records)
