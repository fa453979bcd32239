"""Atomic output: write to a temporary name in the same folder, then rename.

An interrupted job therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp creates 0600; results on shared clusters should be readable like any file.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def readable_modes(folder: str | os.PathLike) -> None:
    """Give ``folder`` and everything in it the modes a new file gets (0666 / 0777 less the
    umask, read now: a job may set its own): ``save_pretrained`` and ``mkdtemp`` create
    0600 / 0700, which others sharing a ``models_dir`` cannot read."""
    mask = _current_umask()
    root = Path(folder)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def replace_dir(
    built: str | os.PathLike, target: str | os.PathLike, aside: str | os.PathLike
) -> Path:
    """Move the complete directory ``built`` to ``target`` by renames only.

    An older ``target`` is first renamed to ``aside`` (a scratch path on the same filesystem
    that the caller removes), so readers see either the old folder or the new one, never a
    half-deleted one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        os.replace(target, aside)
    os.replace(built, target)
    return target


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = True) -> Path:
    """Write ``obj`` as sorted, indented JSON (stable bytes for equal content); with
    ``sort_keys=False`` in the order ``obj`` has (a caller that orders it for readers)."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=_to_jsonable) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Save arrays uncompressed with ``np.savez`` under an atomic rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)
