"""The up-front data check (issue 16, items 12-13): a data folder that is a file, folders and
files that cannot be read, and UTF-8 byte-order marks, each one DataError before any job.

Permissions: root reads through ``chmod 000``, so the real-chmod tests skip as root; the same
cases also run with the kernel's answer simulated (``denied``), so CI as root still covers the
code. Corruption tests copy one task's files from the real data into tmp_path.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from sentscale import data
from sentscale.data import check_data_dir, load_task, required_files
from sentscale.errors import DataError

BOM = b"\xef\xbb\xbf"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(AS_ROOT, reason="root reads through chmod 000")


def _copy_task(data_dir: Path, dest: Path, task: str) -> Path:
    for rel in required_files(task):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, dest / rel)
    return dest


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    return str(info.value)


@pytest.fixture
def denied(monkeypatch):
    """Simulate ``chmod 000`` for root: ``denied(path)`` makes ``path`` unreadable and, if it
    is a folder, everything below it unreachable (EACCES), as the kernel does for a user."""
    locked: list[str] = []
    real_stat, real_open = os.stat, os.open

    def blocked(path, *, below_only: bool) -> bool:
        # Unnormalised, as the kernel resolves it: "folder/." lies below "folder".
        path = os.path.join(os.getcwd(), os.fsdecode(path))
        return any(
            path.startswith(lock + os.sep) or (not below_only and path == lock) for lock in locked
        )

    def fake_stat(path, *args, **kwargs):
        if not isinstance(path, int) and blocked(path, below_only=True):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_stat(path, *args, **kwargs)

    def fake_open(path, flags, *args, **kwargs):
        if blocked(path, below_only=False):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "open", fake_open)
    return lambda path: locked.append(str(Path(path).absolute()))


# ----------------------------------------------------------------------------- item 12


def test_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "senteval.tar"
    path.write_bytes(b"not a folder")
    message = _error(lambda: check_data_dir(path, ["MR"]))
    assert f"data folder {path} is a file, not a folder" in message
    assert "does not exist" not in message and "expected SentEval's data folder" in message


@pytest.mark.integration
def test_unreadable_data_folder_simulated(data_dir, tmp_path, denied):
    copy = _copy_task(data_dir, tmp_path / "senteval", "MR")
    denied(copy)
    message = _error(lambda: check_data_dir(copy, ["MR"]))
    assert f"cannot enter folder {copy} (permission denied" in message
    assert "chmod -R a+rX" in message and message.count("permission denied") == 1


@pytest.mark.integration
def test_unreadable_task_folder_simulated(data_dir, tmp_path, denied):
    copy = _copy_task(data_dir, tmp_path, "MR")
    _copy_task(data_dir, tmp_path, "CR")
    denied(copy / "downstream/MR")
    message = _error(lambda: check_data_dir(copy, ["MR", "CR"]))
    assert f"cannot enter folder {copy / 'downstream/MR'} (permission denied" in message
    assert "needed by MR)" in message and "custrev" not in message
    assert message.count("permission denied") == 1  # one line per folder, not per file


@pytest.mark.integration
def test_unreadable_file_simulated(data_dir, tmp_path, denied):
    copy = _copy_task(data_dir, tmp_path, "MR")
    neg = copy / "downstream/MR/rt-polarity.neg"
    denied(neg)
    message = _error(lambda: check_data_dir(copy, ["MR"]))
    assert f"cannot read {neg} (permission denied; needed by MR)" in message
    assert "rt-polarity.pos" not in message
    assert "rt-polarity.neg" in _error(lambda: load_task("MR", copy))


@needs_non_root
@pytest.mark.integration
def test_unreadable_data_folder_chmod(data_dir, tmp_path):
    copy = _copy_task(data_dir, tmp_path / "senteval", "MR")
    copy.chmod(0)
    try:
        message = _error(lambda: check_data_dir(copy, ["MR"]))
    finally:
        copy.chmod(0o755)
    assert f"cannot enter folder {copy} (permission denied" in message


@needs_non_root
@pytest.mark.integration
def test_unreadable_task_folder_and_file_chmod(data_dir, tmp_path):
    copy = _copy_task(data_dir, tmp_path, "MR")
    _copy_task(data_dir, tmp_path, "TREC")
    (copy / "downstream/MR").chmod(0)
    trec = copy / "downstream/TREC/TREC_10.label"
    trec.chmod(0)
    try:
        message = _error(lambda: check_data_dir(copy, ["MR", "TREC"]))
    finally:
        (copy / "downstream/MR").chmod(0o755)
        trec.chmod(0o644)
    assert f"cannot enter folder {copy / 'downstream/MR'} (permission denied" in message
    assert f"cannot read {trec} (permission denied; needed by TREC)" in message


@pytest.mark.integration
def test_a_folder_where_a_file_belongs(data_dir, tmp_path):
    copy = _copy_task(data_dir, tmp_path, "MR")
    pos = copy / "downstream/MR/rt-polarity.pos"
    pos.unlink()
    pos.mkdir()
    message = _error(lambda: check_data_dir(copy, ["MR"]))
    assert f"{pos} is a folder, expected a file (needed by MR)" in message


def test_the_study_reports_a_data_dir_that_is_a_file(tmp_path):
    """The workflow's path: Study.from_config (rules/common.smk) turns it into one message."""
    from sentscale.errors import ConfigError
    from sentscale.study import Study

    path = tmp_path / "senteval.tar"
    path.write_bytes(b"")
    config = {
        "data_dir": str(path),
        "models": ["smollm2-135m"],
        "prompts": {"eol": {}},
        "demos": {"none": {}},
        "tasks": ["MR"],
    }
    with pytest.raises(ConfigError) as info:
        Study.from_config(config)
    assert "data_dir: SentEval data check failed" in str(info.value)
    assert f"data folder {path} is a file, not a folder" in str(info.value)


def test_snakemake_fails_fast_on_a_data_dir_that_is_a_file(tmp_path):
    """A real run stops at DAG build, before any job, with the message and no traceback.
    (check_data is skipped in dry runs, so this is a real ``--cores 1`` run.)"""
    from conftest import TEST_STUDY_CONFIG, run_snakemake

    path = tmp_path / "senteval.tar"
    path.write_bytes(b"")
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = {"data_dir": str(path), "models_dir": str(tmp_path / "models")}
    proc = run_snakemake(
        workdir, "--cores", "1", configfile=TEST_STUDY_CONFIG, config=config, timeout=300
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"data folder {path} is a file, not a folder" in log
    assert "Traceback" not in log and "Job stats" not in log
    assert not (workdir / "results").exists()


# ----------------------------------------------------------------------------- item 13

#: (task, file that gets a BOM) for every format family but MRPC's
BOM_CASES = [
    ("STS12", "downstream/STS/STS12-en-test/STS.input.MSRpar.txt"),
    ("STS12", "downstream/STS/STS12-en-test/STS.gs.MSRpar.txt"),
    ("STSBenchmark", "downstream/STS/STSBenchmark/sts-test.csv"),
    ("SICKRelatedness", "downstream/SICK/SICK_train.txt"),
    ("CR", "downstream/CR/custrev.pos"),
    ("MR", "downstream/MR/rt-polarity.neg"),
    ("SST2", "downstream/SST/binary/sentiment-train"),
    ("TREC", "downstream/TREC/TREC_10.label"),
]


def _copy_with_bom(data_dir: Path, tmp_path: Path, task: str, rel: str) -> tuple[Path, Path]:
    """A copy of ``task``'s files whose ``rel`` starts with a BOM: (the copy, that file)."""
    copy = _copy_task(data_dir, tmp_path, task)
    path = copy / rel
    path.write_bytes(BOM + path.read_bytes())
    return copy, path


@pytest.mark.integration
@pytest.mark.parametrize(("task", "rel"), BOM_CASES, ids=[c[1].split("/")[-1] for c in BOM_CASES])
def test_bom_is_refused_with_the_fix(task, rel, data_dir, tmp_path):
    copy, path = _copy_with_bom(data_dir, tmp_path, task, rel)
    for call in (lambda: check_data_dir(copy, [task]), lambda: load_task(task, copy)):
        message = _error(call)
        assert f"{path} starts with a UTF-8 byte-order mark (BOM)" in message
        assert f"needed by {task}" in message
        assert "sed -i '1s/^\\xEF\\xBB\\xBF//'" in message and str(path) in message


@pytest.mark.integration
@pytest.mark.parametrize(("task", "rel"), BOM_CASES, ids=[c[1].split("/")[-1] for c in BOM_CASES])
def test_the_loaders_refuse_a_bom_too(task, rel, data_dir, tmp_path):
    """Called directly (no check_data_dir first), a loader refuses the same way."""
    copy, path = _copy_with_bom(data_dir, tmp_path, task, rel)
    spec = data._SPECS[task]
    split = next(s for s, files in spec.splits.items() if rel in files)
    message = _error(lambda: spec.load(*(copy / f for f in spec.splits[split])))
    assert f"{path} starts with a UTF-8 byte-order mark (BOM)" in message


@pytest.mark.integration
def test_mrpc_reads_the_same_with_or_without_its_bom(data_dir, tmp_path):
    """MRPC's published files start with a BOM (SentEval skips it with the header line)."""
    for rel in required_files("MRPC"):
        assert (data_dir / rel).read_bytes()[:3] == BOM
    check_data_dir(data_dir, ["MRPC"])
    copy = _copy_task(data_dir, tmp_path, "MRPC")
    for rel in required_files("MRPC"):
        (copy / rel).write_bytes((copy / rel).read_bytes()[3:])
    real, stripped = load_task("MRPC", data_dir), load_task("MRPC", copy)
    for name, split in real.splits.items():
        assert split.sent1 == stripped.splits[name].sent1
        assert split.labels.tolist() == stripped.splits[name].labels.tolist()


@pytest.mark.integration
def test_no_other_real_file_has_a_bom(data_dir):
    """The policy changes no real data: only MRPC's files carry a BOM."""
    with_bom = {
        rel
        for task in data.ALL_TASKS
        for rel in required_files(task)
        if (data_dir / rel).read_bytes()[:3] == BOM
    }
    assert with_bom == set(required_files("MRPC"))
