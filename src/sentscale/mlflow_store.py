"""The MLflow store under the tracking view: which store, the client, lock waits, idempotent
runs, syncing.

Stores (:func:`resolve_uri`): ``tracking.uri`` from the config, else ``MLFLOW_TRACKING_URI``,
else an embedded sqlite database inside the output folder (``results/mlflow.db``, an absolute
``sqlite:////...`` URI). Every run carries a deterministic key (:data:`KEY_TAG`, :func:`run_key`)
so a rerun finds and updates it (:func:`get_or_create_run`, :func:`sync_run`), which is what lets
:func:`while_locked` run a whole step again while a sqlite store is locked. URIs are checked for
credentials in :mod:`sentscale.tracking_uri`; the sqlite file itself is created and checked in
:mod:`sentscale.sqlite_store`. mlflow itself is imported inside the functions that talk to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import __version__
from .sqlite_store import is_busy, sqlite_path
from .tracking_uri import TrackingError, check_uri, shown_uri

log = logging.getLogger("sentscale.track")  # the tracking view's logger, as before the split

DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlflow-artifacts"
KEY_TAG = "sentscale.run_key"
ROLE_TAG = "sentscale.role"
CHANGED_TAG = "sentscale.params_changed"
PARENT_TAG = "mlflow.parentRunId"
#: the experiment tag MLflow's UI writes from its experiment-type selector. MLflow 3.17's UI does
#: not read it to choose the view (the URL's ``workflowType``, else the browser's saved choice,
#: else GenAI: :func:`sentscale.track_sweep.runs_url`); set anyway so UIs that read it, and
#: anyone reading the experiment's tags, see a runs-and-metrics experiment, not a GenAI one.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
MAX_PARAM_CHARS = 6000
#: how long a tracking step waits for a locked store, in all (``$SENTSCALE_TRACKING_LOCK_WAIT_S``)
LOCK_WAIT_S = 300.0
LOCK_WAIT_ENV = "SENTSCALE_TRACKING_LOCK_WAIT_S"
_DEADLINE: ContextVar[float | None] = ContextVar("sentscale_lock_deadline", default=None)

T = TypeVar("T")


# ------------------------------------------------------------------------------- the store


def default_uri(results_dir: str | Path = "results") -> str:
    """``sqlite:////abs/results/mlflow.db``: explicit, never relative to a job's CWD."""
    return "sqlite:///" + (Path(results_dir).resolve() / DEFAULT_DB).as_posix()


def resolve_uri(uri: str | None = None, results_dir: str | Path = "results") -> str:
    """Config ``tracking.uri`` > ``MLFLOW_TRACKING_URI`` > the sqlite default."""
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(results_dir)
    check_uri(resolved)
    return resolved


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """TrackingError at once when an HTTP(S) tracking server does not accept connections
    (MLflow's own client would retry for minutes before failing)."""
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if parts.scheme in getproxies() and not proxy_bypass(parts.hostname):
        return  # reached through a proxy: a direct connection proves nothing
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise TrackingError(
            f"MLflow tracking server {shown_uri(uri)} is unreachable ({reason}); expected a "
            "running `mlflow server` at that address (tracking.uri or MLFLOW_TRACKING_URI). The "
            "score files do not depend on tracking: start the server, then rerun only the "
            "tracking step with `snakemake --allowed-rules mlflow_parent track_cell "
            "track_summary` (same --configfile and --config as the study)"
        ) from None


def is_local_store(uri: str) -> bool:
    """sqlite or file stores: written by this machine's processes, no server in between."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def lock_wait_s() -> float:
    """Seconds a tracking step waits for a locked store in all: ``$SENTSCALE_TRACKING_LOCK_WAIT_S``
    or :data:`LOCK_WAIT_S`."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        wait = float(text) if text else LOCK_WAIT_S
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or wait < 0:
        raise TrackingError(f"{LOCK_WAIT_ENV}={text!r}; expected a number of seconds >= 0")
    return wait


def _retry(call: Callable[[], T], what: str) -> T:
    """Retry ``call`` while the store reports a lock (concurrent writers on one sqlite file),
    with jittered backoff (0.5 s doubling to 10 s), until the deadline of the enclosing
    :func:`while_locked` (else :func:`lock_wait_s` from now); then the store's error."""
    deadline = _DEADLINE.get() or time.monotonic() + lock_wait_s()
    attempt = 0
    while True:
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - MlflowException or sqlalchemy errors
            left = deadline - time.monotonic()
            if not is_busy(err) or left <= 0:
                raise
            pause = min(left, min(10.0, 0.5 * 2**attempt) * (0.5 + random.random()))
            log.warning("%s: store busy (%s); retrying in %.1f s", what, _first_line(err), pause)
            time.sleep(pause)
            attempt += 1


def while_locked(uri: str, call: Callable[[], T], what: str) -> T:
    """``call`` - a whole tracking step: client creation, every read and write - run again
    while the store is locked, for :func:`lock_wait_s` in all (retries inside it share that
    deadline). The step must be idempotent (runs are found by key). Then one TrackingError
    naming the store and the holder, instead of sqlite's bare 'database is locked'."""
    wait = lock_wait_s()
    token = _DEADLINE.set(time.monotonic() + wait)
    try:
        return _retry(call, what)
    except Exception as err:  # noqa: BLE001
        if not is_busy(err):
            raise
        path = sqlite_path(uri)
        store = f"the sqlite store {path}" if path else f"the store of {shown_uri(uri)}"
        holder = f"`fuser {path}` names it" if path else "the server's log names it"
        raise TrackingError(
            f"{what}: {store} stayed locked for {wait:.0f} s ({_first_line(err)}): another "
            "process holds a write transaction on it (another sentscale run or mlflow command "
            f"writing to it, or one stopped mid-write; {holder}); expected it to be free - end "
            f"that process and rerun (runs resume by key), or wait longer with {LOCK_WAIT_ENV}"
        ) from None
    finally:
        _DEADLINE.reset(token)


def _first_line(err: BaseException) -> str:
    """sqlite's own words (``database is locked``), without SQLAlchemy's SQL dump."""
    lines = [line.strip() for line in str(err).splitlines() if "locked" in line or "busy" in line]
    text = lines[0] if lines else str(err).splitlines()[0] if str(err) else type(err).__name__
    return text.split(") ", 1)[-1] if text.startswith("(") else text


def client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def code_version() -> str:
    """``sentscale <version>`` plus the git commit of the checkout (``-dirty`` if modified)."""
    here = Path(__file__).resolve().parent
    version = f"sentscale {__version__}"
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} ({commit}{'-dirty' if dirty else ''})" if commit else version


def ensure_experiment(
    client,
    name: str,
    artifact_location: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The experiment's id, created (or restored from the trash) when needed, with ``tags``
    (set again on an existing experiment when they differ, e.g. one an older version made)."""
    from mlflow.entities import LifecycleStage

    tags = dict(tags or {})
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return _retry(
            lambda: client.create_experiment(name, artifact_location=artifact_location, tags=tags),
            "create experiment",
        )
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        client.restore_experiment(experiment.experiment_id)
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            _retry(
                lambda k=key, v=value: client.set_experiment_tag(experiment.experiment_id, k, v),
                "set experiment tag",
            )
    return experiment.experiment_id


def run_key(settings: Mapping[str, Any]) -> str:
    """Deterministic key of a run: sha256 of the canonical JSON of its settings (24 hex)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _runs_with_key(client, experiment_id: str, key: str) -> list:
    """Active runs tagged with ``key``, oldest first."""
    return _retry(
        lambda: client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{KEY_TAG}` = '{key}'",
            order_by=["attributes.start_time ASC"],
            max_results=10,
        ),
        "search runs",
    )


def find_run(client, experiment_id: str, key: str):
    """The active run tagged with ``key``, or None (the oldest if several)."""
    runs = _runs_with_key(client, experiment_id, key)
    if len(runs) > 1:
        oldest = runs[0].info.run_id
        log.warning("%d runs carry key %s; using the oldest, %s", len(runs), key, oldest)
    return runs[0] if runs else None


def get_or_create_run(client, experiment_id: str, key: str, name: str, tags: Mapping[str, str]):
    """(run, created): the run with ``key`` or a new one named ``name``."""
    run = find_run(client, experiment_id, key)
    if run is not None:
        return run, False
    created = _retry(
        lambda: client.create_run(experiment_id, run_name=name, tags={**tags, KEY_TAG: key}),
        "create run",
    )
    # A create request the HTTP client retried (server slow or busy) can leave two runs with
    # one key: keep the oldest, as every concurrent caller will, and delete the others.
    runs = _runs_with_key(client, experiment_id, key)
    if not runs:
        return created, True
    keep = min(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    for extra in runs:
        if extra.info.run_id != keep.info.run_id:
            log.warning("run %s duplicates key %s; deleting it", extra.info.run_id, key)
            _retry(lambda rid=extra.info.run_id: client.delete_run(rid), "delete run")
    return keep, keep.info.run_id == created.info.run_id


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"embed": {"dtype": x}}`` -> ``embed.dtype``."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = _param_text(value)
    return out


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_PARAM_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        text = text[: MAX_PARAM_CHARS - 40] + f"... [sha256 {digest}]"
    return text


def sync_run(
    client,
    run,
    *,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    name: str | None = None,
) -> dict[str, list[str]]:
    """Bring ``run`` up to date: its name, params it lacks, tags, metrics whose value changed.

    Tags hold only what is not a param: MLflow params are immutable, so a param whose value
    differs from the one logged first keeps that value, its current value goes into the tag of
    the same name and :data:`CHANGED_TAG` names it; a tag that only repeats a param (every param
    was also a tag before issue 18) is deleted. Returns what was written (``params``,
    ``metrics``), the params that ``changed`` and the ``deleted_tags``.
    """
    from mlflow.entities import Metric, Param, RunTag

    run_id = run.info.run_id
    old_params, old_metrics, old_tags = run.data.params, run.data.metrics, run.data.tags
    new_params = {k: v for k, v in params.items() if k not in old_params}
    changed = sorted(k for k, v in params.items() if k in old_params and old_params[k] != v)
    if changed:
        log.warning("run %s: params changed since first logged: %s", run_id, changed)
    new_tags = {**tags, **{k: params[k] for k in changed}}
    if changed or CHANGED_TAG in old_tags:
        new_tags[CHANGED_TAG] = ",".join(changed)
    # a tag of a current param's name, or one repeating a param logged earlier (one no longer
    # logged, like data_fingerprint before it was renamed), is a leftover duplicate
    logged = {**old_params, **new_params}
    stale = sorted(
        k
        for k, v in old_tags.items()
        if k not in new_tags and (k in params or (k in logged and logged[k] == v))
    )
    now = int(time.time() * 1000)
    new_metrics = {
        k: float(v)
        for k, v in metrics.items()
        if v is not None
        and math.isfinite(v)
        and not (k in old_metrics and math.isclose(old_metrics[k], v, rel_tol=0, abs_tol=1e-12))
    }
    param_items = [Param(k, v) for k, v in sorted(new_params.items())]
    tag_items = [RunTag(k, str(v)) for k, v in sorted(new_tags.items())]
    metric_items = [Metric(k, v, now, 0) for k, v in sorted(new_metrics.items())]
    # log_batch takes at most 100 params / 1000 entries per call
    for start in range(0, max(len(param_items), len(tag_items), len(metric_items)), 100):
        batch = dict(
            params=param_items[start : start + 100],
            tags=tag_items[start : start + 100],
            metrics=metric_items[start : start + 100],
        )
        _retry(lambda b=batch: client.log_batch(run_id, **b), "log batch")
    for key in stale:
        _retry(lambda k=key: client.delete_tag(run_id, k), "delete tag")
    if name and run.info.run_name != name:  # names are generated: a new scheme renames old runs
        _retry(lambda: client.update_run(run_id, name=name), "rename run")
    return {
        "params": sorted(new_params),
        "metrics": sorted(new_metrics),
        "changed": changed,
        "deleted_tags": stale,
    }


def log_curves(client, run_id: str, curves: Mapping[str, list[tuple[int, float]]]) -> dict:
    """Log step-indexed ``curves`` ({metric: [(step, value), ...]}); idempotent: a (step, value)
    point already in the run's history is not logged again. Returns {metric: points logged}."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    written: dict[str, int] = {}
    for key, points in curves.items():
        history = _retry(lambda k=key: client.get_metric_history(run_id, k), "metric history")
        seen = {(m.step, m.value) for m in history}
        new = [
            Metric(key, value, now, step)
            for step, value in points
            if math.isfinite(value)
            and not any(s == step and math.isclose(v, value, abs_tol=1e-12) for s, v in seen)
        ]
        for start in range(0, len(new), 1000):
            batch = new[start : start + 1000]
            _retry(lambda b=batch: client.log_batch(run_id, metrics=b), "log curves")
        written[key] = len(new)
    return written
