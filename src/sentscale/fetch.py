"""Download one file pinned by its sha256: HTTP(S) GET, hash check, atomic write.

The workflow fetches a few small public files it does not ship (the authors' demonstration
candidates, ``workflow/rules/fetch.smk``) on a node with network. The pin is the contract: bytes
whose sha256 differs from it are never written, so a moved branch, a proxy's error page or a
truncated transfer cannot become an input. One URL, one file, no retries; the standard
library only (``urllib``), so the module imports nothing above ``io``.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import io
from .errors import ConfigError, DataError

#: Read and hash in pieces of this many bytes (files may be larger than this module's users).
CHUNK = 1 << 16
#: Plain web downloads only: ``file:``/``ftp:`` would let a config read or reach anything.
SCHEMES = ("https", "http")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_url(url: object, where: str = "url") -> str:
    """``url`` if it is an http(s) URL with a host; else ConfigError naming ``where``."""
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in SCHEMES or not parsed.netloc:
        raise ConfigError(f"{where}: expected an http(s) URL, got {url!r}")
    return url


def check_sha256(value: object, where: str = "sha256") -> str:
    """``value`` if it is a sha256 in lowercase hex (64 digits); else ConfigError."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ConfigError(f"{where}: expected a sha256 as 64 lowercase hex digits, got {value!r}")
    return value


def sha256_file(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, dest: str | Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` if its sha256 is ``sha256``; returns ``dest``.

    A ``dest`` that already matches the pin is kept (no network). The body goes to a temporary
    file next to ``dest``, hashed as it streams, and is moved into place only when the hash
    matches; on any failure (HTTP error, unreachable host, timeout, pin mismatch) nothing is
    left behind and DataError names the URL.
    """
    check_url(url)
    check_sha256(sha256)
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest

    def download(tmp: Path) -> None:
        digest = hashlib.sha256()
        size = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except urllib.error.HTTPError as err:  # before URLError: it is one
            raise DataError(f"cannot fetch {url}: HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            raise DataError(f"cannot fetch {url}: {err.reason}") from None
        except (http.client.HTTPException, OSError) as err:  # timeout, reset, cut short
            raise DataError(f"cannot fetch {url}: {err}") from None
        if digest.hexdigest() != sha256:
            raise DataError(
                f"{url}: sha256 {digest.hexdigest()} ({size} bytes) does not match the pin "
                f"{sha256}; nothing was written to {dest}"
            )

    return io.atomic_write(dest, download)
