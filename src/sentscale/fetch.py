"""Downloads: resumable HTTP(S)/file GETs with retries, progress and atomic writes.

The workflow fetches the public files it does not ship (SentEval's data, SimCSE's NLI
triplets, the authors' demonstration candidates; ``workflow/rules/fetch.smk``) on a node with
network. :func:`download` is the one transfer loop behind them all:

* the body streams to ``.<name>.part`` next to the destination and is renamed into place only
  once complete and checked, so an interrupted transfer never looks like a finished file;
* a dropped connection resumes where it stopped (HTTP ``Range``), with exponential backoff
  between attempts; a server that ignores ``Range`` restarts the body from byte 0;
* errors a retry cannot fix stop at once with one message: HTTP 4xx, an HTML page where data
  was expected (a login, consent or error page), a checksum or size mismatch, a full disk;
* progress goes to a log stream (tqdm), never to the terminal of a workflow run.

:func:`fetch` is the pinned form (sha256 required, http(s) only) used for config-supplied URLs
of single small files. The standard library only (``urllib``) plus tqdm.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import ConfigError, DataError

#: Read and hash in pieces of this many bytes (files may be larger than this module's users).
CHUNK = 1 << 16
#: Pinned downloads from a config: plain web URLs only (``file:``/``ftp:`` would let a study
#: config read or reach anything).
SCHEMES = ("https", "http")
#: Data sources (``sources:`` in the config): ``file:`` too, for mirrors on a shared file
#: system and air-gapped clusters (the config already names local paths such as data_dir).
SOURCE_SCHEMES = ("https", "http", "file")
#: Attempts per download and the first pause between them (doubled after each failure).
RETRIES = 5
BACKOFF = 2.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
# What an HTML page starts with (after whitespace/BOM): a login or error page served as 200.
_HTML_START = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


def check_url(url: object, where: str = "url", schemes: tuple[str, ...] = SCHEMES) -> str:
    """``url`` if its scheme is one of ``schemes`` (and a web URL has a host); else ConfigError."""
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    ok = parsed is not None and parsed.scheme in schemes
    if ok and parsed.scheme != "file":
        ok = bool(parsed.netloc)
    if ok and parsed.scheme == "file":
        ok = bool(parsed.path)
    if not ok:
        names = " or ".join(f"{s}:" for s in schemes)
        shown = "an http(s) URL" if schemes == SCHEMES else f"a URL ({names})"
        raise ConfigError(f"{where}: expected {shown}, got {url!r}")
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


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a body) starts like an HTML/XML page."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_HTML_START)


def disk_full(err: OSError, path: Path) -> DataError:
    """The one message for a full disk (ENOSPC/EDQUOT) while writing ``path``."""
    return DataError(
        f"no space left on the device while writing {path} ({err.strerror}); free space "
        f"under {path.parent} (or point this path at a larger disk) and rerun: the transfer "
        "resumes where it stopped"
    )


def is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class _Retry(Exception):
    """A transfer failure another attempt may fix (dropped connection, 5xx, timeout)."""


def _write(out: IO[bytes], chunk: bytes) -> None:
    # One place for writes, so a test can stand in for a full disk.
    out.write(chunk)


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "sentscale"})
    if offset and not url.startswith("file:"):
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _attempt(url: str, part: Path, timeout: float, progress: IO[str] | None) -> None:
    """One GET of ``url`` appended to ``part`` (resumed from its size). Raises _Retry for
    failures worth another attempt, DataError for the others."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:  # before URLError: it is one
        if err.code == 416 and offset:  # the range starts at the end: restart cleanly
            part.unlink()
            raise _Retry(f"HTTP 416 resuming at byte {offset}") from None
        if err.code in _RETRYABLE_HTTP:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise DataError(f"cannot fetch {url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError) or url.startswith("file:"):
            raise DataError(f"cannot fetch {url}: {err.reason}") from None
        raise _Retry(str(err.reason)) from None
    except (http.client.HTTPException, OSError) as err:  # timeout, reset
        raise _Retry(str(err) or type(err).__name__) from None
    with response:
        status = getattr(response, "status", None)
        if offset and status != 206:  # the server ignored Range: the body starts at byte 0
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        ctype = (response.headers.get("Content-Type") or "").lower()
        if "text/html" in ctype and not url.startswith("file:"):
            raise DataError(
                f"{url} answered with an HTML page (Content-Type {ctype!r}) instead of the "
                "data: a login, consent or error page? Check the URL in a browser, or point "
                "sources.<name>.url at a mirror"
            )
        bar = None
        if progress is not None:
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                file=progress, mininterval=5, ascii=True, desc=part.name.removesuffix(".part"),
            )  # fmt: skip
        received = offset
        try:
            with open(part, "r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (http.client.HTTPException, OSError) as err:  # cut short, reset
                        raise _Retry(f"connection lost after {received} bytes: {err}") from None
                    if not chunk:
                        break
                    if received == 0 and looks_like_html(chunk[:512]):
                        raise DataError(
                            f"{url} sent an HTML page instead of the data: a login, consent "
                            "or error page? Check the URL in a browser, or point "
                            "sources.<name>.url at a mirror"
                        )
                    try:
                        _write(out, chunk)
                    except OSError as err:
                        if is_disk_full(err):
                            raise disk_full(err, part) from None
                        raise
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and received < total:
            raise _Retry(f"connection closed after {received} of {total} bytes")


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    check: Callable[[Path], None] | None = None,
    schemes: tuple[str, ...] = SOURCE_SCHEMES,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    timeout: float = 60.0,
    progress: IO[str] | None = None,
    hint: str = "",
) -> Path:
    """Download ``url`` to ``dest`` (atomically); returns ``dest``.

    The body goes to ``.<name>.part`` beside ``dest``; a dropped transfer resumes from there
    (within this call, ``retries`` attempts with ``backoff`` doubling, and in a later call).
    Once complete it must have ``size`` bytes and the ``sha256`` when given and pass
    ``check(part)`` (which raises DataError); only then is it renamed to ``dest``. A failed
    check deletes the part file, so the next call starts afresh. Every failure is one
    DataError naming the URL; ``hint`` is appended where the network could not be reached.
    """
    check_url(url, "url", schemes)
    if sha256 is not None:
        check_sha256(sha256)
    dest = Path(dest)
    part = dest.with_name(f".{dest.name}.part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full(err, dest) from None
        raise DataError(f"cannot create {dest.parent}: {err.strerror}") from None
    reasons = []
    for attempt in range(1, max(1, retries) + 1):
        try:
            _attempt(url, part, timeout, progress)
            break
        except _Retry as err:
            reasons.append(str(err))
            if progress is not None:
                progress.write(f"attempt {attempt}/{retries} of {url}: {err}\n")
            if attempt < retries:
                time.sleep(backoff * 2 ** (attempt - 1))
        except DataError:
            part.unlink(missing_ok=True)
            raise
    else:
        raise DataError(
            f"cannot fetch {url}: {reasons[-1]} (after {len(reasons)} attempt(s); no "
            f"network?){hint}"
        )
    try:
        got_size = part.stat().st_size
        if size is not None and got_size != size:
            raise DataError(
                f"{url}: {got_size} bytes, expected {size} (truncated or changed upstream); "
                f"nothing was written to {dest}"
            )
        if sha256 is not None:
            got = sha256_file(part)
            if got != sha256:
                raise DataError(
                    f"{url}: sha256 {got} ({got_size} bytes) does not match the pin "
                    f"{sha256}; nothing was written to {dest}"
                )
        if check is not None:
            check(part)
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dest


def fetch(
    url: str,
    dest: str | Path,
    sha256: str,
    *,
    timeout: float = 60.0,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    progress: IO[str] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` if its sha256 is ``sha256``; returns ``dest``.

    A ``dest`` that already matches the pin is kept (no network). Only http(s) URLs: the URL
    comes from a study config (``candidates.icl_examples``). On any failure (HTTP error,
    unreachable host, pin mismatch) nothing is left behind and DataError names the URL.
    """
    check_url(url)
    check_sha256(sha256)
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    return download(
        url, dest, sha256=sha256, schemes=SCHEMES, timeout=timeout, retries=retries,
        backoff=backoff, progress=progress,
    )  # fmt: skip
