"""What a model's files on disk must be, and the checks against it.

``sentscale provision`` records in ``<models_dir>/<name>/sentscale-provenance.json`` (the
*marker*) which registry entry a folder was built from (its *identity*: name, kind, source) and
the name, size and sha256 of every file the model is read from: the copy beside the marker, or
a local source's own folder. The workflow keeps the same file list in a study-local *record*
(``results/models/<name>.json``, :func:`write_record`), which the model-loading jobs take as
input instead of any path under ``models_dir``.

Two depths of check: sizes (a ``stat`` per file, done whenever a copy is used) and sha256s
(reads every byte: on demand, when loading fails, and in the workflow's provision job).
This module knows dicts and folders only (no registry), so both the loader
(:mod:`sentscale.models`) and :mod:`sentscale.provision` build on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ModelError
from .fetch import sha256_file
from .io import read_json, write_json

PROVENANCE = "sentscale-provenance.json"  # written last by `sentscale provision`
#: 1: sha256s only; 2: sizes too (``sizes``), so a cheap check can run before every use.
PROVENANCE_VERSION = 2
#: Keys of a marker that say which registry entry the folder was provisioned from.
IDENTITY_KEYS = ("name", "kind", "source")


def model_files(folder: str | os.PathLike) -> list[str]:
    """Relative paths of the files a model is read from: every file under ``folder`` except
    the marker and hidden folders (a hub snapshot's ``.cache``, a clone's ``.git``)."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.as_posix() == PROVENANCE or any(p.startswith(".") for p in rel.parts[:-1]):
            continue
        if path.is_file():
            found.append(rel.as_posix())
    return sorted(found)


def inventory(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{"files": {rel: sha256}, "sizes": {rel: bytes}}`` of :func:`model_files`."""
    folder = Path(folder)
    names = model_files(folder)
    return {
        "files": {rel: sha256_file(folder / rel) for rel in names},
        "sizes": {rel: (folder / rel).stat().st_size for rel in names},
    }


def first_difference(
    folder: str | os.PathLike,
    sizes: Mapping[str, int] | None,
    files: Mapping[str, str] | None = None,
    *,
    full: bool = False,
) -> str | None:
    """None when ``folder`` holds every recorded file with its recorded size (and, ``full``,
    its sha256); else ``"<file>: <what differs>"`` for the first file that differs."""
    folder = Path(folder)
    names = sorted(set(sizes or {}) | set(files or {}))
    for rel in names:
        path = folder / rel
        if not path.is_file():
            return f"{rel}: missing"
        found = path.stat().st_size
        if sizes and rel in sizes and found != sizes[rel]:
            return f"{rel}: expected {sizes[rel]} bytes, found {found}"
    if full:
        for rel in names:
            if files and rel in files and (got := sha256_file(folder / rel)) != files[rel]:
                return f"{rel}: sha256 expected {files[rel]}, found {got}"
    return None


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A folder's marker, or None when it has none (or an unreadable one)."""
    try:
        marker = read_json(Path(folder) / PROVENANCE)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def identity_of(marker: Mapping[str, Any]) -> dict[str, Any]:
    return {k: marker.get(k) for k in IDENTITY_KEYS}


def weights_folder(identity: Mapping[str, Any], copy: str | os.PathLike) -> Path:
    """Where a model is read from: a local source's folder, else the provisioned ``copy``."""
    local = (identity.get("source") or {}).get("local")
    return Path(local) if local else Path(copy)


def copy_problem(
    identity: Mapping[str, Any], copy: str | os.PathLike, *, full: bool | None = None
) -> str | None:
    """Why ``copy`` (``<models_dir>/<name>``) is not a usable provisioning of ``identity``
    (None: it is): no marker, another identity, or a file missing or whose size (``full``:
    or sha256) differs from its record. ``full=None``: sha256s when the marker has no sizes
    (version 1), so provisioning never trusts an unchecked copy; the loader passes False."""
    marker = read_marker(copy)
    if marker is None:
        return f"no readable {PROVENANCE} in it"
    recorded = identity_of(marker)
    if recorded != dict(identity):
        return (
            f"provisioned from {recorded['source']} ({recorded['kind']}), the registry entry "
            f"says {identity['source']} ({identity['kind']})"
        )
    sizes, files = marker.get("sizes"), marker.get("files")
    if not files:
        return "its marker lists no files (provisioned by an older sentscale)"
    return first_difference(
        weights_folder(identity, copy), sizes, files, full=not sizes if full is None else full
    )


def rebuild_hint(name: str, models_dir: str | os.PathLike, *, force: bool = True) -> str:
    """How to rebuild a provisioned copy, by hand and in the workflow."""
    return (
        f"rebuild it with `sentscale provision {name}{' --force' if force else ''} "
        f"--models-dir {models_dir}` (a name your study's `registry:` overrides: `snakemake "
        f"--forcerun results/models/{name}.json`, which reruns that model's cells)"
    )


def check_copy(
    identity: Mapping[str, Any], copy: str | os.PathLike, models_dir: str | os.PathLike
) -> None:
    """ModelError unless ``copy`` passes the cheap check (:func:`copy_problem`, sizes only):
    what the loader runs before it reads a provisioned copy."""
    problem = copy_problem(identity, copy, full=False)
    if problem is not None:
        damaged = not problem.startswith(("provisioned from", "no readable"))
        raise ModelError(
            f"model {identity['name']!r}: the provisioned copy {copy}"
            f"{' is damaged' if damaged else ''}: {problem}; "
            + rebuild_hint(identity["name"], models_dir, force=damaged)
        )


def damage_error(
    identity: Mapping[str, Any],
    copy: str | os.PathLike,
    models_dir: str | os.PathLike,
    exc: Exception,
) -> ModelError | None:
    """After loading ``copy`` failed with ``exc``: the full sha256 check. A truncated or
    overwritten file (safetensors says only "incomplete metadata") is named with its recorded
    and actual size or sha256, and how to rebuild it; None when the copy is intact."""
    problem = copy_problem(identity, copy, full=True)
    if problem is None:
        return None
    return ModelError(
        f"model {identity['name']!r}: loading {copy} failed ({type(exc).__name__}: {exc}): "
        f"the copy is damaged, {problem}; " + rebuild_hint(identity["name"], models_dir)
    )


# --- the study's record of a model (results/models/<name>.json) --------------------------------


def write_record(path: str | os.PathLike, identity: Mapping[str, Any], marker: Mapping) -> Path:
    """The workflow's record of a provisioned model: its identity and the files (sizes,
    sha256s) it is read from, as the marker lists them. No path under ``models_dir`` goes in:
    the model-loading jobs take this file as input, so moving ``models_dir`` reruns nothing.
    A local source's folder is the user's to change in place, and new weights of the same
    shape have the same sizes: its files' mtimes go in too (:func:`record_problem`)."""
    local = identity["source"].get("local")
    return write_json(
        path,
        {
            "model": identity["name"],
            "identity": dict(identity),
            "reads_from": "local folder" if local else "models_dir",
            "files": dict(marker["files"]),
            "sizes": dict(marker["sizes"]),
            **({"mtimes": _mtimes(Path(local), marker["files"])} if local else {}),
            "provenance_version": PROVENANCE_VERSION,
        },
    )


def _mtimes(folder: Path, names) -> dict[str, int]:
    return {rel: (folder / rel).stat().st_mtime_ns for rel in names}


def _changed_in_place(
    folder: Path, files: Mapping[str, str], mtimes: Mapping[str, int]
) -> str | None:
    """The first file of a local folder rewritten since the record with other bytes of the
    same size: only files whose mtime moved are hashed (a touch alone is no change)."""
    for rel, mtime in sorted(mtimes.items()):
        path = folder / rel
        if path.stat().st_mtime_ns != mtime and (got := sha256_file(path)) != files.get(rel):
            return f"{rel}: rewritten since the record (sha256 {files.get(rel)}, now {got})"
    return None


def record_problem(
    record: str | os.PathLike, identity: Mapping[str, Any], copy: str | os.PathLike
) -> str | None:
    """Why the model of ``record`` cannot be read as recorded (None: it can, or the record
    is absent or of another identity, so the provision job runs anyway): the first recorded
    file that is missing or of another size in the local source or in ``copy``, or a local
    source's file rewritten with other bytes. Sizes (and mtimes) only, hashing just the local
    files whose mtime moved: this runs for every model at every workflow start."""
    try:
        recorded = json.loads(Path(record).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return f"the record {record} is unreadable ({err})"
    if not isinstance(recorded, dict) or recorded.get("identity") != dict(identity):
        return None
    folder = weights_folder(identity, copy)
    problem = first_difference(folder, recorded.get("sizes") or {})
    if problem is None and recorded.get("mtimes"):
        problem = _changed_in_place(folder, recorded.get("files") or {}, recorded["mtimes"])
    return problem
