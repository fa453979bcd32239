"""sentscale.datasets and the download loop: SentEval's tar and the NLI CSV, served from
127.0.0.1 (a tar built here from the shared SentEval folder), with the failures a real
download meets: a dropped connection (resumed with Range), a corrupted byte, an HTML page,
a truncated archive, a 404, a full disk."""

from __future__ import annotations

import errno
import http.server
import io as _io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentscale import data, datasets, fetch
from sentscale.errors import DataError

#: The tasks the served archive holds (a subset keeps the tests quick); the fetch verifies
#: every manifest file it finds and requires the study's tasks to be complete.
TASKS = ("STSBenchmark", "STS16", "CR", "TREC")


def build_tar(data_dir: Path, tasks=TASKS, prefix="SentEval/data/", corrupt: str | None = None):
    """SentEval's files of ``tasks`` as a tar under ``prefix`` (one byte of ``corrupt`` flipped)."""
    buf = _io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in sorted({f for t in tasks for f in data.required_files(t)}):
            body = (data_dir / rel).read_bytes()
            if rel == corrupt:
                body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(body)
            tar.addfile(info, _io.BytesIO(body))
    return buf.getvalue()


class Server:
    """Serves ``routes`` {path: (bytes, content type)}; ``drop_once`` paths close the
    connection halfway through their first full GET. Records (path, Range header)."""

    def __init__(self, routes, drop_once=()):
        self.routes, self.drop_once, self.requests = routes, set(drop_once), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, ctype = server.routes[self.path]
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                self.send_response(206 if rng else 200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if not rng and self.path in server.drop_once:
                    server.drop_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def good_tar(data_dir) -> bytes:
    return build_tar(data_dir)


@pytest.fixture
def serve(good_tar) -> Iterator:
    servers = []

    def start(routes=None, drop_once=()):
        s = Server(routes or {"/senteval.tar": (good_tar, "application/x-tar")}, drop_once)
        servers.append(s.__enter__())
        return s

    yield start
    for s in servers:
        s.__exit__()


def _fetch(url, target, tasks=TASKS):
    log = _io.StringIO()
    stamp = datasets.fetch_senteval(url, target, tasks, log=log, backoff=0)
    return stamp, log.getvalue()


def test_the_shipped_manifest_is_the_shared_manifest_of_every_file_the_tasks_read(data_dir):
    shipped = datasets.manifest()
    needed = {f for t in data.ALL_TASKS for f in data.required_files(t)}
    assert set(shipped) == needed
    shared = {}
    for line in (data_dir / "MANIFEST.tsv").read_text().splitlines()[1:]:
        path, _lines, size, sha256, *_ = line.split("\t")
        shared[path] = (int(size), sha256)
    assert all(shipped[p] == shared[p] for p in shipped)
    assert set(datasets.SPLIT_ITEMS) == set(data.ALL_TASKS)


def test_the_shared_copy_passes_the_full_check(data_dir):
    report = datasets.verify_senteval(data_dir, data.ALL_TASKS)
    assert report["files_checked"] == len(datasets.manifest())
    assert report["tasks"]["SST2"] == 67349 + 872 + 1821


@pytest.mark.parametrize("prefix", ["SentEval/data/", "data/", ""])
def test_fetch_finds_downstream_under_any_prefix(serve, tmp_path, prefix, data_dir):
    s = serve({"/s.tar": (build_tar(data_dir, prefix=prefix), "application/x-tar")})
    target = tmp_path / "res" / "senteval"
    stamp, log = _fetch(f"{s.base}/s.tar", target)
    assert (target / "downstream" / "CR" / "custrev.pos").is_file()
    assert json.loads((target / datasets.STAMP).read_text()) == stamp
    assert stamp["tasks"]["STSBenchmark"] == 5749 + 1500 + 1379
    assert sorted(p.name for p in target.parent.iterdir()) == ["senteval"]  # no tar, no temp
    assert f"{s.base}/s.tar -> {target}" in log


def test_a_dropped_connection_resumes_with_range(serve, tmp_path, good_tar):
    s = serve(drop_once={"/senteval.tar"})
    target = tmp_path / "senteval"
    _fetch(f"{s.base}/senteval.tar", target)
    assert s.requests[0] == ("/senteval.tar", None)
    assert s.requests[1] == ("/senteval.tar", f"bytes={len(good_tar) // 2}-")
    assert datasets.verify_senteval(target, TASKS)["files_checked"] > 0


def test_a_corrupted_byte_names_the_file_and_leaves_no_folder(serve, tmp_path, data_dir):
    bad = "downstream/TREC/TREC_10.label"
    s = serve({"/s.tar": (build_tar(data_dir, corrupt=bad), "application/x-tar")})
    target = tmp_path / "senteval"
    with pytest.raises(DataError) as err:
        _fetch(f"{s.base}/s.tar", target)
    expected = datasets.manifest()[bad][1]
    assert f"{bad}: sha256 mismatch: expected {expected}, got " in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no folder, no temp, no tar to reuse


def test_an_html_page_is_refused(serve, tmp_path):
    page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    s = serve({"/s.tar": (page, "text/html; charset=utf-8")})
    with pytest.raises(DataError, match="HTML page"):
        _fetch(f"{s.base}/s.tar", tmp_path / "senteval")
    s2 = serve({"/s.tar": (page, "application/octet-stream")})  # sniffed, not only the header
    with pytest.raises(DataError, match="HTML page"):
        _fetch(f"{s2.base}/s.tar", tmp_path / "senteval")
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_archive_is_refused(serve, tmp_path, good_tar):
    s = serve({"/s.tar": (good_tar[: len(good_tar) // 2 + 3], "application/x-tar")})
    with pytest.raises(DataError, match="not a complete tar archive|not a tar archive"):
        _fetch(f"{s.base}/s.tar", tmp_path / "senteval")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_url_is_one_message_with_the_url(serve, tmp_path):
    s = serve()
    with pytest.raises(DataError, match=rf"cannot fetch {s.base}/nope.tar: HTTP 404"):
        _fetch(f"{s.base}/nope.tar", tmp_path / "senteval")
    assert [p for p, _ in s.requests] == ["/nope.tar"]  # a 404 is not retried


def test_no_network_names_the_url_and_the_data_dir_way_out(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/senteval.tar"
    with pytest.raises(DataError) as err:
        datasets.fetch_senteval(url, tmp_path / "senteval", TASKS, retries=2, backoff=0)
    assert f"cannot fetch {url}" in str(err.value) and "data_dir can point" in str(err.value)


def test_a_full_disk_is_one_message(serve, tmp_path, monkeypatch):
    def full(out, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "_write", full)
    s = serve()
    with pytest.raises(DataError, match="no space left on the device while writing"):
        _fetch(f"{s.base}/senteval.tar", tmp_path / "senteval")
    assert len(s.requests) == 1  # not retried


def test_a_file_url_works_for_mirrors(tmp_path, good_tar):
    mirror = tmp_path / "mirror" / "senteval.tar"
    mirror.parent.mkdir()
    mirror.write_bytes(good_tar)
    target = tmp_path / "data" / "senteval"
    stamp, _ = _fetch(mirror.as_uri(), target)
    assert stamp["url"] == mirror.as_uri() and (target / "downstream").is_dir()


def test_nli_rows_are_checked_and_the_sha256_logged(tmp_path):
    body = b"sent0,sent1,hard_neg\n" + b'a,b,"c, d"\n' * 3
    s = Server({"/nli.csv": (body, "text/csv")})
    with s:
        log = _io.StringIO()
        record = datasets.fetch_nli(f"{s.base}/nli.csv", tmp_path / "nli.csv", rows=3, log=log)
        assert (tmp_path / "nli.csv").read_bytes() == body
        sha = fetch.sha256_file(tmp_path / "nli.csv")
        assert record["rows"] == 3 and record["sha256"] == sha
        assert f"sha256 {sha}: pin it with sources.nli.sha256" in log.getvalue()
        with pytest.raises(DataError, match="3 triplets, expected 275601"):
            datasets.fetch_nli(f"{s.base}/nli.csv", tmp_path / "other.csv")
        with pytest.raises(DataError, match="does not match the pin"):
            datasets.fetch_nli(f"{s.base}/nli.csv", tmp_path / "x.csv", rows=3, sha256="0" * 64)
    assert not (tmp_path / "other.csv").exists() and not (tmp_path / "x.csv").exists()
