"""The embedded sqlite MLflow store: created atomically, checked before use, rebuilt when an
interrupted creation left it half-made.

MLflow creates a sqlite store in place: its initial tables, then a long chain of alembic
migrations whose DDL sqlite commits as it goes. Ctrl-C, ``kill -9`` or a full disk in between
leaves a file MLflow can neither use nor create again (``table experiment_tags already
exists``). Here a new store is migrated in a temporary file in the same folder and renamed into
place once complete (:func:`ensure_sqlite_store`), so ``results/mlflow.db`` is either absent or
whole, and a store found broken is handled by what it holds:

- no runs (an interrupted creation, an empty file): rebuilt - nothing is lost, tracking is a
  view of the score files and the tracking jobs log every cell again;
- not a readable database: moved aside as ``<name>.broken-<UTC time>`` (kept, never deleted),
  then rebuilt;
- runs at another schema version (an older MLflow, an interrupted ``mlflow db upgrade``):
  refused with the fix, since rebuilding would drop runs the score files may no longer hold.

The tracking jobs only check (:func:`check_sqlite_store`); ``mlflow_parent``, which runs
before all of them, is the only one that creates or rebuilds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

from .tracking_uri import TrackingError

log = logging.getLogger("sentscale.track")  # the tracking view's logger

REBUILD = (
    "rebuild it with `snakemake --forcerun mlflow_parent` (same --configfile and --config as "
    "the study; the tracking jobs then log every cell again from the score files)"
)


def is_busy(err: BaseException) -> bool:
    """True for sqlite's 'database is locked' / 'busy' however MLflow or SQLAlchemy wrap it
    (never for sentscale's own errors, which may name a lock in their advice)."""
    from .errors import SentscaleError

    text = str(err).lower()
    return not isinstance(err, SentscaleError) and ("locked" in text or "busy" in text)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<path>`` URI (``sqlite:////abs`` is absolute);
    None for other URIs and in-memory databases."""
    if not uri.lower().startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _schema():
    """(head revision, table names) of the store this MLflow writes."""
    from mlflow.store.db import utils

    return utils._get_latest_schema_revision(), set(utils.Base.metadata.tables)


def store_problem(path: Path, timeout: float = 5.0) -> tuple[str | None, int | None]:
    """(what makes ``path`` unusable as an MLflow store, or None; how many runs it holds, or
    None when it cannot be read). A lock is no problem: after ``timeout`` (sqlite's own wait,
    per attempt) its error propagates (:func:`is_busy`) for the caller's retry."""
    if path.stat().st_size == 0:
        return "it is empty (0 bytes)", 0
    # read-write: a hot journal left by a writer killed mid-transaction is rolled back first
    uri = f"{path.resolve().as_uri()}?mode=rw"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=timeout)) as con:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
            versions = (
                [r[0] for r in con.execute("SELECT version_num FROM alembic_version")]
                if "alembic_version" in tables
                else []
            )
    except sqlite3.DatabaseError as err:
        if is_busy(err):
            raise
        return f"it is not a readable sqlite database ({err})", None
    head, expected = _schema()
    missing = sorted(expected - tables)
    if not versions:
        return "it has no schema version (its creation was interrupted)", runs
    if versions != [head]:
        return f"its schema is at version {','.join(versions)}, not {head}", runs
    if missing:
        return f"it lacks the tables {', '.join(missing[:6])}", runs
    return None, runs


def check_sqlite_store(uri: str) -> None:
    """TrackingError (with the fix) when the sqlite store of ``uri`` is missing or broken;
    for the tracking jobs, which must not create or rebuild a store other jobs are using."""
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.exists():
        raise TrackingError(
            f"the MLflow store {path} does not exist (deleted or moved after mlflow_parent "
            f"created it); expected the store results/tracking/parent.json names - {REBUILD}"
        )
    problem, _ = store_problem(path)
    if problem is not None:
        raise TrackingError(f"the MLflow store {path} is not usable: {problem}; {REBUILD}")


def ensure_sqlite_store(uri: str) -> bool:
    """Make the sqlite store of ``uri`` whole: create it, or rebuild it when it is broken (see
    the module's rules). True when a new store was built."""
    path = sqlite_path(uri)
    if path is None:
        return False
    if path.exists():
        problem, runs = store_problem(path)
        if problem is None:
            return False
        if runs is None:
            aside = path.with_name(
                f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            os.replace(path, aside)
            log.warning(
                "MLflow store %s: %s; moved it aside to %s and building a new store (the "
                "tracking jobs log every cell again from the score files)",
                path, problem, aside.name,
            )  # fmt: skip
        elif runs == 0:
            log.warning(
                "MLflow store %s is half-created (%s) and holds no runs: rebuilding it (the "
                "tracking jobs log every cell again from the score files)",
                path, problem,
            )  # fmt: skip
        else:
            raise TrackingError(
                f"the MLflow store {path} holds {runs} runs but {problem}; expected a store of "
                f"this MLflow's schema - back it up and run `mlflow db upgrade sqlite:///{path}` "
                f"(an older MLflow made it), or move it aside and {REBUILD}"
            )
    _build(path)
    _forget(uri)
    return True


def _build(path: Path) -> None:
    """Migrate a new store in a temporary file beside ``path``, then rename it into place."""
    from mlflow.store.db import utils
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # NullPool: no connection outlives the migration to hold the file after the rename
        engine = create_engine(f"sqlite:///{tmp}", poolclass=NullPool)
        try:
            utils._initialize_tables(engine)
            utils._verify_schema(engine)
        finally:
            engine.dispose()
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # a journal of the file being replaced would be "rolled back" into the new one
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # not every file system syncs folders
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    except BaseException as err:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
        if isinstance(err, Exception) and not isinstance(err, TrackingError):
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TrackingError(
                f"could not create the MLflow store {path} ({reason}); expected a writable "
                "folder with free space - fix that and rerun (nothing was left half-made)"
            ) from None
        raise
    log.info("created the MLflow store %s", path)


def _remove_stale_temps(path: Path) -> None:
    """Temporary stores of creations that were killed (their process is gone)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        pid = stale.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            stale.unlink()
            log.info("removed %s, left by an interrupted store creation", stale.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _forget(uri: str) -> None:
    """Drop this process's MLflow handles on the replaced file (a pooled connection would
    keep writing to the old one)."""
    with contextlib.suppress(ImportError, AttributeError):
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.tracking._tracking_service import utils

        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
        utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
