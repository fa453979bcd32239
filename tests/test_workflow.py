"""The study as a real Snakemake DAG: an end-to-end .test run, incremental reruns, paper dry-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, TEST_STUDY_CONFIG, job_stats, run_snakemake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEST_CONFIG = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
MAX_ITEMS = TEST_CONFIG["evaluate"]["max_items"]
# cells of the .test study: eol x {none, smoking, selected}, avg (zero-shot), MiniLM
CELLS = [
    ("smollm2-135m", "eol", "none"),
    ("smollm2-135m", "eol", "smoking"),
    ("smollm2-135m", "eol", "selected"),
    ("smollm2-135m", "avg", "none"),
    ("minilm-l6", "native", "none"),
]


def dry_run(workdir: Path, configfile: Path, config: dict[str, str]) -> dict[str, int]:
    proc = run_snakemake(workdir, "--dry-run", configfile=configfile, config=config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return job_stats(proc.stdout + proc.stderr)


def test_every_cell_and_task_is_scored_with_the_right_counts(local_test_study):
    expected_n = {
        "STSBenchmark": MAX_ITEMS,  # test split only
        "STS16": 5 * MAX_ITEMS,  # five subsets, each larger than MAX_ITEMS
        "CR": MAX_ITEMS,
        "TREC": MAX_ITEMS,  # official test split (500) subsampled
    }
    for cell in CELLS:
        for task in TEST_CONFIG["tasks"]:
            path = local_test_study / "results" / "scores" / Path(*cell) / f"{task}.json"
            result = json.loads(path.read_text())
            assert result["n"] == expected_n[task], (cell, task)
            assert result["cell"] == dict(zip(("model", "prompt", "demo"), cell, strict=True))
            low = 0 if task in ("CR", "TREC") else -100
            assert low <= result["score"] <= 100, (cell, task, result["score"])
            assert len(result["data_fingerprint"]) == 64


def test_scores_are_plausible_for_real_encoders(local_test_study):
    """MiniLM is a trained sentence encoder: far above chance on every task even on 60 items;
    PromptEOL beats mean pooling of the same LM on STS (the paper's Table 1 finding)."""
    table = pd.read_csv(local_test_study / "results" / "tables" / "scores.csv")
    assert len(table) == len(CELLS)
    minilm = table[table.model == "minilm-l6"].iloc[0]
    assert minilm["STSBenchmark"] > 75 and minilm["STS16"] > 65
    assert minilm["TREC"] > 40  # six classes: chance is ~23 % (largest class)
    smollm = table[table.model == "smollm2-135m"].set_index(["prompt", "demo"])
    assert smollm.loc[("eol", "none"), "STS avg"] > smollm.loc[("avg", "none"), "STS avg"]


def test_embedding_metadata_records_what_determines_the_vectors(local_test_study):
    meta = json.loads(
        (local_test_study / "results/embeddings/smollm2-135m/eol/smoking.json").read_text()
    )
    assert meta["prompt"]["template"] == 'This sentence : "{sentence}" means in one word:"'
    assert meta["prompt"]["demos"] == [["A man is smoking.", "Smoking"]]
    assert meta["embed"]["dtype"] == "float32"
    assert meta["n_sentences"] > 0 and meta["timings"]["sentences_per_s"] > 0
    bench = local_test_study / "results/benchmarks/embed/smollm2-135m/eol/smoking.tsv"
    assert float(bench.read_text().splitlines()[1].split("\t")[0]) > 0


def test_second_invocation_runs_no_job(local_test_study, test_study_config):
    proc = run_snakemake(
        local_test_study, "--dry-run", configfile=TEST_STUDY_CONFIG, config=test_study_config
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_moving_the_data_folder_reruns_nothing(local_test_study, test_study_config, tmp_path):
    """Paths are not params: the same data under another path (scores record its
    fingerprint) leaves every finished job as it is."""
    moved = tmp_path / "senteval"
    moved.symlink_to(Path(test_study_config["data_dir"]))
    proc = run_snakemake(
        local_test_study,
        "--dry-run",
        configfile=TEST_STUDY_CONFIG,
        config=dict(test_study_config, data_dir=str(moved)),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _variant_config(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_new_prompt_variant_adds_only_its_cells(local_test_study, test_study_config, tmp_path):
    configfile = _variant_config(tmp_path, lambda c: c["prompts"].update({"means": {}}))
    counts = dry_run(local_test_study, configfile, test_study_config)
    n_demos, n_tasks = len(TEST_CONFIG["demos"]), len(TEST_CONFIG["tasks"])
    assert counts["embed"] == n_demos  # means x every demo choice, nothing else re-embedded
    assert counts["evaluate_sts"] + counts["evaluate_transfer"] == n_demos * n_tasks
    assert counts["aggregate"] == 1


def test_changing_a_template_reruns_only_its_cells(local_test_study, test_study_config, tmp_path):
    new = {"template": 'This sentence : "{sentence}" means in a word:"'}
    configfile = _variant_config(tmp_path, lambda c: c["prompts"].update({"eol": new}))
    counts = dry_run(local_test_study, configfile, test_study_config)
    n_demos, n_tasks = len(TEST_CONFIG["demos"]), len(TEST_CONFIG["tasks"])
    assert counts["embed"] == n_demos  # the eol cells only; avg and MiniLM untouched
    assert counts["evaluate_sts"] + counts["evaluate_transfer"] == n_demos * n_tasks


def test_paper_grid_dry_run_has_the_expected_jobs(tmp_path, data_dir):
    paper = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    # the NLI triplets the paper fine-tunes on are a download; the SNLI stand-in fills in
    triplets = data_dir.parent / "nli" / "snli_devtest_triplets.csv"
    counts = dry_run(
        tmp_path,
        REPO_ROOT / "config" / "paper.yaml",
        {"data_dir": str(data_dir), "finetune": f"{{data: {triplets}}}"},
    )
    n_models = len(paper["models"])
    n_tuned = len(paper["finetune"]["models"])  # OPT 1.3B-13B, LLaMA 7B-30B: one cse cell each
    n_cells = n_models * len(paper["demos"]) + n_tuned
    assert n_models == 12 and n_tuned == 7 and n_cells == 43
    assert counts["provision_model"] == n_models
    assert counts["finetune"] == n_tuned
    assert counts["embed"] == n_cells
    assert counts["evaluate_sts"] == n_cells * 7
    assert counts["evaluate_transfer"] == n_cells * 7


def test_bad_config_fails_before_any_job_with_one_message(tmp_path, test_study_config):
    def break_it(cfg):
        cfg["models"].append("opt-7b")
        cfg["prompts"]["broken"] = {"template": "no slot"}

    proc = run_snakemake(
        tmp_path,
        "--cores",
        "1",
        configfile=_variant_config(tmp_path, break_it),
        config=test_study_config,
    )
    assert proc.returncode != 0
    assert "invalid study configuration" in proc.stderr
    assert "'opt-7b'" in proc.stderr and "prompts.broken" in proc.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_lint_and_dry_run_need_no_data_and_plan_the_fetches_first(tmp_path):
    """On a machine without any data (an empty folder), `snakemake --lint` and `-n` of the
    paper grid succeed and plan the downloads (rules/fetch.smk) ahead of everything else. A
    real run of the fetch with no network stops with one message naming the URL and the
    data_dir way out (a closed local port stands in: the tests never reach huggingface.co)."""
    paper = REPO_ROOT / "config" / "paper.yaml"
    proc = run_snakemake(tmp_path, "--lint", configfile=paper)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "workflow is in a good condition" in proc.stdout + proc.stderr
    counts = dry_run(tmp_path, paper, {})
    assert counts["embed"] == 43 and counts["finetune"] == 7
    assert counts["fetch_senteval"] == 1 and counts["fetch_nli"] == 1
    assert set(list(counts)[:3]) == {"fetch_senteval", "fetch_nli", "fetch_file"}
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/senteval.tar"
    stamp = "resources/data/senteval/.sentscale-fetched.json"
    proc = run_snakemake(
        tmp_path, "--cores", "1", stamp, configfile=paper,
        config={"sources": f"{{senteval: {{url: '{url}'}}}}"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"cannot fetch {url}" in proc.stderr and "data_dir can point" in proc.stderr
    assert not (tmp_path / "resources" / "data" / "senteval").exists()
    assert not (tmp_path / "results" / "scores").exists()  # nothing else ran


def test_a_data_dir_you_provide_is_checked_first_and_never_fetched_over(tmp_path):
    """An existing data_dir is the user's: no fetch job, and a real run stops before any job
    with one message naming each missing file."""
    mine = tmp_path / "my-senteval"
    mine.mkdir()
    counts = dry_run(tmp_path, TEST_STUDY_CONFIG, {"data_dir": str(mine)})
    assert "fetch_senteval" not in counts and counts["embed"] == len(CELLS)
    proc = run_snakemake(
        tmp_path, "--cores", "1", configfile=TEST_STUDY_CONFIG, config={"data_dir": str(mine)}
    )
    assert proc.returncode != 0
    assert "invalid study configuration" in proc.stderr
    assert "data_dir" in proc.stderr and "no downstream/ folder" in proc.stderr
    assert list(mine.iterdir()) == [] and not (tmp_path / "results").exists()


def test_a_model_registered_in_the_config_runs_through_the_whole_dag(
    tmp_path, data_dir, models_dir
):
    """The registry bug: a model added by the config's `registry:` block (7B parameters, the
    real smollm2 weights read in place) used to get params 0 in the tables and sort before
    every real model. Through the whole DAG it must sort by its registered size, pair with the
    smaller model in the scale table, and embed exactly as the model whose weights it has."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "smollm2-135m").symlink_to(models_dir / "smollm2-135m")
    config = {
        "study": "registry",
        "data_dir": str(data_dir),
        "models_dir": str(models),
        "registry": {
            "my-llm-7b": {
                "kind": "causal-lm",
                "family": "llama",
                "params": 7_000_000_000,
                "source": {"local": str(models_dir / "smollm2-135m")},
            }
        },
        "models": ["my-llm-7b", "smollm2-135m"],
        "prompts": {"eol": {}},
        "demos": {"none": {}},
        "tasks": ["STSBenchmark"],
        "embed": {"dtype": "float32", "batch_size": 32, "threads": 2},
        "evaluate": {"max_items": 30},
        "tracking": {"enabled": False},
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "study"
    proc = run_snakemake(workdir, "--cores", "2", configfile=configfile)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert job_stats(proc.stdout + proc.stderr)["embed"] == 2

    scores = pd.read_csv(workdir / "results/tables/scores.csv")
    assert list(scores["model"]) == ["smollm2-135m", "my-llm-7b"]  # by size, not by name
    assert list(scores["params"]) == [134_515_008, 7_000_000_000]
    same = scores.set_index("model")["STSBenchmark"]
    assert same["my-llm-7b"] == pytest.approx(same["smollm2-135m"], abs=1e-9)  # same weights
    scale = pd.read_csv(workdir / "results/tables/scale.csv")
    assert set(zip(scale["smaller"], scale["larger"], strict=True)) == {
        ("smollm2-135m", "my-llm-7b")
    }
    meta = json.loads((workdir / "results/embeddings/my-llm-7b/eol/none.json").read_text())
    assert meta["spec"]["params"] == 7_000_000_000
    assert meta["spec"]["source"] == {"local": str(models_dir / "smollm2-135m")}
    marker = json.loads((models / "my-llm-7b" / "sentscale-provenance.json").read_text())
    assert marker["source"] == {"local": str(models_dir / "smollm2-135m")}
    assert (workdir / "results/plots/scaling_sts.png").stat().st_size > 0


def test_a_misspelt_top_level_key_is_named_in_a_few_lines(tmp_path):
    """`modles:` for `models:` used to print "'models' is a required property" and a 720-line
    schema dump: one short message names the unknown key and its close match instead."""
    bad = _variant_config(tmp_path, lambda cfg: cfg.update(modles=cfg.pop("models")))
    proc = run_snakemake(tmp_path, "--dry-run", configfile=bad)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "unknown key 'modles' in the config (did you mean 'models'?)" in said
    assert "required property" not in said and "properties" not in said
    assert len(said.strip().splitlines()) < 20, said


def test_running_from_another_directory_keeps_the_profile_and_asks_for_a_config(
    tmp_path, monkeypatch
):
    """`snakemake -s <repo>/workflow/Snakefile` from elsewhere: Snakemake's own lookup finds
    the workflow profile next to the Snakefile (workflow/profiles/default), and without
    --configfile the run stops with one line saying what to do (the working directory holds
    the study: its results/ and the config's relative paths), never a guessed config."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO_ROOT / "workflow/Snakefile")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    profile = REPO_ROOT / "workflow" / "profiles" / "default"
    assert f"workflow specific profile {profile} " in log
    assert profile.resolve() == (REPO_ROOT / "profiles" / "default").resolve()
    from snakemake.cli import parse_args

    monkeypatch.chdir(tmp_path)
    _, args = parse_args(cmd[3:])
    assert args.keep_going and args.rerun_incomplete and args.printshellcmds
    said = [line for line in log.splitlines() if "config/config.yaml" in line]
    assert len(said) == 1 and f"cd {REPO_ROOT}" in said[0] and "--configfile" in said[0]
    assert not (tmp_path / "results").exists()
    proc = subprocess.run(
        [*cmd, "--configfile", str(TEST_STUDY_CONFIG)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert f"workflow specific profile {profile} " in log
    assert "fetch_senteval" in log  # the study lives here: data_dir is relative to it
