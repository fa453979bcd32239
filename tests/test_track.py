"""MLflow tracking against a real `mlflow server` on 127.0.0.1 and the sqlite default.

The server runs as a subprocess on a free port with its own sqlite store in a temporary folder,
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (no job-runner processes), and is stopped by its
process id (its process group: uvicorn workers included) when the module's tests are done.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentscale import io, sts, track, track_sweep
from sentscale.aggregate import Bootstrap

MLFLOW = Path(sys.executable).with_name("mlflow")
TASKS = ("STSBenchmark", "CR")
CELLS = [
    ("smollm2-135m", "eol", "none"),
    ("smollm2-135m", "eol", "smoking"),
    ("minilm-l6", "native", "none"),
]
SPECS = {
    "smollm2-135m": {
        "name": "smollm2-135m",
        "family": "smollm2",
        "kind": "causal-lm",
        "params": 134515008,
    },
    "minilm-l6": {
        "name": "minilm-l6",
        "family": "minilm",
        "kind": "sentence-transformers",
        "params": 22713216,
    },
}
TEMPLATE = 'This sentence : "{sentence}" means in one word:"'
# what a reader sees in the runs table: the model's alias, then prompt/demo
RUN_NAMES = {
    ("smollm2-135m", "eol", "none"): "smollm135m eol/none",
    ("smollm2-135m", "eol", "smoking"): "smollm135m eol/smoking",
    ("minilm-l6", "native", "none"): "minilm-l6 native/none",
}
SCORES: dict[tuple, dict] = {}  # the score files write_cell wrote last, by cell


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (its id is the server's pid), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(MLFLOW),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{folder / 'server.db'}",
                "--artifacts-destination",
                str(folder / "artifacts"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,  # own process group: stopped as a whole by its pid
        )
    try:
        wait_healthy(url, proc, log)
        yield {"url": url, "folder": folder, "pid": proc.pid}
    finally:
        stop(proc)


def write_cell(root: Path, cell: tuple[str, str, str], seed: int) -> dict:
    """The files a tracked cell reads: score JSONs, embed metadata and benchmarks."""
    model, prompt, demo = cell
    path = "/".join(cell)
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 5, 80)
    system = gold + rng.normal(0, 1.0 + seed / 4, 80)
    figures = sts.correlations(system, gold)
    meta_cell = dict(zip(("model", "prompt", "demo"), cell, strict=True))
    protocol = {"max_items": 60, "seed": 1111}
    scores = {
        "STSBenchmark": {
            "task": "STSBenchmark",
            "cell": meta_cell,
            "score": 100 * figures["spearman"],
            "n": 80,
            "metric": "spearman_test_x100",
            "test": figures,
            "protocol": protocol,
            "pairs": sts.scored_pairs({"test": (system, gold)}),
            "data_fingerprint": "a" * 64,
        },
        "CR": {
            "task": "CR",
            "cell": meta_cell,
            "score": 70.0 + seed,
            "accuracy": 70.0 + seed,
            "n": 60,
            "metric": "accuracy_x100",
            "mode": "fast",
            "protocol": protocol,
            "data_fingerprint": "b" * 64,
        },
    }
    files = {}
    for task, result in scores.items():
        files[task] = io.write_json(root / "scores" / path / f"{task}.json", result)
    SCORES[cell] = scores
    demos = [["A man is smoking.", "Smoking"]] if demo == "smoking" else []
    meta = {
        "model": model,
        "spec": SPECS[model],
        "prompt": None
        if prompt == "native"
        else {
            "prompt": prompt,
            "template": TEMPLATE,
            "pooling": "last",
            "demos": demos,
            "preprocess": True,
        },
        "embed": {"dtype": "float32", "batch_size": 32},
        "tasks": list(TASKS),
        "data_fingerprints": {"STSBenchmark": "a" * 64, "CR": "b" * 64},
        "n_sentences": 839,
        "timings": {"sentences_per_s": 20.0 + seed, "encode_s": 40.0, "load_s": 2.0},
    }
    io.write_json(root / "embeddings" / f"{path}.json", meta)
    bench = root / "benchmarks" / "embed" / f"{path}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text("s\th:m:s\tmax_rss\n37.5\t0:00:37\t1165.0\n")
    evaluate = root / "benchmarks" / "evaluate" / path / "CR.tsv"
    evaluate.parent.mkdir(parents=True, exist_ok=True)
    evaluate.write_text("s\th:m:s\tmax_rss\n4.5\t0:00:04\t600.0\n")
    return {
        "score_files": [files[t] for t in TASKS],
        "embed_meta": root / "embeddings" / f"{path}.json",
        "embed_benchmark": bench,
        "evaluate_benchmarks": [evaluate],
        "scores": scores,
    }


def track_study(
    root: Path, uri: str | None, results_dir: Path | None = None, experiment: str | None = None
) -> tuple:
    """What the workflow does: the sweep rule once, then one tracking job per cell."""
    results_dir = results_dir or root / "results"
    sweep = track.mlflow_parent_job(
        study="ci",
        settings={"tasks": list(TASKS), "embed": {"dtype": "float32"}},
        uri=uri,
        experiment=experiment,
        out_json=results_dir / "tracking" / "parent.json",
        results_dir=results_dir,
    )
    records = []
    for seed, cell in enumerate(CELLS):
        files = write_cell(root, cell, seed)
        records.append(
            track.track_cell_job(
                sweep_json=results_dir / "tracking" / "parent.json",
                cell=dict(zip(("model", "prompt", "demo"), cell, strict=True)),
                settings={"model": cell[0], "prompt": cell[1], "demo": cell[2]},
                score_files=files["score_files"],
                embed_meta=files["embed_meta"],
                embed_benchmark=files["embed_benchmark"],
                evaluate_benchmarks=files["evaluate_benchmarks"],
                boot=Bootstrap(),
                out_json=results_dir / "tracking" / f"{'/'.join(cell)}.json",
            )
        )
    return sweep, records


def all_runs(uri: str, experiment_id: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client, client.search_runs([experiment_id], max_results=100)


def check_study(uri: str, sweep: dict, records: list[dict], legacy: bool = False) -> None:
    """One parent and a child per cell, as a reader should see them; ``legacy``: runs first
    logged before issue 18 (they keep the param data_fingerprint: params are immutable)."""
    client, runs = all_runs(uri, sweep["experiment_id"])
    assert len(runs) == 1 + len(CELLS)
    parents = [r for r in runs if r.data.tags.get(track.ROLE_TAG) == "sweep"]
    children = [r for r in runs if r.data.tags.get(track.ROLE_TAG) == "cell"]
    assert len(parents) == 1 and len(children) == len(CELLS)
    parent = parents[0]
    assert parent.info.run_id == sweep["run_id"]
    experiment = client.get_experiment(sweep["experiment_id"])
    # apart from MLflow's own "Default"; tagged as a runs-and-metrics experiment
    assert experiment.name == "sentscale/ci" == sweep["experiment_name"]
    assert experiment.tags[track.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # the parent's params are not repeated as tags (issue 18, item 6)
    assert parent.data.params["study"] == "ci" and "study" not in parent.data.tags
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == set(RUN_NAMES.values())
    for seed, cell in enumerate(CELLS):
        run = by_name[RUN_NAMES[cell]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
        spec = SPECS[cell[0]]
        # the short name's cell in full in a tag; no param repeated as a tag
        assert tags[track.CELL_TAG] == "/".join(cell)
        assert not set(params) & set(tags), set(params) & set(tags)
        assert params["model"] == cell[0] and params["prompt"] == cell[1]
        assert params["family"] == spec["family"] and params["params"] == str(spec["params"])
        assert params["demo"] == cell[2] and params["dtype"] == "float32"
        assert params["template"] == (
            TEMPLATE if cell[1] != "native" else "(none: sentence encoder)"
        )
        assert params["demo_text"] == (
            "A man is smoking. -> Smoking" if cell[2] == "smoking" else "(none)"
        )
        # the combined fingerprint, named apart from the score files' per-task ones
        assert ("data_fingerprint" in params) == legacy
        assert params["data_fingerprint_combined"] == track.data_fingerprint(
            {"STSBenchmark": "a" * 64, "CR": "b" * 64}
        )
        assert params["code_version"].startswith("sentscale")
        assert tags[track.KEY_TAG] == records[seed]["run_key"]
        assert metrics["params_b"] == pytest.approx(spec["params"] / 1e9)
        assert metrics["CR.accuracy"] == pytest.approx(70.0 + seed)
        assert metrics["transfer_avg"] == pytest.approx(70.0 + seed)
        assert metrics["STSBenchmark.spearman_lo"] < metrics["STSBenchmark.spearman"]
        assert metrics["STSBenchmark.spearman"] < metrics["STSBenchmark.spearman_hi"]
        # metrics as the tables show them: two decimals, the same for a task and the average
        score = SCORES[cell]["STSBenchmark"]["score"]
        assert metrics["STSBenchmark.spearman"] == float(np.round(score, 2)) != score
        assert metrics["sts_avg"] == metrics["STSBenchmark.spearman"]
        assert all(round(v, 2) == v for k, v in metrics.items() if k != "params_b"), metrics
        assert metrics["STSBenchmark.pearson"] > 0
        assert metrics["embed_peak_rss_mb"] == 1165.0 and metrics["sentences_per_s"] == 20 + seed
        assert records[seed]["metrics"]["CR.accuracy"] == pytest.approx(70.0 + seed)
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert top == {"scores", "benchmarks", "embed", "demos"}
        assert {a.path for a in client.list_artifacts(run.info.run_id, "scores")} == {
            "scores/STSBenchmark.json",
            "scores/CR.json",
        }
        assert {a.path for a in client.list_artifacts(run.info.run_id, "demos")} == {
            "demos/chosen.tsv"
        }
        # the score file as written (full precision), not the rounded metric
        logged = client.download_artifacts(run.info.run_id, "scores/STSBenchmark.json")
        assert json.loads(Path(logged).read_text())["score"] == score


def test_server_one_parent_and_a_child_per_cell(mlflow_server, tmp_path):
    uri = mlflow_server["url"]
    sweep, records = track_study(tmp_path, uri)
    assert sweep["tracking_uri"] == uri
    check_study(uri, sweep, records)


def test_server_rerun_resumes_the_same_runs(mlflow_server, tmp_path):
    uri = mlflow_server["url"]
    first_sweep, first = track_study(tmp_path, uri)
    client, before = all_runs(uri, first_sweep["experiment_id"])
    sweep, again = track_study(tmp_path, uri)
    _, after = all_runs(uri, sweep["experiment_id"])
    assert sweep["run_id"] == first_sweep["run_id"]
    assert [r["run_id"] for r in again] == [r["run_id"] for r in first]
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    # unchanged metrics are not logged again: one history entry each
    history = client.get_metric_history(again[0]["run_id"], "sts_avg")
    assert len(history) == 1
    check_study(uri, sweep, again)


def test_server_rejects_unknown_host_headers(mlflow_server):
    """MLflow 3 guards against DNS rebinding: a hostname not in --allowed-hosts gets 403."""
    request = urllib.request.Request(
        f"{mlflow_server['url']}/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Host": "mlflow.example.org"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403


def test_sqlite_default_without_a_server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "out" / "results"
    sweep, records = track_study(tmp_path, None, results_dir=results)
    uri = sweep["tracking_uri"]
    assert uri == f"sqlite:///{results / 'mlflow.db'}" and uri.startswith("sqlite:////")
    assert (results / "mlflow.db").is_file()
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    check_study(uri, sweep, records)
    artifacts = results / "mlflow-artifacts"
    assert list(artifacts.rglob("scores/STSBenchmark.json"))
    again_sweep, again = track_study(tmp_path, None, results_dir=results)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in records]
    _, runs = all_runs(uri, sweep["experiment_id"])
    assert len(runs) == 1 + len(CELLS)
    assert io.read_json(results / "tracking" / "parent.json") == again_sweep


def test_changed_settings_start_new_runs_and_changed_params_are_flagged(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    sweep, records = track_study(tmp_path, None, results_dir=results)
    # the code changed, not the settings: the same runs, the changed param flagged in a tag
    monkeypatch.setattr(track, "code_version", lambda: "sentscale 9.9.9 (new)")
    _, again = track_study(tmp_path, None, results_dir=results)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in records]
    client, runs = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    child = client.get_run(again[0]["run_id"])
    assert child.data.tags[track.CHANGED_TAG] == "code_version"
    assert child.data.tags["code_version"] == "sentscale 9.9.9 (new)"
    assert child.data.params["code_version"] != "sentscale 9.9.9 (new)"  # params are immutable
    # the changed param alone has a tag of its name: the current value
    assert set(child.data.params) & set(child.data.tags) == {"code_version"}
    assert len(runs) == 1 + len(CELLS)
    # different cell settings: a different key, so a new run
    other = write_cell(tmp_path, CELLS[0], 0)
    new = track.track_cell_job(
        sweep_json=results / "tracking" / "parent.json",
        cell=dict(zip(("model", "prompt", "demo"), CELLS[0], strict=True)),
        settings={"model": CELLS[0][0], "embed": {"dtype": "bfloat16"}},
        score_files=other["score_files"],
        embed_meta=other["embed_meta"],
        out_json=tmp_path / "new.json",
    )
    assert new["run_id"] not in {r["run_id"] for r in records}


def track_first_cell(results: Path, files: dict, out_json: Path) -> dict:
    """The tracking job of the first cell, against the sweep of ``results``."""
    return track.track_cell_job(
        sweep_json=results / "tracking" / "parent.json",
        cell=dict(zip(("model", "prompt", "demo"), CELLS[0], strict=True)),
        settings={},
        score_files=files["score_files"],
        embed_meta=files["embed_meta"],
        out_json=out_json,
    )


def test_a_lost_sweep_run_is_reported_with_the_fix(tmp_path, monkeypatch):
    """parent.json names a run the store does not hold (the database was deleted or
    replaced): the tracking job says how to rebuild the view instead of logging orphans."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    sweep, _ = track_study(tmp_path, None, results_dir=results)
    io.write_json(results / "tracking" / "parent.json", {**sweep, "run_id": "0" * 32})
    files = write_cell(tmp_path, CELLS[0], 0)
    with pytest.raises(track.TrackingError, match="forcerun mlflow_parent"):
        track_first_cell(results, files, tmp_path / "x.json")


# One tracking job per process, as Snakemake runs them: each waits until all have imported
# MLflow (its sqlite store too: a test holding a lock takes it once the job is about to open
# the store), then they log at the same moment.
WORKER = """
import json, sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store
from sentscale import track
args = json.loads(sys.argv[1])
go = Path(args.pop("go"))
Path(args.pop("ready")).touch()
while not go.exists():
    time.sleep(0.02)
print(track.track_cell_job(**args)["run_id"])
"""


def log_cells_at_once(root: Path, uri: str | None, n: int = 8) -> tuple[dict, list[str]]:
    """The sweep once, then ``n`` cells logged by ``n`` processes at once; returns the sweep
    and the run ids the processes report."""
    results = root / "results"
    sweep = track.mlflow_parent_job(
        study="ci",
        settings={"tasks": list(TASKS)},
        uri=uri,
        # an experiment of its own: the module's server also holds the other tests' "ci" runs
        experiment=f"concurrent-{root.name}",
        out_json=results / "tracking" / "parent.json",
        results_dir=results,
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    go, procs = root / "go", []
    for i in range(n):
        cell = ("smollm2-135m", "eol", f"demo{i}")
        files = write_cell(root, cell, i)
        args = {
            "go": str(go),
            "ready": str(root / f"ready-{i}"),
            "sweep_json": str(results / "tracking" / "parent.json"),
            "cell": dict(zip(("model", "prompt", "demo"), cell, strict=True)),
            "settings": {"model": cell[0], "prompt": cell[1], "demo": cell[2]},
            "score_files": [str(f) for f in files["score_files"]],
            "embed_meta": str(files["embed_meta"]),
            "embed_benchmark": str(files["embed_benchmark"]),
            "evaluate_benchmarks": [str(f) for f in files["evaluate_benchmarks"]],
            "out_json": str(results / "tracking" / f"{'/'.join(cell)}.json"),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, json.dumps(args)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    deadline = time.monotonic() + 300
    while not all((root / f"ready-{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.1)
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    return sweep, [out.strip().splitlines()[-1] for out, _ in outputs]  # MLflow prints too


def check_concurrent(sweep: dict, run_ids: list[str], n: int = 8) -> None:
    client, runs = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    children = [r for r in runs if r.data.tags.get(track.ROLE_TAG) == "cell"]
    assert len(runs) == 1 + n and len(children) == n  # no crash lost a run, none doubled
    assert sorted(r.info.run_id for r in children) == sorted(run_ids)
    assert len({r.data.tags[track.KEY_TAG] for r in children}) == n
    assert {r.info.run_name for r in children} == {f"smollm135m eol/demo{i}" for i in range(n)}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == sweep["run_id"]
        assert "STSBenchmark.spearman" in run.data.metrics and run.data.params["model"]
        assert client.list_artifacts(run.info.run_id, "scores")


def test_eight_cells_log_at_once_to_the_server(mlflow_server, tmp_path):
    sweep, run_ids = log_cells_at_once(tmp_path, mlflow_server["url"])
    check_concurrent(sweep, run_ids)


def test_eight_cells_log_at_once_to_sqlite_after_init(tmp_path, monkeypatch):
    """The sweep rule creates the database; then 8 jobs write it at once (sqlite locks:
    retried, never a crash)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sweep, run_ids = log_cells_at_once(tmp_path, None)
    assert sweep["tracking_uri"].startswith("sqlite:////")
    check_concurrent(sweep, run_ids)


# ------------------------------------------------------------ what a user sees (issue 18)

# The scores table as rules/aggregate.smk writes it (values as shown: two decimals); minilm and
# smollm/eol/smoking tie on STS avg: the first row in table order is named best.
SCORES_CSV = """model,params,prompt,demo,STSBenchmark,CR,STS avg,transfer avg
minilm-l6,22713216,native,none,66.0,71.0,66.0,71.0
smollm2-135m,134515008,eol,none,61.5,74.25,61.5,74.25
smollm2-135m,134515008,eol,smoking,66.0,72.0,66.0,72.0
"""


def write_summary_inputs(results: Path) -> list[Path]:
    """The tables and figures track_summary logs (figure bytes stand in for real PNG/PDF)."""
    files = []
    for name, data in [
        ("tables/scores.csv", SCORES_CSV.encode()),
        ("tables/scores.md", b"| model |\n"),
        ("plots/scaling_sts.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
        ("plots/scaling_sts.pdf", b"%PDF-1.4\n" + bytes(range(256))),
    ]:
        path = results / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(path)
    return files


def track_summary(results: Path, files: list[Path]) -> dict:
    """The track_summary job, once every cell of CELLS is tracked."""
    return track.track_summary_job(
        sweep_json=results / "tracking" / "parent.json",
        cell_records=[results / "tracking" / f"{'/'.join(cell)}.json" for cell in CELLS],
        scores_table=results / "tables" / "scores.csv",
        files=files,
        out_json=results / "tracking" / "summary.json",
    )


def test_the_parent_run_carries_the_summary_figures_and_tables(mlflow_server, tmp_path, capsys):
    uri = mlflow_server["url"]
    results = tmp_path / "results"
    sweep, _ = track_study(tmp_path, uri, results_dir=results)
    files = write_summary_inputs(results)
    summary = track_summary(results, files)
    client, runs = all_runs(uri, sweep["experiment_id"])
    parent = client.get_run(sweep["run_id"])
    # no longer a collapsed row without numbers: the study's summary, as the table shows it
    assert parent.data.metrics == {"best_sts_avg": 66.0, "best_transfer_avg": 74.25, "n_cells": 3}
    assert parent.data.tags["sentscale.best_sts_cell"] == "minilm-l6/native/none"
    assert parent.data.tags["sentscale.best_transfer_cell"] == "smollm2-135m/eol/none"
    assert parent.info.run_name == f"sweep {sweep['run_key'][:8]}"
    # a figure is one click away: the parent's artifacts, bytes as written
    assert {a.path for a in client.list_artifacts(sweep["run_id"])} == {"plots", "tables"}
    assert {a.path for a in client.list_artifacts(sweep["run_id"], "plots")} == {
        "plots/scaling_sts.png",
        "plots/scaling_sts.pdf",
    }
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        assert Path(client.download_artifacts(sweep["run_id"], name)).read_bytes() == (
            path.read_bytes()
        )
    # the runs table's direct URL (not the GenAI view), printed and recorded
    url = f"{uri}/#/experiments/{sweep['experiment_id']}/runs?workflowType=machine_learning"
    assert summary["runs_url"] == url and summary["ui_command"] is None
    assert url in capsys.readouterr().out
    with urllib.request.urlopen(url.split("#")[0], timeout=30) as page:  # the UI itself
        assert page.status == 200 and b"<html" in page.read().lower()
    # a rerun logs nothing twice and adds no run
    track_summary(results, files)
    assert len(client.get_metric_history(sweep["run_id"], "best_sts_avg")) == 1
    assert len(all_runs(uri, sweep["experiment_id"])[1]) == len(runs) == 1 + len(CELLS)


def test_a_local_store_is_browsed_with_the_printed_command(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    caplog.set_level("INFO", logger="sentscale.track")
    results = tmp_path / "results"
    sweep, _ = track_study(tmp_path, None, results_dir=results)
    summary = track_summary(results, write_summary_inputs(results))
    db = (results / "mlflow.db").resolve()
    assert summary["ui_command"].endswith(
        f"mlflow ui --backend-store-uri sqlite:///{db} --port 5000"
    )
    url = f"http://127.0.0.1:5000/#/experiments/{sweep['experiment_id']}/runs?workflowType=machine_learning"
    assert summary["runs_url"] == url
    out = capsys.readouterr().out
    assert summary["ui_command"] in out and url in out  # the console
    assert summary["ui_command"] in caplog.text and url in caplog.text  # the job's log
    assert io.read_json(results / "tracking" / "summary.json") == summary


def test_the_mlflow_ui_picks_its_view_from_the_url_not_the_experiment():
    """Why the printed URL carries ?workflowType=machine_learning. MLflow 3.17's UI (its built
    bundle) takes the experiment page's view from the URL's workflowType, else the browser's
    saved choice (local storage mlflow.workflowType_v1), else GenAI - where a runs-only
    experiment shows "Traces 0". If an MLflow upgrade changes that, this fails: check
    sentscale.track_sweep.runs_url and docs/tracking.md again."""
    import mlflow

    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    (main,) = build.glob("main.*.js")
    bundle = main.read_text(encoding="utf-8", errors="replace")
    assert 'e.GENAI="genai",e.MACHINE_LEARNING="machine_learning"' in bundle
    assert 'e.get("workflowType")' in bundle  # the URL's parameter first
    assert 'key:"mlflow.workflowType",version:1,initialValue:c' in bundle  # then local storage
    assert "const c=l.GENAI," in bundle  # the default: GenAI


def test_the_experiment_is_tagged_for_runs_on_creation_and_again_on_reruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    sweep, _ = track_study(tmp_path, None, results_dir=results)
    client, _ = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    experiment = client.get_experiment(sweep["experiment_id"])
    assert experiment.tags[track.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # MLflow's own empty "Default" stays; the study's experiment is apart from it
    names = {e.name for e in client.search_experiments()}
    assert names == {"Default", "sentscale/ci"}
    # the UI's experiment-type selector (older UIs) set it to GenAI: the sweep rule sets it back
    client.set_experiment_tag(
        sweep["experiment_id"], track.EXPERIMENT_KIND_TAG, "genai_development"
    )
    again = track.mlflow_parent_job(
        study="ci",
        settings={"tasks": list(TASKS), "embed": {"dtype": "float32"}},
        out_json=results / "tracking" / "parent.json",
        results_dir=results,
    )
    assert again == sweep
    tags = client.get_experiment(sweep["experiment_id"]).tags
    assert tags[track.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # tracking.experiment still names it when set
    other = track.mlflow_parent_job(
        study="ci",
        settings={},
        experiment="my-experiment",
        out_json=tmp_path / "other.json",
        results_dir=results,
    )
    assert client.get_experiment(other["experiment_id"]).name == "my-experiment"


def make_it_look_old(client, sweep: dict) -> None:
    """What the code before issue 18 left in a store: runs named `model · prompt · demo` and
    `<study> · sweep <key>`, every param repeated as a tag, the param data_fingerprint, and
    no experiment tag (the sweep rule ran with the experiment named after the study)."""
    _, runs = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    for run in runs:
        run_id = run.info.run_id
        for key, value in run.data.params.items():
            client.set_tag(run_id, key, value)
        if run.data.tags[track.ROLE_TAG] == "cell":
            client.update_run(run_id, name=run.data.tags[track.CELL_TAG].replace("/", " · "))
            client.log_param(run_id, "data_fingerprint", "c" * 16)
            client.set_tag(run_id, "data_fingerprint", "c" * 16)
            client.delete_tag(run_id, track.CELL_TAG)
        else:
            client.update_run(run_id, name=f"ci · sweep {sweep['run_key'][:8]}")
    client.set_experiment_tag(sweep["experiment_id"], track.EXPERIMENT_KIND_TAG, "")


def test_a_store_tracked_before_issue_18_is_taken_over_without_new_runs(tmp_path, monkeypatch):
    """Its experiment is renamed to sentscale/<study> and every run resumed by its key: the
    same run ids, short names, no param repeated as a tag; no second set of runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    # the old default experiment name was the study's, and so were the keys built from it
    old, old_records = track_study(tmp_path, None, results_dir=results, experiment="ci")
    client, before = all_runs(old["tracking_uri"], old["experiment_id"])
    make_it_look_old(client, old)
    sweep, records = track_study(tmp_path, None, results_dir=results)
    assert (sweep["experiment_id"], sweep["run_id"], sweep["run_key"]) == (
        old["experiment_id"],
        old["run_id"],
        old["run_key"],
    )
    assert [r["run_id"] for r in records] == [r["run_id"] for r in old_records]
    _, after = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    assert {e.name for e in client.search_experiments()} == {"Default", "sentscale/ci"}
    check_study(sweep["tracking_uri"], sweep, records, legacy=True)
    child = client.get_run(records[0]["run_id"])
    assert track.CHANGED_TAG not in child.data.tags  # nothing changed but the layout
    assert child.data.params["data_fingerprint"] == "c" * 16  # immutable: kept, no longer a tag


def test_an_experiment_of_the_study_s_name_that_is_not_ours_is_left_alone(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from sentscale.sqlite_store import ensure_sqlite_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    store = track.default_uri(results)
    ensure_sqlite_store(store)
    client = MlflowClient(tracking_uri=store)
    theirs = client.create_experiment("ci")
    client.create_run(theirs, run_name="someone else's")
    sweep, records = track_study(tmp_path, None, results_dir=results)
    assert sweep["experiment_id"] != theirs
    assert client.get_experiment(theirs).name == "ci"
    assert len(client.search_runs([theirs])) == 1
    check_study(sweep["tracking_uri"], sweep, records)


def test_model_aliases_are_short_derived_from_the_names_and_unique():
    from sentscale.models import Registry

    default_study = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "minilm-l6"]
    assert track.model_aliases(default_study) == {
        "smollm2-135m": "smollm135m",
        "gemma3-270m": "gemma270m",
        "qwen2.5-coder-0.5b": "qwen0.5b",
        "minilm-l6": "minilm-l6",  # no size in the name: kept
    }
    # a collision moves both on: never two models under one name
    assert track.model_aliases(["qwen2.5-0.5b", "qwen2.5-coder-0.5b"]) == {
        "qwen2.5-0.5b": "qwen2.5-0.5b",
        "qwen2.5-coder-0.5b": "qwen-coder-0.5b",
    }
    names = Registry.load().names()
    aliases = track.model_aliases(names)
    assert len(set(aliases.values())) == len(names)
    assert all(len(aliases[n]) <= len(n) for n in names)
    assert (
        track.cell_run_name(
            {"model": "qwen2.5-coder-0.5b", "prompt": "eol", "demo": "selected"}, "qwen0.5b"
        )
        == "qwen0.5b eol/selected"
    )


def test_the_summary_reads_the_scores_table_and_names_what_it_lacks(tmp_path):
    table = tmp_path / "scores.csv"
    # a transfer-only study has no STS avg column: no best_sts_avg, nothing made up
    table.write_text("model,params,prompt,demo,CR,transfer avg\nm,1,p,d,71.5,71.5\n")
    metrics, tags = track_sweep.summary_metrics(table, n_cells=1)
    assert metrics == {"n_cells": 1.0, "best_transfer_avg": 71.5}
    assert tags == {"sentscale.best_transfer_cell": "m/p/d"}
    table.write_text("name,score\nm,1\n")
    with pytest.raises(track.TrackingError) as err:
        track_sweep.summary_metrics(table, n_cells=1)
    assert str(err.value).startswith(f"{table}: expected the scores table")
    assert "it lacks demo, model, prompt" in str(err.value)


def test_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert track.resolve_uri("http://login01:5000", tmp_path) == "http://login01:5000"
    assert track.resolve_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://svc:5000")
    assert track.resolve_uri(None, tmp_path) == "http://svc:5000"
    assert track.resolve_uri("http://cfg:1", tmp_path) == "http://cfg:1"
    assert track.run_key({"b": 1, "a": [1, 2]}) == track.run_key({"a": [1, 2], "b": 1})
    assert track.run_key({"a": 1}) != track.run_key({"a": 2})


@pytest.mark.integration
@pytest.mark.slow
def test_the_test_study_is_tracked_and_a_rerun_adds_no_runs(local_test_study, test_study_config):
    from conftest import TEST_STUDY_CONFIG, run_snakemake

    results = local_test_study / "results"
    sweep = io.read_json(results / "tracking" / "parent.json")
    if "MLFLOW_TRACKING_URI" not in os.environ:  # the default: sqlite inside the output folder
        assert sweep["tracking_uri"] == f"sqlite:///{(results / 'mlflow.db').resolve()}"
    cells = [p for p in (results / "tracking").glob("*/*/*.json")]
    client, runs = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    assert len(runs) == 1 + len(cells) and len(cells) >= 4
    assert client.get_experiment(sweep["experiment_id"]).name == "sentscale/ci"  # the study's
    children = [r for r in runs if r.data.tags.get(track.ROLE_TAG) == "cell"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {sweep["run_id"]}
    minilm = next(r for r in children if r.data.params["model"] == "minilm-l6")
    assert minilm.data.metrics["STSBenchmark.spearman"] > 75
    assert minilm.data.params["family"] == "minilm" and minilm.data.metrics["params_b"] < 0.03
    assert minilm.info.run_name == "minilm-l6 native/none"
    # track_summary ran last: the study's summary, figures and tables on the parent run
    table = pd.read_csv(results / "tables" / "scores.csv")
    parent = client.get_run(sweep["run_id"]).data
    assert parent.metrics["n_cells"] == len(cells) == len(table)
    assert parent.metrics["best_sts_avg"] == table["STS avg"].max()
    assert parent.tags["sentscale.best_sts_cell"] == "minilm-l6/native/none"
    figures = [*(results / "plots").glob("*.png"), *(results / "plots").glob("*.pdf")]
    assert {a.path for a in client.list_artifacts(sweep["run_id"], "plots")} == {
        f"plots/{p.name}" for p in figures
    }
    summary = io.read_json(results / "tracking" / "summary.json")
    assert summary["runs_url"].endswith(
        f"/#/experiments/{sweep['experiment_id']}/runs?workflowType=machine_learning"
    )
    # the tracking branch forced to run again resumes the same runs
    proc = run_snakemake(
        local_test_study,
        "--cores", "2", "--forcerun", "mlflow_parent",
        configfile=TEST_STUDY_CONFIG, config=test_study_config,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "track_cell" in proc.stdout + proc.stderr
    assert summary["runs_url"] in proc.stdout + proc.stderr  # printed on the console
    _, again = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
    assert io.read_json(results / "tracking" / "parent.json") == sweep


# ------------------------------------------------- a store that survives interruption (issue 16)

# The sweep rule's job in a process of its own, as Snakemake runs it, stopped mid-migration: a
# listener (in that process only) pauses at the ``after``-th schema statement once alembic has
# started, and the test sends the signal a Ctrl-C or `kill -9` would.
INTERRUPTED_SWEEP = """
import json, sys, time
from pathlib import Path
import sqlalchemy
from sqlalchemy import event
from sentscale import track
ready, after, results = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
SETTINGS = json.loads(sys.argv[4])
seen = {"alembic": False, "n": 0}

@event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
def pause(conn, cursor, statement, *args):
    seen["alembic"] = seen["alembic"] or "alembic_version" in statement
    verb = statement.lstrip()[:6].upper()
    if seen["alembic"] and verb in ("CREATE", "ALTER ", "INSERT", "UPDATE", "DROP T"):
        seen["n"] += 1
        if seen["n"] == after:
            ready.write_text(statement[:80])
            time.sleep(600)

track.mlflow_parent_job(
    study="ci", settings=SETTINGS, out_json=results + "/tracking/parent.json", results_dir=results
)
"""
SWEEP_SETTINGS = {"tasks": list(TASKS), "embed": {"dtype": "float32"}}  # as in track_study
SWEEP = f"""
import sys
from sentscale import track
results = sys.argv[1]
track.mlflow_parent_job(
    study="ci", settings={SWEEP_SETTINGS!r}, out_json=results + "/tracking/parent.json",
    results_dir=results,
)
"""


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.parametrize(
    ("sig", "after"),
    [(signal.SIGINT, 5), (signal.SIGKILL, 40), (signal.SIGKILL, 300)],
    ids=["ctrl-c-early", "kill-9-mid", "kill-9-late"],
)
def test_an_interrupted_store_creation_is_rebuilt_on_rerun(tmp_path, monkeypatch, sig, after):
    """Ctrl-C or kill -9 while the sweep rule creates results/mlflow.db: the rerun (what
    Snakemake does next, since parent.json is missing) creates a whole store and every cell logs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    ready = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_SWEEP, str(ready), str(after), str(results)]
        + [json.dumps(SWEEP_SETTINGS)],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0 and not (results / "tracking" / "parent.json").exists()
    rerun = subprocess.run(
        [sys.executable, "-c", SWEEP, str(results)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    sweep, records = track_study(tmp_path, None, results_dir=results)
    check_study(sweep["tracking_uri"], sweep, records)
    assert not [p.name for p in results.iterdir() if p.name.startswith(".mlflow.db")]


# The sweep rule's job with a disk that fills up: files may not grow past the limit (the write
# fails with EFBIG, which sqlite reports as an I/O error, as it does ENOSPC).
FULL_DISK_SWEEP = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
from sentscale import track
results = sys.argv[1]
track.mlflow_parent_job(
    study="ci", settings={}, out_json=results + "/tracking/parent.json", results_dir=results
)
"""


def test_a_full_disk_during_store_creation_leaves_no_half_made_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    full = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SWEEP, str(results)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode != 0
    assert (
        full.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"sentscale.tracking_uri.TrackingError: could not create the MLflow store "
            f"{results / 'mlflow.db'} ((sqlite3.OperationalError) disk I/O error); expected a "
            "writable folder with free space"
        )
    )
    assert not (results / "mlflow.db").exists()
    assert not [p.name for p in results.iterdir() if p.name.startswith(".mlflow.db")]
    sweep, records = track_study(tmp_path, None, results_dir=results)  # space again
    check_study(sweep["tracking_uri"], sweep, records)


def half_created_store(path: Path, state: str) -> None:
    """What an interrupted creation leaves at ``path``: MLflow's initial tables alone, or them
    plus the first half of its alembic migrations; or an empty file, or one that is no
    database at all (a disk that filled up, a copy cut short)."""
    import sqlalchemy
    from alembic import command
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    path.parent.mkdir(parents=True, exist_ok=True)
    if state == "empty":
        path.write_bytes(b"")
        return
    if state == "garbage":
        path.write_bytes(b"SQLite format 2\x00" + b"\x17" * 4096)
        return
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    utils.InitialBase.metadata.create_all(engine)
    if state == "half-migrated":
        config = utils._get_alembic_config(str(engine.url))
        chain = [r.revision for r in ScriptDirectory.from_config(config).walk_revisions()]
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, chain[len(chain) // 2])
    engine.dispose()


@pytest.mark.parametrize("state", ["initial-tables", "half-migrated", "empty", "garbage"])
def test_a_half_created_store_is_rebuilt_by_the_sweep_rule(tmp_path, monkeypatch, caplog, state):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    caplog.set_level("INFO", logger="sentscale.track")
    results = tmp_path / "results"
    db = results / "mlflow.db"
    half_created_store(db, state)
    original = db.read_bytes()
    sweep, records = track_study(tmp_path, None, results_dir=results)
    check_study(sweep["tracking_uri"], sweep, records)
    if state == "garbage":  # unreadable: kept aside, never deleted
        (aside,) = results.glob("mlflow.db.broken-*")
        assert aside.read_bytes() == original
        assert f"moved it aside to {aside.name}" in caplog.text
    else:
        assert f"MLflow store {db} is half-created" in caplog.text
        assert "holds no runs: rebuilding it" in caplog.text


def test_a_broken_store_is_named_by_the_cell_jobs_and_rebuilt_by_the_sweep_rule(
    tmp_path, monkeypatch
):
    """The store breaks after a finished study: a tracking job names the fix instead of letting
    MLflow create tables under the other jobs; the documented fix (`--forcerun mlflow_parent`:
    the sweep rule, then every track_cell again) rebuilds the view from the score files."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    first, _ = track_study(tmp_path, None, results_dir=results)
    db = results / "mlflow.db"
    db.unlink()
    half_created_store(db, "initial-tables")
    files = write_cell(tmp_path, CELLS[0], 0)
    with pytest.raises(track.TrackingError) as err:
        track_first_cell(results, files, tmp_path / "x.json")
    assert str(err.value).startswith(f"the MLflow store {db} is not usable: it has no schema")
    assert "snakemake --forcerun mlflow_parent" in str(err.value)
    sweep, records = track_study(tmp_path, None, results_dir=results)
    assert sweep["run_id"] != first["run_id"]
    check_study(sweep["tracking_uri"], sweep, records)


def test_a_store_with_runs_at_another_schema_is_refused_not_rebuilt(tmp_path, monkeypatch):
    import contextlib
    import sqlite3

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    track_study(tmp_path, None, results_dir=results)
    db = results / "mlflow.db"
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("UPDATE alembic_version SET version_num = '0a8213491aaa'")  # MLflow 1.x
    before = db.read_bytes()
    with pytest.raises(track.TrackingError) as err:
        track_study(tmp_path, None, results_dir=results)
    message = str(err.value)
    assert message.startswith(f"the MLflow store {db} holds {1 + len(CELLS)} runs but its schema")
    assert f"mlflow db upgrade sqlite:///{db}" in message and "--forcerun mlflow_parent" in message
    assert db.read_bytes() == before


# ------------------------------------------------------------ a locked store (issue 16, item 6)


def run_cell_under_lock(root: Path, hold_s: float | None, env: dict[str, str]):
    """Log CELLS[0] in a fresh process while this one holds ``BEGIN EXCLUSIVE`` on the store
    (another process mid-write: even reads wait), released after ``hold_s`` (None: held until
    the job ends). Returns (exit status, stdout, stderr, seconds the job took, sweep)."""
    import sqlite3
    import threading

    results = root / "results"
    sweep = track.mlflow_parent_job(
        study="ci", settings={}, out_json=results / "tracking" / "parent.json", results_dir=results
    )
    files = write_cell(root, CELLS[0], 0)
    args = {
        "go": str(root / "go"),
        "ready": str(root / "ready"),
        "sweep_json": str(results / "tracking" / "parent.json"),
        "cell": dict(zip(("model", "prompt", "demo"), CELLS[0], strict=True)),
        "settings": {},
        "score_files": [str(f) for f in files["score_files"]],
        "embed_meta": str(files["embed_meta"]),
        "out_json": str(root / "cell.json"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    while not (root / "ready").exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    holder = sqlite3.connect(results / "mlflow.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(hold_s or 1e6, lambda: holder.execute("ROLLBACK"))
    release.start()
    start = time.monotonic()
    (root / "go").touch()
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        release.cancel()
        release.join()
        holder.close()
    return proc.returncode, out, err, time.monotonic() - start, sweep


def test_a_cell_waits_for_a_locked_store_from_opening_it_on(tmp_path, monkeypatch):
    """Another process holds a write lock for 15 s from the moment the job opens the store
    (MLflow's own retries give up after ~10 s): the job waits, then logs its cell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    status, out, err, took, sweep = run_cell_under_lock(tmp_path, 15.0, subprocess_env())
    assert status == 0, err[-3000:]
    assert took >= 15.0 and "store busy (database is locked); retrying" in err
    run_id = out.strip().splitlines()[-1]
    client, runs = all_runs(sweep["tracking_uri"], sweep["experiment_id"])
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[track.ROLE_TAG] == "cell"
    assert "STSBenchmark.spearman" in run.data.metrics and len(runs) == 2


def test_a_store_locked_for_too_long_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = dict(subprocess_env(), SENTSCALE_TRACKING_LOCK_WAIT_S="3")
    status, _, err, took, _ = run_cell_under_lock(tmp_path, None, env)
    assert status != 0 and took < 60
    last = err.strip().splitlines()[-1]
    db = tmp_path / "results" / "mlflow.db"
    assert last.startswith(
        f"sentscale.tracking_uri.TrackingError: cell smollm135m eol/none: the sqlite store "
        f"{db} stayed locked for 3 s (database is locked): another process holds a write "
        "transaction on it"
    )
    assert f"fuser {db}" in last and "SENTSCALE_TRACKING_LOCK_WAIT_S" in last


# --------------------------------------------------------- credentials in URIs (issue 16, item 7)

# (uri, the secret's pieces): however the password is spelt, the URI is refused and no piece
# of it is shown. urlsplit finds no username in the first three (it ends the host at the
# first '/', '#' or '?') nor in those without '//'.
CREDENTIAL_URIS = [
    ("http://alice:s3cr/Zq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice:s3cr#Zq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice:s3cr?Zq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice:s3cr@Zq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice:s3cr%2FZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice%3As3crZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://s3crZq9xTOKEN@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://alice:s3crZq9x%40127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("HTTPS://alice:s3crZq9x@mlflow.example.org", ["s3cr", "Zq9x"]),
    (" http://alice:s3cr\tZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http:alice:s3crZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http:\\\\alice:s3crZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("alice:s3crZq9x@127.0.0.1:5999", ["s3cr", "Zq9x"]),
    ("http://[::1]:5999/?x=1#alice:s3crZq9x@", ["s3cr", "Zq9x"]),
    ("http://127.0.0.1:5999/?token=s3cr@Zq9x", ["s3cr", "Zq9x"]),
    ("http://127.0.0.1:5999/api?api_key=s3crZq9x", ["s3cr", "Zq9x"]),
    ("postgresql://alice:s3cr/Zq9x@db:5432/mlflow", ["s3cr", "Zq9x"]),
    ("postgresql://db:5432/mlflow?user=alice&password=s3crZq9x", ["s3cr", "Zq9x"]),
    ("file://alice:s3crZq9x@host/mlruns", ["s3cr", "Zq9x"]),
    ("sqlite://alice:s3crZq9x@/mlflow.db", ["s3cr", "Zq9x"]),
]
CLEAN_URIS = [
    None,
    "",
    "http://127.0.0.1:5000",
    "https://mlflow.example.org/",
    "http://[::1]:5000/api%40v2",
    "sqlite:////home/u@corp/results/mlflow.db",  # '@' in a local path: no userinfo there
    "sqlite:///workspace@2/results/mlflow.db",
    "sqlite:////tmp/mlflow.db?timeout=30",
    "file:///tmp/a@b/mlruns",
    "/home/u@corp/mlruns",
    "databricks",
    "databricks://profile",
]


@pytest.mark.parametrize(("uri", "pieces"), CREDENTIAL_URIS)
def test_credentials_are_refused_however_the_uri_is_spelt(uri, pieces, tmp_path, caplog):
    with pytest.raises(track.TrackingError) as err:
        track.check_uri(uri)
    message = str(err.value)
    assert message.startswith("tracking URI ") and "MLFLOW_TRACKING_PASSWORD" in message
    assert not any(piece in message for piece in pieces), message
    with pytest.raises(track.TrackingError):  # the job refuses it too, before writing anything
        track.mlflow_parent_job(study="ci", settings={}, uri=uri, out_json=tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
    assert not any(piece in caplog.text for piece in pieces)


def test_the_tricky_uri_of_the_report_names_its_host_only():
    with pytest.raises(track.TrackingError) as err:
        track.check_uri("http://alice:s3cr/et@127.0.0.1:5999")
    assert str(err.value).startswith(
        "tracking URI http://***@127.0.0.1:5999 carries credentials; expected a URI without "
        "'user:password@'"
    )


@pytest.mark.parametrize("uri", CLEAN_URIS)
def test_uris_without_credentials_pass(uri):
    track.check_uri(uri)


def test_uris_are_shown_without_query_values():
    from sentscale.tracking_uri import shown_uri

    assert (
        shown_uri("sqlite:////tmp/mlflow.db?timeout=30") == "sqlite:////tmp/mlflow.db?timeout=***"
    )
    assert shown_uri("http://alice:pw@host:5000/x") == "http://***@host:5000"
    assert shown_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.parametrize("where", ["config", "environment"])
def test_the_workflow_refuses_a_credential_uri_without_showing_it(tmp_path, monkeypatch, where):
    """A real `snakemake -n`: the tricky URI (an unencoded '/' in the password) stops the
    workflow while it is read, and the secret is in no output and no file Snakemake wrote."""
    from conftest import TEST_STUDY_CONFIG, run_snakemake

    uri = "http://alice:s3cr/Zq9x@127.0.0.1:5999"
    configfile = TEST_STUDY_CONFIG
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if where == "config":
        import yaml

        config = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
        config["tracking"] = {"uri": uri}
        configfile = tmp_path / "config.yaml"
        configfile.write_text(yaml.safe_dump(config))
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = run_snakemake(workdir, "--dry-run", configfile=configfile, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "tracking URI http://***@127.0.0.1:5999 carries credentials" in output
    assert "s3cr" not in output and "Zq9x" not in output
    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert not any(b"Zq9x" in p.read_bytes() for p in written)
