"""What a running job reports about itself: peak memory and the versions it ran with.

The lowest layer (no sentscale imports): every module may use it.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterable
from importlib import metadata


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions ``names`` from package metadata (never
    imported), in the given order; absent ones are omitted."""
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out
