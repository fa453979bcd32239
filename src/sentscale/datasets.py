"""The public data the study downloads: SentEval's data folder and SimCSE's NLI triplets.

Both come from SimCSE's dataset repository on the Hugging Face hub, as the paper's code
downloads them (``princeton-nlp/datasets-for-simcse``):

* ``senteval.tar``: SentEval's ``data/`` folder. :func:`fetch_senteval` downloads it
  (:func:`sentscale.fetch.download`: resumed, retried, atomic), extracts it with tarfile's
  ``data`` filter (no absolute paths, links out of the tree or device files) into a temporary
  folder next to the target, finds the ``downstream/`` folder *whatever the archive's prefix*
  (``SentEval/data/downstream/...``, ``data/downstream/...`` or ``downstream/...``: we could not
  inspect the archive offline, so nothing depends on its top level), checks it
  (:func:`verify_senteval`) and only then renames it to the target with a stamp file
  (:data:`STAMP`) inside, so a half-extracted folder never looks complete.
* ``nli_for_simcse.csv``: ``sent0,sent1,hard_neg``, :data:`NLI_ROWS` triplets. Its sha256 is
  not pinned here (unknown offline): :func:`fetch_nli` checks header and row count and logs the
  sha256, which a config can pin (``sources.nli.sha256``).

:func:`verify_senteval` checks a data folder against the manifest this package ships
(``resources/senteval_manifest.tsv``: path, bytes, sha256 of every file the 14 tasks read) and
the loaders' exact item counts (:data:`SPLIT_ITEMS`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import IO

from . import data, fetch, io
from .errors import DataError

HUB = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main"
SENTEVAL_URL = f"{HUB}/senteval.tar"
NLI_URL = f"{HUB}/nli_for_simcse.csv"
#: Triplets (data rows, after the header) of SimCSE's nli_for_simcse.csv (SNLI + MNLI).
NLI_ROWS = 275_601
NLI_HEADER = ("sent0", "sent1", "hard_neg")
#: The file a fetched SentEval folder holds once verified: what was checked, from where.
STAMP = ".sentscale-fetched.json"
MANIFEST = "senteval_manifest.tsv"
#: Scored items per split as the loaders read SimCSE's data (tests/test_data.py checks them).
SPLIT_ITEMS: dict[str, dict[str, int]] = {
    "STS12": {
        "MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459, "surprise.OnWN": 750,
        "surprise.SMTnews": 399,
    },
    "STS13": {"FNWN": 189, "headlines": 750, "OnWN": 561},
    "STS14": {
        "deft-forum": 450, "deft-news": 300, "headlines": 750, "images": 750, "OnWN": 750,
        "tweet-news": 750,
    },
    "STS15": {
        "answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750,
        "images": 750,
    },
    "STS16": {
        "answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244,
        "question-question": 209,
    },
    "STSBenchmark": {"train": 5749, "dev": 1500, "test": 1379},
    "SICKRelatedness": {"train": 4500, "dev": 500, "test": 4927},
    "MR": {"all": 10662},
    "CR": {"all": 3775},
    "SUBJ": {"all": 10000},
    "MPQA": {"all": 10606},
    "SST2": {"train": 67349, "dev": 872, "test": 1821},
    "TREC": {"train": 5452, "test": 500},
    "MRPC": {"train": 4076, "test": 1725},
    "STSBenchmark-dev": {"dev": 1500},
}  # fmt: skip
_NO_NETWORK = (
    "; data_dir can point at an existing copy of SentEval's data folder instead (no fetch "
    "then), or sources.senteval.url at a mirror (https:// or file://)"
)


def manifest() -> dict[str, tuple[int, str]]:
    """{path under the data folder: (bytes, sha256)} of every file the 14 tasks read."""
    text = resources.files("sentscale").joinpath("resources", MANIFEST).read_text("utf-8")
    rows = csv.DictReader(
        (ln for ln in text.splitlines() if not ln.startswith("#")), dialect="excel-tab"
    )
    return {row["path"]: (int(row["bytes"]), row["sha256"]) for row in rows}


def is_fetch_managed(target: str | os.PathLike, stamp: str | os.PathLike) -> bool:
    """True if the fetch rule provides ``target``: it is missing, or a fetch made it (its
    ``stamp`` exists). A folder or file the user put there is never fetched over."""
    return not os.path.exists(target) or os.path.exists(stamp)


def senteval_stamp(data_dir: str | os.PathLike) -> str:
    return os.path.join(data_dir, STAMP)


def nli_stamp(path: str | os.PathLike) -> str:
    head, tail = os.path.split(os.fspath(path))
    return os.path.join(head, f".{tail}.fetched.json")


# ----------------------------------------------------------------------------- SentEval


def verify_senteval(data_dir: str | os.PathLike, tasks: Iterable[str]) -> dict:
    """Check ``data_dir`` against the manifest; returns what was checked.

    Every manifest file present is checked (bytes, then sha256), the files of ``tasks`` must
    all be present, and each task of ``tasks`` (and any other task whose files are all there)
    must load with exactly :data:`SPLIT_ITEMS` items. One DataError lists every problem.
    """
    root = Path(data_dir)
    tasks = tuple(dict.fromkeys(tasks))
    data.check_data_dir(root, tasks)  # unknown tasks, missing files: one message
    problems, checked = [], []
    for rel, (size, sha256) in manifest().items():
        path = root / rel
        if not path.is_file():
            continue
        got_size = path.stat().st_size
        if got_size != size:
            problems.append(f"{rel}: {got_size} bytes, expected {size} (truncated or changed?)")
            continue
        got = fetch.sha256_file(path)
        if got != sha256:
            problems.append(f"{rel}: sha256 mismatch: expected {sha256}, got {got}")
            continue
        checked.append(rel)
    complete = [
        t for t in data.ALL_TASKS if all((root / f).is_file() for f in data.required_files(t))
    ]
    items = {}
    if not problems:
        for task in complete:
            got = {name: len(split) for name, split in data.load_task(task, root).splits.items()}
            if got != SPLIT_ITEMS[task]:
                problems.append(f"{task}: items per split {got}, expected {SPLIT_ITEMS[task]}")
            items[task] = sum(got.values())
    if problems:
        raise DataError(
            f"SentEval data in {root} failed its check against the manifest "
            f"({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        )
    return {"files_checked": len(checked), "tasks": items}


def find_data_root(folder: Path) -> Path:
    """The folder holding ``downstream/`` inside an extracted archive (the shallowest one)."""
    found = sorted(
        (p for p in folder.rglob("downstream") if p.is_dir()), key=lambda p: len(p.parts)
    )
    if not found:
        raise DataError(
            "the archive has no downstream/ folder: expected SentEval's data folder "
            "(downstream/<TASK>/... under any prefix)"
        )
    return found[0].parent


def _extract(archive: Path, into: Path, url: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths, links out, devices
    except OSError as err:
        if fetch.is_disk_full(err):
            raise fetch.disk_full(err, into) from None
        raise DataError(f"cannot extract {archive} (from {url}): {err}") from None
    except (tarfile.TarError, EOFError, ValueError) as err:
        raise DataError(
            f"{url}: not a complete tar archive ({type(err).__name__}: {err}); truncated "
            "download or wrong file? It was deleted: rerun to download it again"
        ) from None


def fetch_senteval(
    url: str,
    data_dir: str | os.PathLike,
    tasks: Iterable[str],
    *,
    log: IO[str] | None = None,
    **download_options,
) -> dict:
    """Download SentEval's data from ``url`` into ``data_dir``, checked; returns the stamp.

    ``data_dir`` appears only once complete and verified (with :data:`STAMP` inside). The tar
    is kept beside it while the run is unfinished (a rerun extracts it again without
    downloading) and deleted once the folder is in place.
    """
    target = Path(data_dir)
    tasks = tuple(tasks)
    archive = target.with_name(f".{target.name}.tar")

    def is_tar(part: Path) -> None:
        with open(part, "rb") as fh:
            head = fh.read(512)
        if fetch.looks_like_html(head):
            raise DataError(
                f"{url} sent an HTML page instead of a tar archive: a login, consent or error "
                "page? Check the URL in a browser, or set sources.senteval.url to a mirror"
            )
        if not tarfile.is_tarfile(part):
            raise DataError(f"{url}: not a tar archive (truncated download or wrong file?)")

    if not archive.is_file():
        fetch.download(
            url, archive, check=is_tar, progress=log, hint=_NO_NETWORK, **download_options
        )
    elif log is not None:
        log.write(f"reusing {archive} from an earlier run\n")
    try:
        scratch = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        )
    except OSError as err:
        raise (fetch.disk_full(err, target) if fetch.is_disk_full(err) else err) from None
    try:
        try:
            _extract(archive, scratch, url)
            root = find_data_root(scratch)
            report = verify_senteval(root, tasks)
        except DataError:
            archive.unlink(missing_ok=True)  # a bad archive must not be reused by a rerun
            raise
        stamp = {"url": url, "archive_sha256": fetch.sha256_file(archive), **report}
        io.write_json(root / STAMP, stamp)
        # Snakemake creates the (empty) folder of the stamp output before the job, and a
        # refetch replaces an older fetched folder: either is set aside, then removed.
        aside = scratch.with_name(f"{scratch.name}.old")
        io.replace_dir(root, target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    archive.unlink(missing_ok=True)
    if log is not None:
        log.write(f"{url} -> {target}: {json.dumps(report, sort_keys=True)}\n")
    return stamp


# ----------------------------------------------------------------------------- NLI triplets


def count_nli_rows(path: str | os.PathLike) -> int:
    """Triplets in an NLI CSV (header sent0,sent1,hard_neg checked); DataError if malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header) != NLI_HEADER:
                raise DataError(f"{path}: header {header}, expected {','.join(NLI_HEADER)}")
            rows = 0
            for rows, row in enumerate(reader, start=1):  # noqa: B007 (the count is the point)
                if len(row) != 3:
                    raise DataError(
                        f"{path}, row {rows + 1}: {len(row)} columns, expected 3 (truncated file?)"
                    )
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not utf-8 text ({err.reason}): wrong file?") from None
    return rows


def fetch_nli(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    rows: int | None = NLI_ROWS,
    log: IO[str] | None = None,
    **download_options,
) -> dict:
    """Download the NLI triplet CSV to ``dest`` (checked, atomic); returns its record.

    With ``sha256`` the bytes must match it; without, the header and ``rows`` are checked and
    the sha256 is logged so a config can pin it (``sources.nli.sha256``).
    """
    found = {}

    def check(part: Path) -> None:
        with open(part, "rb") as fh:
            if fetch.looks_like_html(fh.read(512)):
                raise DataError(
                    f"{url} sent an HTML page instead of the CSV: a login, consent or error "
                    "page? Check the URL in a browser, or set sources.nli.url to a mirror"
                )
        got = count_nli_rows(part)
        if rows is not None and got != rows:
            raise DataError(f"{url}: {got} triplets, expected {rows} (truncated or another file?)")
        found.update(rows=got, bytes=part.stat().st_size, sha256=fetch.sha256_file(part))

    hint = "; finetune.data can point at an existing copy instead, or sources.nli.url at a mirror"
    fetch.download(
        url, dest, sha256=sha256, check=check, progress=log, hint=hint, **download_options
    )
    record = {"url": url, "pinned": sha256 is not None, **found}
    io.write_json(nli_stamp(dest), record)
    if log is not None:
        log.write(f"{url} -> {dest}: {found['rows']} triplets, {found['bytes']} bytes\n")
        if sha256 is None:
            log.write(f"sha256 {found['sha256']}: pin it with sources.nli.sha256 in the config\n")
    return record


# ----------------------------------------------------------------------------- content identity
# What the workflow's params record of the files a job reads (issue 16): a digest of their
# content, never their path. Snakemake compares params between runs, so editing a file reruns
# the jobs that read it, while moving data_dir or finetune.data (same bytes) reruns nothing.


def content_digest(sha256s: dict[str, str]) -> str:
    """One sha256 over {relative name: sha256 of the file} (names sorted)."""
    return hashlib.sha256(json.dumps(sha256s, sort_keys=True).encode("utf-8")).hexdigest()


def files_digest(rels: Iterable[str], data_dir: str | os.PathLike, *, fetched: bool) -> str | None:
    """The :func:`content_digest` of the files ``rels`` (paths under ``data_dir``).

    Files are hashed where they are (all of SentEval's 14 tasks: 19 MB, well under a second).
    A folder the fetch will provide but has not yet (``fetched``, files missing): the
    manifest's sha256s, which the fetch verifies, so the first run's params are the later
    runs' params. A folder you provide that lacks a file (dry runs need no data): None.
    """
    root, rels = Path(data_dir), tuple(rels)
    if all((root / rel).is_file() for rel in rels):
        return content_digest({rel: _sha256(root / rel) for rel in rels})
    if fetched:
        pinned = manifest()
        return content_digest({rel: pinned[rel][1] for rel in rels})
    return None


def task_digests(
    tasks: Iterable[str], data_dir: str | os.PathLike, *, fetched: bool
) -> dict[str, str | None]:
    """{task: :func:`files_digest` of the files it reads}."""
    return {
        task: files_digest(data.required_files(task), data_dir, fetched=fetched)
        for task in dict.fromkeys(tasks)
    }


def nli_digest(path: str | os.PathLike, *, fetched: bool, sha256: str | None) -> str | None:
    """The NLI triplets' identity: the sha256 of a file you provide; for a fetched file, its
    pin (``sources.nli.sha256``; None unpinned). A fetched file is then an input of the
    fine-tune job (rules/finetune.smk) whose mtime Snakemake compares: its bytes are unknown
    before the first fetch, so a digest of them would change params after it."""
    if fetched:
        return sha256
    return _sha256(Path(path)) if os.path.isfile(path) else None


def _sha256(path: Path) -> str:
    try:
        return fetch.sha256_file(path)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
