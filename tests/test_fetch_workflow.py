"""rules/fetch.smk end to end: a fresh working directory gets SentEval's data from the
pipeline itself (a tar served on 127.0.0.1, named by `sources.senteval.url`), verified,
then a small study is scored on it; the fetch is not repeated on the next invocation."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import job_stats, run_snakemake
from test_fetch_data import Server, build_tar

from sentscale import datasets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = ["STSBenchmark", "CR"]


def test_a_fresh_machine_fetches_verifies_and_scores(tmp_path, data_dir, models_dir):
    tar = build_tar(data_dir, tasks=TASKS)
    with Server({"/senteval.tar": (tar, "application/x-tar")}) as server:
        config = {
            "study": "fetched",
            "models_dir": str(models_dir.resolve()),
            "sources": {"senteval": {"url": f"{server.base}/senteval.tar"}},
            "models": ["smollm2-135m"],
            "prompts": {"eol": {}},
            "demos": {"none": {}},
            "tasks": TASKS,
            "embed": {"dtype": "float32", "batch_size": 32, "threads": 2},
            "evaluate": {"max_items": 30},
            "tracking": {"enabled": False},
        }  # no data_dir: the default, resources/data/senteval, fetched
        configfile = tmp_path / "config.yaml"
        configfile.write_text(yaml.safe_dump(config))
        workdir = tmp_path / "study"
        proc = run_snakemake(workdir, "--cores", "2", configfile=configfile)
        assert proc.returncode == 0, proc.stderr[-6000:]
        assert job_stats(proc.stdout + proc.stderr)["fetch_senteval"] == 1
        assert [path for path, _ in server.requests] == ["/senteval.tar"]

        fetched = workdir / "resources" / "data" / "senteval"
        stamp = json.loads((fetched / datasets.STAMP).read_text())
        assert set(stamp["tasks"]) == {"STSBenchmark", "CR", "STSBenchmark-dev"}
        score = json.loads((workdir / "results/scores/smollm2-135m/eol/none/CR.json").read_text())
        assert score["n"] == 30
        assert (
            "-> resources/data/senteval"
            in (workdir / "results/logs/fetch/senteval.log").read_text()
        )

        proc = run_snakemake(workdir, "--dry-run", configfile=configfile)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "Nothing to be done" in proc.stdout + proc.stderr
        assert len(server.requests) == 1
