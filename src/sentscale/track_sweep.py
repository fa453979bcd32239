"""The sweep (parent) run of the MLflow view: the study's experiment, the parent run, and the
study's summary on it (the child runs, one per cell, are :mod:`sentscale.track`).

- **Experiment** (:func:`experiment_name`): ``sentscale/<study>`` unless ``tracking.experiment``
  names another. Before issue 18 it was the study name alone (``default``, beside MLflow's own
  empty ``Default``); such an experiment, recognised by its sentscale sweep run of the study, is
  renamed in place and its runs resumed, so tracking an older store again adds no runs.
- **Parent run** (rule ``mlflow_parent``, :func:`mlflow_parent_job`): created once per study and
  shared settings, upstream of every tracking job, which take its record as input.
- **Summary** (rule ``track_summary``, :func:`track_summary_job`): once every cell is tracked and
  the tables and figures exist, the parent run gets the study's summary metrics (best STS and
  transfer averages as the scores table shows them, the number of cells), tags naming the best
  cells, and the figures and tables as artifacts (``plots/``, ``tables/``); then the direct URL
  of the runs table is printed (:func:`browse_hint`).
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import aggregate, io
from .mlflow_store import (
    ARTIFACT_DIR,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    ROLE_TAG,
    TrackingError,
    _retry,
    check_reachable,
    client_for,
    code_version,
    ensure_experiment,
    find_run,
    flatten,
    get_or_create_run,
    resolve_uri,
    run_key,
    sync_run,
    while_locked,
)
from .sqlite_store import check_sqlite_store, ensure_sqlite_store, is_busy, sqlite_path
from .tracking_uri import shown_uri

log = logging.getLogger("sentscale.track")  # the tracking view's logger

EXPERIMENT_PREFIX = "sentscale/"
BEST_STS_TAG = "sentscale.best_sts_cell"
BEST_TRANSFER_TAG = "sentscale.best_transfer_cell"
#: where ``mlflow ui`` serves by default (the hint for a local store says so)
LOCAL_UI = "http://127.0.0.1:5000"


def experiment_name(study: str, override: str | None = None) -> str:
    """``tracking.experiment`` if set, else ``sentscale/<study>``: apart from MLflow's own
    ``Default`` experiment (and grouped with other sentscale studies in the list)."""
    return override or f"{EXPERIMENT_PREFIX}{study}"


# ------------------------------------------------------------------------- where to browse


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI served at ``base``.

    MLflow 3.17's UI picks the experiment page's view from the URL's ``workflowType``
    (``genai`` or ``machine_learning``), else the browser's saved choice (local storage
    ``mlflow.workflowType_v1``, set by the sidebar's workflow switch), else GenAI: traces and
    a "Detect issues" prompt, no runs. Nothing in the store changes that default (the
    ``mlflow.experimentKind`` tag is not read for it), so the link carries the parameter.
    """
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _mlflow_command() -> str:
    """The ``mlflow`` executable beside this Python (the venv's), relative when it is below the
    working directory, else ``mlflow``."""
    exe = Path(sys.executable).with_name("mlflow")
    if not exe.is_file():
        return "mlflow"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def browse_hint(uri: str, experiment_id: str) -> tuple[str | None, str | None]:
    """(command that serves the store, or None; URL of the runs table, or None).

    A server URI is browsed where it is; a local store (sqlite, file) through ``mlflow ui`` on
    127.0.0.1:5000. Other stores (databricks, ...) have their own UI: (None, None)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return None, runs_url(f"{parts.scheme}://{parts.netloc}{parts.path}", experiment_id)
    path = sqlite_path(uri)
    if path is not None:
        store = f"sqlite:///{path.resolve()}"
    elif parts.scheme in ("file", "") or parts.scheme.startswith(("postgresql", "mysql", "mssql")):
        store = shown_uri(uri)
    else:
        return None, None
    command = f"{_mlflow_command()} ui --backend-store-uri {store} --port 5000"
    return command, runs_url(LOCAL_UI, experiment_id)


def _browse_text(uri: str, experiment_id: str, experiment: str) -> str | None:
    command, url = browse_hint(uri, experiment_id)
    if url is None:
        return None
    serve = f"serve the store with\n    {command}\nthen open" if command else "open"
    return f"MLflow runs of experiment {experiment!r}: {serve}\n    {url}"


# ----------------------------------------------------------------------------- parent run


def _adopt_legacy_experiment(client, name: str, legacy: str, study: str) -> None:
    """Rename the experiment an older sentscale named after the study alone to ``name`` when
    ``name`` does not exist yet and ``legacy`` holds this study's sweep run: its runs are then
    found by their keys and resumed instead of a second set being started."""
    from mlflow.entities import LifecycleStage

    if client.get_experiment_by_name(name) is not None:
        return
    old = client.get_experiment_by_name(legacy)
    if old is None or old.lifecycle_stage != LifecycleStage.ACTIVE:
        return
    ours = _retry(
        lambda: client.search_runs(
            [old.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'sweep' and params.study = '{study}'",
            max_results=1,
        ),
        "search runs",
    )
    if not ours:
        return  # someone else's experiment of that name: left alone
    _retry(lambda: client.rename_experiment(old.experiment_id, name), "rename experiment")
    log.warning(
        "renamed the experiment %r (id %s), named after the study by an older sentscale, to %r; "
        "its runs are resumed",
        legacy, old.experiment_id, name,
    )  # fmt: skip


def mlflow_parent_job(
    *,
    study: str,
    settings: Mapping[str, Any],
    out_json: str | Path,
    uri: str | None = None,
    experiment: str | None = None,
    results_dir: str | Path = "results",
) -> dict[str, Any]:
    """Create (or find) the study's experiment and the sweep's parent run; write ``out_json``.

    ``settings``: what every cell of the sweep shares (tasks, embed, evaluate, registry); the
    grid itself (models, prompts, demos) can grow without starting a new sweep.
    """
    uri = resolve_uri(uri, results_dir)
    check_reachable(uri)
    name = experiment_name(study, experiment)
    # the default name before issue 18: that experiment and its sweep run are taken over
    legacy = study if name == experiment_name(study) else None
    artifact_root = None
    if uri.startswith("sqlite:"):
        root = Path(results_dir).resolve() / ARTIFACT_DIR
        root.mkdir(parents=True, exist_ok=True)
        artifact_root = root.as_uri()
    key = run_key({"study": study, "experiment": name, "settings": settings})
    legacy_key = run_key({"study": study, "experiment": legacy, "settings": settings})
    tags = {ROLE_TAG: "sweep"}
    params = {"study": study, **flatten(settings)}

    def sweep_run():  # idempotent: run again as a whole while the store is locked
        ensure_sqlite_store(uri)  # created atomically; a half-created one is rebuilt
        client = client_for(uri)
        if legacy:
            _adopt_legacy_experiment(client, name, legacy, study)
        experiment_id = ensure_experiment(
            client, name, artifact_root, {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
        used = key
        if legacy and find_run(client, experiment_id, key) is None:
            # a sweep run logged under the old name keeps its key, so its cells resume too
            used = legacy_key if find_run(client, experiment_id, legacy_key) else key
        title = f"sweep {used[:8]}"
        run, created = get_or_create_run(client, experiment_id, used, title, tags)
        tags_now = {**tags, "code_version": code_version()}
        sync_run(client, run, params=params, tags=tags_now, metrics={}, name=title)
        client.set_terminated(run.info.run_id, "FINISHED")
        return experiment_id, run, created, used

    experiment_id, run, created, used = while_locked(uri, sweep_run, "sweep run")
    verb = "created" if created else "resumed"
    log.info("%s sweep run %s (%s) in %s", verb, run.info.run_id, used, shown_uri(uri))
    text = _browse_text(uri, experiment_id, name)
    if text:
        log.info("%s", text)
    record = {
        "tracking_uri": uri,
        "experiment_name": name,
        "experiment_id": experiment_id,
        "run_id": run.info.run_id,
        "run_key": used,
        "run_name": run.info.run_name,
        "study": study,
    }
    io.write_json(out_json, record)
    return record


def check_sweep_run(client, sweep: Mapping[str, Any], sweep_json: str | Path) -> None:
    """TrackingError (with the fix) when the store does not hold the sweep run."""
    uri = sweep["tracking_uri"]
    try:
        _retry(lambda: client.get_run(sweep["run_id"]), "get sweep run")
    except Exception as err:  # noqa: BLE001
        if is_busy(err):
            raise  # locked, not lost: while_locked waits
        raise TrackingError(
            f"the sweep run {sweep['run_id']} of {sweep_json} is not in {shown_uri(uri)} ({err}); "
            "recreate it with `snakemake --forcerun mlflow_parent`"
        ) from err


# -------------------------------------------------------------------------------- summary


def summary_metrics(scores_csv: str | Path, n_cells: int) -> tuple[dict[str, float], dict]:
    """(metrics, tags) of the parent run from the scores table (``results/tables/scores.csv``,
    values as it shows them): ``best_sts_avg`` and ``best_transfer_avg`` over every cell
    (baselines included), ``n_cells``; the tags name the best cells (``model/prompt/demo``).
    A study without STS (or transfer) tasks has no such column and no such metric."""
    with open(scores_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0]) if rows else set()
    missing = sorted({"model", "prompt", "demo"} - columns)
    if missing or not rows:
        raise TrackingError(
            f"{scores_csv}: expected the scores table (one row per cell with columns model, "
            f"prompt, demo, {aggregate.STS_AVG!r}, {aggregate.TRANSFER_AVG!r}); "
            + (f"it lacks {', '.join(missing)}" if rows else "it has no rows")
        )
    metrics: dict[str, float] = {"n_cells": float(n_cells)}
    tags: dict[str, str] = {}
    for column, metric, tag in (
        (aggregate.STS_AVG, "best_sts_avg", BEST_STS_TAG),
        (aggregate.TRANSFER_AVG, "best_transfer_avg", BEST_TRANSFER_TAG),
    ):
        scored = [(float(r[column]), r) for r in rows if r.get(column) not in (None, "")]
        scored = [(v, r) for v, r in scored if math.isfinite(v)]
        if not scored:
            continue
        value, row = max(scored, key=lambda item: item[0])  # ties: the first in table order
        metrics[metric] = value
        tags[tag] = f"{row['model']}/{row['prompt']}/{row['demo']}"
    return metrics, tags


def track_summary_job(
    *,
    sweep_json: str | Path,
    cell_records: Sequence[str | Path],
    scores_table: str | Path,
    files: Sequence[str | Path],
    out_json: str | Path,
) -> dict[str, Any]:
    """Put the study's summary on the sweep run: :func:`summary_metrics`, and ``files`` (the
    figures ``results/plots/*`` and tables ``results/tables/*``) as artifacts under the name of
    their folder (``plots/scaling_sts.png``, ``tables/scores.csv``). Then log and print where
    to browse the runs (:func:`browse_hint`) and write ``out_json``."""
    sweep = io.read_json(sweep_json)
    uri = sweep["tracking_uri"]
    check_reachable(uri)
    metrics, tags = summary_metrics(scores_table, n_cells=len(cell_records))
    artifacts = sorted(f"{Path(p).parent.name}/{Path(p).name}" for p in files)

    def log_summary():  # idempotent: run again as a whole while the store is locked
        check_sqlite_store(uri)
        client = client_for(uri)
        check_sweep_run(client, sweep, sweep_json)
        run = client.get_run(sweep["run_id"])
        sync_run(client, run, params={}, tags=tags, metrics=metrics)
        with tempfile.TemporaryDirectory(prefix="sentscale-summary-") as tmp:
            for path in files:
                dest = Path(tmp) / Path(path).parent.name / Path(path).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(Path(path).read_bytes())
            _retry(lambda: client.log_artifacts(run.info.run_id, tmp), "log artifacts")
        _retry(lambda: client.set_terminated(run.info.run_id, "FINISHED"), "finish run")

    while_locked(uri, log_summary, "sweep summary")
    name = sweep.get("experiment_name", "")
    command, url = browse_hint(uri, sweep["experiment_id"])
    text = _browse_text(uri, sweep["experiment_id"], name)
    log.info("summary on sweep run %s: %s; %d artifacts", sweep["run_id"], metrics, len(artifacts))
    if text:
        log.info("%s", text)
        print(text, flush=True)  # the console: the job's log holds stderr only
    record = {
        "tracking_uri": uri,
        "experiment_name": name,
        "experiment_id": sweep["experiment_id"],
        "run_id": sweep["run_id"],
        "metrics": metrics,
        "tags": tags,
        "artifacts": artifacts,
        "ui_command": command,
        "runs_url": url,
    }
    io.write_json(out_json, record)
    return record
