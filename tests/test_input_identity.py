"""Every file a job reads is an input Snakemake sees or a digest in its params (issue 16,
item 1): editing a data file reruns exactly the jobs that read it; the same bytes under
another path rerun nothing (sentscale.datasets: task_digests, files_digest, nli_digest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import TEST_STUDY_CONFIG, job_stats, run_snakemake
from test_reliability import registry_entry, save_tiny_lm

from sentscale import data, datasets

STSB = "downstream/STS/STSBenchmark"
NLI_STAND_IN = "nli/snli_devtest_triplets.csv"


def edit_first_gold(path: Path) -> None:
    """Change the gold score of the first line of an STS-B file (column 5)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    cols = lines[0].split("\t")
    cols[4] = "0.123" if cols[4] != "0.123" else "0.456"
    lines[0] = "\t".join(cols)
    path.write_text("".join(lines), encoding="utf-8")


def test_digests_follow_content_not_path(data_dir, tmp_path):
    tasks = ["STSBenchmark", "STSBenchmark-dev", "CR", "TREC"]
    here = datasets.task_digests(tasks, data_dir, fetched=False)
    copy = tmp_path / "senteval"
    for task in tasks:
        for rel in data.required_files(task):
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_dir / rel, copy / rel)
    assert datasets.task_digests(tasks, copy, fetched=False) == here  # moved: same params
    # a folder still to be fetched: the manifest's sha256s give the same params before the
    # fetch as after it (no rerun of the first run's jobs)
    assert datasets.task_digests(tasks, tmp_path / "not-yet", fetched=True) == here
    assert datasets.task_digests(tasks, tmp_path / "missing", fetched=False) == dict.fromkeys(tasks)
    edit_first_gold(copy / STSB / "sts-test.csv")
    edited = datasets.task_digests(tasks, copy, fetched=False)
    assert edited["STSBenchmark"] != here["STSBenchmark"]
    assert {t: edited[t] for t in tasks[1:]} == {t: here[t] for t in tasks[1:]}


def test_nli_digest_is_the_file_sha256_or_the_fetch_pin(data_dir, tmp_path):
    triplets = tmp_path / "nli.csv"
    shutil.copyfile(data_dir.parent / NLI_STAND_IN, triplets)
    got = datasets.nli_digest(triplets, fetched=False, sha256=None)
    assert got == datasets.fetch.sha256_file(data_dir.parent / NLI_STAND_IN)
    assert datasets.nli_digest(triplets, fetched=True, sha256="ab" * 32) == "ab" * 32
    assert datasets.nli_digest(tmp_path / "none.csv", fetched=False, sha256=None) is None


@pytest.mark.integration
def test_editing_a_data_file_reruns_exactly_the_jobs_that_read_it(
    local_test_study, test_study_config, data_dir, tmp_path
):
    """The finished .test study, pointed at a copy of its data: nothing to do; edit STS-B's
    test file: every cell is embedded and scored again, the demo selection (STS-B dev) and
    the candidate labelling (STS-B train) are not; edit the dev file: the selection too."""
    copy = tmp_path / "senteval"
    shutil.copytree(data_dir / "downstream", copy / "downstream")
    config = dict(test_study_config, data_dir=str(copy))

    def planned() -> dict[str, int]:
        proc = run_snakemake(
            local_test_study, "--dry-run", configfile=TEST_STUDY_CONFIG, config=config
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return job_stats(proc.stdout + proc.stderr)

    assert planned() == {}  # a copy with the same bytes: nothing to do
    cfg = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
    cells = len(list((local_test_study / "results" / "embeddings").rglob("*.npz")))
    edit_first_gold(copy / STSB / "sts-test.csv")
    jobs = planned()
    assert jobs["embed"] == cells
    assert jobs["evaluate_sts"] == cells * sum(t.startswith("STS") for t in cfg["tasks"])
    assert "select_demo" not in jobs and "label_candidates" not in jobs
    edit_first_gold(copy / STSB / "sts-dev.csv")
    jobs = planned()
    assert jobs["select_demo"] == 1 and "label_candidates" not in jobs
    edit_first_gold(copy / STSB / "sts-train.csv")
    assert planned()["label_candidates"] == 1


@pytest.mark.integration
def test_editing_the_nli_triplets_retrains_and_moving_them_does_not(data_dir, tmp_path):
    """A tiny fine-tune job (a random Llama read in place, 2 steps) on a copy of the NLI
    stand-in: moving the file reruns nothing, editing one triplet retrains."""
    triplets = tmp_path / "nli" / "triplets.csv"
    triplets.parent.mkdir()
    shutil.copyfile(data_dir.parent / NLI_STAND_IN, triplets)
    config = {
        "study": "identity",
        "data_dir": str(data_dir),
        "models_dir": str(tmp_path / "models"),
        "registry": {"tiny": registry_entry(save_tiny_lm(tmp_path / "tiny"))},
        "models": ["tiny"],
        "prompts": {"eol": {}},
        "demos": {"none": {}},
        "tasks": ["STSBenchmark"],
        "embed": {"dtype": "float32", "batch_size": 8, "threads": 2},
        "tracking": {"enabled": False},
        "finetune": {
            "data": str(triplets),
            "prompt": "eol",
            "quantization": None,
            "mixed_precision": None,
            "dtype": "float32",
            "lora_r": 4,
            "lora_alpha": 8,
            "batch_size": 4,
            "micro_batch_size": 4,
            "warmup_steps": 0,
            "max_steps": 2,
            "eval_steps": 2,
            "dev_max_items": 12,
            "models": {"tiny": {}},
        },
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "study"
    target = "results/finetune/tiny/train.json"
    proc = run_snakemake(workdir, "--cores", "2", target, configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-6000:]

    def planned(path: Path) -> dict[str, int]:
        config["finetune"]["data"] = str(path)
        configfile.write_text(yaml.safe_dump(config))
        proc = run_snakemake(workdir, "--dry-run", target, configfile=configfile)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return job_stats(proc.stdout + proc.stderr)

    moved = tmp_path / "elsewhere.csv"
    triplets.rename(moved)
    assert planned(moved) == {}
    lines = moved.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace("a", "the", 1)
    moved.write_text("".join(lines), encoding="utf-8")
    assert planned(moved) == {"finetune": 1}
