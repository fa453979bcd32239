"""sentscale.fetch: a pinned download, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from sentscale.errors import ConfigError, DataError
from sentscale.fetch import check_sha256, check_url, fetch, sha256_file

BODY = b"line one\nline two\n" * 5000  # larger than one read chunk (64 KiB)
PIN = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, list[str]]]:
    """(base URL, list of request paths) of a server for ``tmp_path/www`` (holds ``pool.txt``)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "pool.txt").write_bytes(BODY)
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_good_pin_writes_the_file(server, tmp_path):
    base, requests = server
    dest = tmp_path / "out" / "pool.txt"
    assert fetch(f"{base}/pool.txt", dest, PIN) == dest
    assert dest.read_bytes() == BODY
    assert sha256_file(dest) == PIN
    assert _leftovers(dest.parent) == ["pool.txt"]  # no temporary file left beside it
    assert requests == ["/pool.txt"]


def test_a_file_that_already_matches_is_kept_without_a_request(server, tmp_path):
    base, requests = server
    dest = tmp_path / "pool.txt"
    dest.write_bytes(BODY)
    fetch(f"{base}/pool.txt", dest, PIN)
    assert requests == []
    assert dest.read_bytes() == BODY


def test_a_bad_pin_is_an_error_and_leaves_nothing(server, tmp_path):
    base, _ = server
    dest = tmp_path / "out" / "pool.txt"
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        fetch(f"{base}/pool.txt", dest, wrong)
    message = str(err.value)
    assert f"{base}/pool.txt" in message and PIN in message and wrong in message
    assert "nothing was written" in message
    assert _leftovers(dest.parent) == []


def test_a_bad_pin_does_not_replace_an_existing_file(server, tmp_path):
    """A stale file with the wrong content is refetched; a failed refetch keeps it as it was
    (the selection job's own pin check refuses it)."""
    base, _ = server
    dest = tmp_path / "pool.txt"
    dest.write_bytes(b"stale")
    with pytest.raises(DataError):
        fetch(f"{base}/pool.txt", dest, "1" * 64)
    assert dest.read_bytes() == b"stale"
    assert _leftovers(tmp_path) == ["pool.txt", "www"]


def test_http_404_names_the_url(server, tmp_path):
    base, _ = server
    dest = tmp_path / "out" / "missing.txt"
    with pytest.raises(DataError, match=rf"cannot fetch {base}/missing.txt: HTTP 404"):
        fetch(f"{base}/missing.txt", dest, PIN)
    assert _leftovers(dest.parent) == []


def test_an_unreachable_host_names_the_url(tmp_path):
    # a port nothing listens on: bind one, then close it
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pool.txt"
    with pytest.raises(DataError, match=rf"cannot fetch {url}: "):
        fetch(url, tmp_path / "pool.txt", PIN, timeout=5, retries=2, backoff=0)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "example.org/x", "http://", None]
)
def test_only_http_urls_are_fetched(url, tmp_path):
    with pytest.raises(ConfigError, match="expected an http\\(s\\) URL"):
        fetch(url, tmp_path / "x", PIN)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("value", ["abc", PIN.upper(), PIN + "0", 42, None])
def test_a_pin_is_64_lowercase_hex_digits(value):
    with pytest.raises(ConfigError, match="64 lowercase hex digits"):
        check_sha256(value, "pin")
    assert check_sha256(PIN) == PIN
    assert check_url("https://example.org/a.txt") == "https://example.org/a.txt"
