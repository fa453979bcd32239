"""MLflow tracking: a view of the score files (which stay the source of truth).

Layout: one experiment per study (``sentscale/<study>``); one *sweep* (parent) run per study and
shared settings (tasks, embed and evaluate options, registry overrides), created once by the
upstream local rule ``mlflow_parent`` and given the study's summary, figures and tables by
``track_summary`` at the end (:mod:`sentscale.track_sweep`); one child run per cell (model,
prompt, demo) with params, tags, metrics and artifacts taken from the cell's files (here).

Stores (:func:`resolve_uri`): ``tracking.uri`` from the config, else ``MLFLOW_TRACKING_URI``,
else an embedded sqlite database inside the output folder (``results/mlflow.db``, an absolute
``sqlite:////...`` URI, artifacts beside it in ``results/mlflow-artifacts``). The sweep rule
creates the database once; every tracking job takes its output (``results/tracking/parent.json``)
as input, so jobs never race to initialise a fresh sqlite file.

Idempotence: every run carries a deterministic key (``sentscale.run_key``, a hash of the
settings that define it). A rerun finds the run by its key and updates it: params already
logged are kept (a changed value is reported in the tag ``sentscale.params_changed`` and the
current value is in the tag of the same name), metrics are logged only when their value
changed, artifacts are overwritten in place. Rerunning the pipeline never adds runs.

What a reader sees: child runs are named ``<model alias> <prompt>/<demo>``
(:func:`model_aliases`: MLflow 3.17's runs table shows ~12 characters of a name), the full
cell in the tag ``sentscale.cell``; metrics are rounded to two decimals as the tables show
them (the score files keep full precision); tags hold only what is not a param.

The store itself (client, lock waits, runs by key, syncing) is :mod:`sentscale.mlflow_store`,
the sqlite file (created atomically, a half-created one rebuilt) :mod:`sentscale.sqlite_store`,
URIs (credentials refused) :mod:`sentscale.tracking_uri`; this module turns a cell's files into
its run, logged as one step that is run again while the store is locked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import aggregate, data, io
from .mlflow_store import (
    ARTIFACT_DIR,
    CHANGED_TAG,
    DEFAULT_DB,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    KEY_TAG,
    MAX_PARAM_CHARS,
    PARENT_TAG,
    ROLE_TAG,
    TrackingError,
    _param_text,
    _retry,
    check_reachable,
    check_uri,
    client_for,
    code_version,
    default_uri,
    ensure_experiment,
    find_run,
    flatten,
    get_or_create_run,
    is_local_store,
    log_curves,
    resolve_uri,
    run_key,
    sync_run,
    while_locked,
)
from .sqlite_store import check_sqlite_store
from .track_display import cell_run_name, model_alias, model_aliases, shown
from .track_sweep import (
    browse_hint,
    check_sweep_run,
    experiment_name,
    mlflow_parent_job,
    runs_url,
    track_summary_job,
)

__all__ = [
    "ARTIFACT_DIR",
    "CELL_TAG",
    "CHANGED_TAG",
    "DEFAULT_DB",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "KEY_TAG",
    "MAX_PARAM_CHARS",
    "PARENT_TAG",
    "ROLE_TAG",
    "TrackingError",
    "browse_hint",
    "cell_metrics",
    "cell_params",
    "cell_run_name",
    "check_reachable",
    "check_uri",
    "client_for",
    "code_version",
    "data_fingerprint",
    "default_uri",
    "ensure_experiment",
    "experiment_name",
    "find_run",
    "flatten",
    "get_or_create_run",
    "is_local_store",
    "log_training_curves",
    "model_alias",
    "model_aliases",
    "resolve_uri",
    "run_key",
    "mlflow_parent_job",
    "runs_url",
    "shown",
    "sync_run",
    "track_cell_job",
    "track_summary_job",
    "training_metrics",
]

log = logging.getLogger(__name__)

#: the cell a child run logs, ``model/prompt/demo`` in full (its run name is shortened)
CELL_TAG = "sentscale.cell"
#: metrics logged as they are, not rounded: exact counts rescaled (the tables show the count)
EXACT_METRICS = frozenset({"params_b", "n_sentences"})


# ------------------------------------------------------------------------------------ cells


def _pearson(result: Mapping[str, Any]) -> float | None:
    if isinstance(result.get("all"), Mapping):
        return result["all"]["pearson"]["all"]
    for split in ("test", "dev"):
        part = result.get(split)
        if isinstance(part, Mapping) and "pearson" in part:
            return part["pearson"]
    return None


def cell_metrics(
    results: Mapping[str, Mapping[str, Any]],
    *,
    params_count: int,
    meta: Mapping[str, Any] | None = None,
    embed_benchmark: str | Path | None = None,
    evaluate_benchmarks: Iterable[str | Path] = (),
    boot: aggregate.Bootstrap | None = None,
) -> dict[str, float]:
    """Metrics of one cell: per task (STS: spearman, pearson, CI; transfer: accuracy, f1),
    averages (``sts_avg`` with CI, ``transfer_avg``), ``params_b`` and cost figures; rounded
    as the tables show them (:func:`shown`: two decimals, so ``sts_avg`` and
    ``STSBenchmark.spearman`` read alike), but for :data:`EXACT_METRICS`."""
    metrics: dict[str, float] = {"params_b": params_count / 1e9}
    sts = [t for t in results if t in data.STS_TASKS]
    transfer = [t for t in results if t in data.TRANSFER_TASKS]
    boots = aggregate.bootstrap_cell(results, boot) if boot is not None else None
    for task in sts:
        result = results[task]
        metrics[f"{task}.spearman"] = float(result["score"])
        pearson = _pearson(result)
        if pearson is not None:
            metrics[f"{task}.pearson"] = 100.0 * float(pearson)
        if boots is not None and task in boots.samples:
            lo, hi = aggregate.percentile_ci(boots.samples[task], boot.confidence)
            metrics[f"{task}.spearman_lo"], metrics[f"{task}.spearman_hi"] = lo, hi
    for task in transfer:
        result = results[task]
        metrics[f"{task}.accuracy"] = float(result.get("accuracy", result["score"]))
        if "f1" in result:
            metrics[f"{task}.f1"] = float(result["f1"])
    if sts:
        metrics["sts_avg"] = aggregate.paper_average(results[t]["score"] for t in sts)
        avg = boots.average_samples(sts) if boots is not None else None
        if avg is not None:
            metrics["sts_avg_lo"], metrics["sts_avg_hi"] = aggregate.percentile_ci(
                avg, boot.confidence
            )
    for task in [t for t in results if t in data.EXTRA_TASKS]:
        metrics[f"{task}.spearman"] = float(results[task]["score"])
    if transfer:
        metrics["transfer_avg"] = aggregate.paper_average(results[t]["score"] for t in transfer)
    if meta:
        timings = meta.get("timings") or {}
        for key, name in (
            ("sentences_per_s", "sentences_per_s"),
            ("encode_s", "encode_s"),
            ("load_s", "load_s"),
        ):
            if timings.get(key) is not None:
                metrics[name] = float(timings[key])
        if meta.get("n_sentences") is not None:
            metrics["n_sentences"] = float(meta["n_sentences"])
    if embed_benchmark:
        bench = aggregate.read_benchmark(embed_benchmark)
        metrics["embed_wall_s"] = bench.get("s", math.nan)
        metrics["embed_peak_rss_mb"] = bench.get("max_rss", math.nan)
    scoring = sum(aggregate.read_benchmark(p).get("s", 0.0) for p in evaluate_benchmarks)
    scoring += sum(sum((results[t].get("timings") or {}).values()) for t in sts)
    metrics["scoring_wall_s"] = scoring
    return {
        k: v if k in EXACT_METRICS else shown(v)
        for k, v in metrics.items()
        if v is not None and math.isfinite(v)
    }


def data_fingerprint(fingerprints: Mapping[str, str]) -> str:
    """One fingerprint for the data of all tasks of a cell: the first 16 hex digits of the
    sha256 of the JSON ``{task: per-task fingerprint}`` (keys sorted). Logged as the param
    ``data_fingerprint_combined``: it is not any score file's ``data_fingerprint`` (the
    sha256 of one task's data), but changes whenever one of them does."""
    text = json.dumps(dict(sorted(fingerprints.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cell_params(
    cell: Mapping[str, str],
    results: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    *,
    study: str,
) -> dict[str, str]:
    """Params of a cell run: what it is and how it was computed."""
    spec = meta.get("spec") or {}
    prompt = meta.get("prompt") or {}
    embed = meta.get("embed") or {}
    demos = prompt.get("demos") or []
    fingerprints = meta.get("data_fingerprints") or {
        t: r.get("data_fingerprint") for t, r in results.items()
    }
    protocol = next(iter(results.values()), {}).get("protocol") or {}
    transfer_modes = sorted(
        {r.get("mode") for t, r in results.items() if t in data.TRANSFER_TASKS} - {None}
    )
    values = {
        "study": study,
        "model": cell["model"],
        "model_id": (spec.get("source") or {}).get("hub") or spec.get("name") or cell["model"],
        "family": spec.get("family"),
        "kind": spec.get("kind"),
        "params": spec.get("params"),
        "prompt": cell["prompt"],
        "template": prompt.get("template", "(none: sentence encoder)"),
        "pooling": prompt.get("pooling"),
        "preprocess": prompt.get("preprocess"),
        "demo": cell["demo"],
        "demo_text": " | ".join(f"{s} -> {w}" for s, w in demos) if demos else "(none)",
        "dtype": embed.get("dtype"),
        "batch_size": embed.get("batch_size"),
        "quantization": embed.get("quantization"),
        "tasks": ",".join(results),
        "transfer_mode": ",".join(transfer_modes) if transfer_modes else None,
        "max_items": protocol.get("max_items"),
        "seed": protocol.get("seed"),
        # named apart from the score files' per-task data_fingerprint (see data_fingerprint)
        "data_fingerprint_combined": data_fingerprint({k: v for k, v in fingerprints.items() if v}),
        "code_version": code_version(),
    }
    return {k: _param_text(v) for k, v in values.items() if v is not None}


def _chosen_demos_tsv(meta: Mapping[str, Any], path: Path) -> None:
    demos = (meta.get("prompt") or {}).get("demos") or []
    lines = ["position\tsentence\tword"] + [
        f"{i}\t{s}\t{w}" for i, (s, w) in enumerate(demos, start=1)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def track_cell_job(
    *,
    sweep_json: str | Path,
    cell: Mapping[str, str],
    settings: Mapping[str, Any],
    score_files: Sequence[str | Path],
    embed_meta: str | Path,
    out_json: str | Path,
    embed_benchmark: str | Path | None = None,
    evaluate_benchmarks: Sequence[str | Path] = (),
    demos: Sequence[str | Path] = (),
    boot: aggregate.Bootstrap | None = None,
    training_log: str | Path | None = None,
    alias: str | None = None,
) -> dict[str, Any]:
    """Log one cell as a child of the sweep run (resuming its run on reruns); write
    ``out_json`` (run id, key, params and metrics logged, all from the files).

    The run is named :func:`cell_run_name` (``alias``: the study's alias of the model,
    :func:`model_aliases`; default: :func:`model_alias` of its name), its tag
    :data:`CELL_TAG` holds the cell in full.

    Artifacts: ``scores/<task>.json``, ``embed/meta.json``, ``benchmarks/embed.tsv`` and
    ``benchmarks/evaluate/<task>.tsv``, ``demos/chosen.tsv`` (the demonstrations the cell used)
    and, for a cell whose demo was selected on STS-B dev, the files in ``demos``
    (``ranking.tsv``, ``selected.json``) under ``demos/``. A fine-tuned cell's
    ``training_log`` (``train.json``, :mod:`sentscale.finetune`) adds its summary metrics
    (``finetune.*``), its curves (:func:`log_training_curves`) and ``finetune/train.json``."""
    sweep = io.read_json(sweep_json)
    uri = sweep["tracking_uri"]
    check_reachable(uri)
    results = {}
    for path in score_files:
        result = io.read_json(path)
        results[result["task"]] = result
    meta = io.read_json(embed_meta)
    key = run_key({"sweep": sweep["run_key"], "cell": dict(cell), "settings": settings})
    name = cell_run_name(cell, alias)
    tags = {
        ROLE_TAG: "cell",
        PARENT_TAG: sweep["run_id"],
        CELL_TAG: f"{cell['model']}/{cell['prompt']}/{cell['demo']}",
    }
    params = cell_params(cell, results, meta, study=sweep["study"])
    metrics = cell_metrics(
        results,
        params_count=int(meta["spec"]["params"]),
        meta=meta,
        embed_benchmark=embed_benchmark,
        evaluate_benchmarks=evaluate_benchmarks,
        boot=boot,
    )
    training = io.read_json(training_log) if training_log else None
    if training is not None:
        metrics.update(training_metrics(training))
    files = dict(score_files=score_files, embed_meta=embed_meta, embed_benchmark=embed_benchmark)
    files.update(evaluate_benchmarks=evaluate_benchmarks, demos=demos, training_log=training_log)

    def log_cell():  # idempotent (run by key): run again as a whole while the store is locked
        check_sqlite_store(uri)  # missing or half-made: the fix, not MLflow creating one here
        client = client_for(uri)
        check_sweep_run(client, sweep, sweep_json)
        run, created = get_or_create_run(client, sweep["experiment_id"], key, name, tags)
        written = sync_run(client, run, params=params, tags=tags, metrics=metrics, name=name)
        if training is not None:
            log_training_curves(client, run.info.run_id, training)
        _log_artifacts(client, run.info.run_id, meta, results=results, **files)
        _retry(lambda: client.set_terminated(run.info.run_id, "FINISHED"), "finish run")
        return run, created, written

    run, created, written = while_locked(uri, log_cell, f"cell {name}")
    log.info(
        "%s run %s (%s): %d params, %d metrics written, changed params %s",
        "created" if created else "resumed",
        run.info.run_id,
        name,
        len(written["params"]),
        len(written["metrics"]),
        written["changed"],
    )
    record = _cell_record(sweep, run.info.run_id, key, name, cell, params, metrics)
    io.write_json(out_json, record)
    return record


def _cell_record(sweep, run_id, key, name, cell, params, metrics) -> dict[str, Any]:
    """What :func:`track_cell_job` writes: where the run is, and what it logged."""
    return {
        "tracking_uri": sweep["tracking_uri"],
        "experiment_id": sweep["experiment_id"],
        "parent_run_id": sweep["run_id"],
        "run_id": run_id,
        "run_key": key,
        "run_name": name,
        "cell": dict(cell),
        "params": params,
        "metrics": {k: round(v, 6) for k, v in sorted(metrics.items())},
    }


def _log_artifacts(
    client,
    run_id: str,
    meta: Mapping[str, Any],
    *,
    results: Mapping[str, Any],
    score_files: Sequence[str | Path],
    embed_meta: str | Path,
    embed_benchmark: str | Path | None,
    evaluate_benchmarks: Sequence[str | Path],
    demos: Sequence[str | Path],
    training_log: str | Path | None,
) -> None:
    """Stage a cell's files in the artifact layout of :func:`track_cell_job` and log them."""
    with tempfile.TemporaryDirectory(prefix="sentscale-track-") as tmp:
        stage = Path(tmp)
        for sub in ("scores", "benchmarks/evaluate", "embed", "demos"):
            (stage / sub).mkdir(parents=True, exist_ok=True)
        for task, path in zip(results, score_files, strict=True):
            (stage / "scores" / f"{task}.json").write_bytes(Path(path).read_bytes())
        (stage / "embed" / "meta.json").write_bytes(Path(embed_meta).read_bytes())
        if embed_benchmark:
            (stage / "benchmarks" / "embed.tsv").write_bytes(Path(embed_benchmark).read_bytes())
        for path in evaluate_benchmarks:
            (stage / "benchmarks" / "evaluate" / Path(path).name).write_bytes(
                Path(path).read_bytes()
            )
        _chosen_demos_tsv(meta, stage / "demos" / "chosen.tsv")
        for path in demos:
            (stage / "demos" / Path(path).name).write_bytes(Path(path).read_bytes())
        if training_log:
            (stage / "finetune").mkdir(exist_ok=True)
            (stage / "finetune" / "train.json").write_bytes(Path(training_log).read_bytes())
        for empty in [p for p in stage.rglob("*") if p.is_dir() and not any(p.iterdir())]:
            with contextlib.suppress(OSError):
                empty.rmdir()
        _retry(lambda: client.log_artifacts(run_id, str(stage)), "log artifacts")


# ------------------------------------------------------------------------------ fine-tuning


def training_metrics(training: Mapping[str, Any]) -> dict[str, float]:
    """Summary metrics of a fine-tuning log (``train.json``): dev before/best, loss first/last;
    two decimals like the cell's other metrics (the curves keep every digit: the learning
    rate is ~1e-5)."""
    losses = training.get("loss") or []
    values = {
        "finetune.dev_before": training.get("dev_before"),
        "finetune.best_dev_spearman": training.get("best_dev_spearman"),
        "finetune.best_step": training.get("best_step"),
        "finetune.steps": training.get("steps"),
        "finetune.loss_first": losses[0]["loss"] if losses else None,
        "finetune.loss_last": losses[-1]["loss"] if losses else None,
        "finetune.train_s": training.get("train_s"),
    }
    return {k: shown(v) for k, v in values.items() if v is not None}


def log_training_curves(client, run_id: str, training: Mapping[str, Any]) -> dict[str, int]:
    """Step-indexed curves of a fine-tuning log: ``train.loss`` and ``train.lr`` per optimiser
    step, ``train.dev_spearman`` per checkpoint (step 0: the untuned model). Idempotent: a
    (step, value) point already in the run's history is not logged again."""
    curves: dict[str, list[tuple[int, float]]] = {
        "train.loss": [(int(r["step"]), float(r["loss"])) for r in training.get("loss") or []],
        "train.lr": [(int(r["step"]), float(r["lr"])) for r in training.get("loss") or []],
        "train.dev_spearman": [(0, float(training["dev_before"]))]
        if training.get("dev_before") is not None
        else [],
    }
    curves["train.dev_spearman"] += [
        (int(r["step"]), float(r["dev_spearman"])) for r in training.get("dev") or []
    ]
    return log_curves(client, run_id, curves)
