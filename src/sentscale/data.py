"""SentEval-exact loaders for the 14 evaluation tasks (plus the STS-B dev split).

The data folder is SentEval's ``data/`` folder (it holds ``downstream/<TASK>/...``), as produced
by SentEval's ``get_transfer_data.bash`` and shipped with SimCSE, whose SentEval fork PromptEOL
evaluates with. Each loader reads one file format the way SentEval does, so the sentences an
encoder sees and the items that are scored match SentEval's exactly:

* every sentence is SentEval's token list re-joined with single spaces
  (``" ".join(text.split())``); empty lines give ``""`` and are kept (CR, MPQA);
* files are decoded with SentEval's encodings (latin-1 for MR/CR/SUBJ/MPQA/TREC, utf-8 otherwise)
  and split into lines as SentEval does (``read().splitlines()`` for STS12-16 and the binary
  tasks, universal-newline iteration for the rest, so SICK's CRLF leaves no ``\\r``);
* a UTF-8 byte-order mark at the start of a file is refused, except in MRPC's files, which
  are published with one (docs/data.md, "Encodings and byte-order marks");
* STS12-16 pairs whose gold-score line is empty are unscored and dropped.

Items keep file order. SentEval sorts items by length before encoding only to reduce padding;
that changes no score, so it is left to the encoder.

Where SentEval would crash with an IndexError/ValueError (or silently misalign), these loaders
raise one :class:`DataError` naming the file, the 1-based line and what was expected.

This module is the task table (which files each task reads, with which loader), the data
checks and the data fingerprints; the containers and per-format loaders are
:mod:`sentscale.loaders` (re-exported here).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sentscale.errors import DataError
from sentscale.loaders import (
    BOM,
    TREC_CLASSES,
    LabelledPairs,
    LabelledSentences,
    SentencePairs,
    Split,
    TaskData,
    _load_binary,
    _load_mrpc,
    _load_sick,
    _load_sst2,
    _load_sts_subset,
    _load_stsb,
    _load_trec,
    bom_problem,
    subsample,
    take_rows,
)

__all__ = [
    "ALL_TASKS",
    "EXTRA_TASKS",
    "STS_SUBSETS",
    "STS_TASKS",
    "TRANSFER_TASKS",
    "TREC_CLASSES",
    "LabelledPairs",
    "LabelledSentences",
    "SentencePairs",
    "TaskData",
    "Split",
    "check_data_dir",
    "fingerprint",
    "load_task",
    "required_files",
    "subsample",
    "take_rows",
    "task_fingerprint",
]

STS_TASKS = (
    "STS12",
    "STS13",
    "STS14",
    "STS15",
    "STS16",
    "STSBenchmark",
    "SICKRelatedness",
)
TRANSFER_TASKS = ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")
EXTRA_TASKS = ("STSBenchmark-dev",)  # STS-B dev only: the pool for demonstration selection
ALL_TASKS = STS_TASKS + TRANSFER_TASKS + EXTRA_TASKS

# Subsets in SentEval's order (senteval/sts.py); STS13 has no SMT subset (licence).
STS_SUBSETS = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}


# ----------------------------------------------------------------------------- task table

_D = "downstream"
_STSB = f"{_D}/STS/STSBenchmark"


@dataclass(frozen=True)
class _Spec:
    kind: str
    splits: dict[str, tuple[str, ...]]  # split -> files (relative to data_dir) for `load`
    load: Callable[..., Split]


def _sts_year(task: str) -> _Spec:
    folder = f"{_D}/STS/{task}-en-test"
    splits = {
        s: (f"{folder}/STS.input.{s}.txt", f"{folder}/STS.gs.{s}.txt") for s in STS_SUBSETS[task]
    }
    return _Spec("sts", splits, _load_sts_subset)


_SPECS: dict[str, _Spec] = {
    **{task: _sts_year(task) for task in STS_SUBSETS},
    "STSBenchmark": _Spec(
        "sts", {s: (f"{_STSB}/sts-{s}.csv",) for s in ("train", "dev", "test")}, _load_stsb
    ),
    "SICKRelatedness": _Spec(
        "sts",
        {
            "train": (f"{_D}/SICK/SICK_train.txt",),
            "dev": (f"{_D}/SICK/SICK_trial.txt",),
            "test": (f"{_D}/SICK/SICK_test_annotated.txt",),
        },
        _load_sick,
    ),
    "MR": _Spec(
        "classification",
        {"all": (f"{_D}/MR/rt-polarity.pos", f"{_D}/MR/rt-polarity.neg")},
        _load_binary,
    ),
    "CR": _Spec(
        "classification", {"all": (f"{_D}/CR/custrev.pos", f"{_D}/CR/custrev.neg")}, _load_binary
    ),
    # SentEval passes the objective sentences as the positive class.
    "SUBJ": _Spec(
        "classification",
        {"all": (f"{_D}/SUBJ/subj.objective", f"{_D}/SUBJ/subj.subjective")},
        _load_binary,
    ),
    "MPQA": _Spec(
        "classification", {"all": (f"{_D}/MPQA/mpqa.pos", f"{_D}/MPQA/mpqa.neg")}, _load_binary
    ),
    "SST2": _Spec(
        "classification",
        {s: (f"{_D}/SST/binary/sentiment-{s}",) for s in ("train", "dev", "test")},
        _load_sst2,
    ),
    "TREC": _Spec(
        "classification",
        {"train": (f"{_D}/TREC/train_5500.label",), "test": (f"{_D}/TREC/TREC_10.label",)},
        _load_trec,
    ),
    "MRPC": _Spec(
        "pair-classification",
        {
            "train": (f"{_D}/MRPC/msr_paraphrase_train.txt",),
            "test": (f"{_D}/MRPC/msr_paraphrase_test.txt",),
        },
        _load_mrpc,
    ),
    "STSBenchmark-dev": _Spec("sts", {"dev": (f"{_STSB}/sts-dev.csv",)}, _load_stsb),
}
assert tuple(_SPECS) == ALL_TASKS


def _spec(task: str) -> _Spec:
    try:
        return _SPECS[task]
    except (KeyError, TypeError):
        raise DataError(f"unknown task {task!r}: expected one of {', '.join(ALL_TASKS)}") from None


# ----------------------------------------------------------------------------- public API


def required_files(task: str) -> tuple[str, ...]:
    """Files ``task`` reads, as POSIX paths relative to the data folder, in reading order."""
    return tuple(f for files in _spec(task).splits.values() for f in files)


def check_data_dir(data_dir: str | os.PathLike, tasks: Iterable[str] | str) -> None:
    """Raise one DataError listing every problem before anything is loaded: unknown tasks; a
    data folder that is missing, not a folder or cannot be entered; each file a task reads
    that is missing, not a file, unreadable, or starts with a BOM its format refuses.

    Files are opened for real (first 3 bytes), not checked with ``os.access``: root passes
    every access check, and a folder that only lacks read permission (``chmod 711``, usual
    for shared data) is still fine to read files from.
    """
    data_dir = Path(data_dir)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    problems = [
        f"unknown task {t!r} (expected one of {', '.join(ALL_TASKS)})"
        for t in dict.fromkeys(tasks)
        if t not in _SPECS
    ]
    known = [t for t in dict.fromkeys(tasks) if t in _SPECS]
    expected = "expected SentEval's data folder, the one holding downstream/<TASK>/"
    try:
        mode = os.stat(data_dir).st_mode
        what = None if stat.S_ISDIR(mode) else "is not a folder"
        if stat.S_ISREG(mode):
            what = "is a file, not a folder"
    except (FileNotFoundError, NotADirectoryError):
        what = "does not exist"
    except OSError as exc:  # e.g. a folder above it cannot be entered
        what = f"cannot be reached ({exc.strerror})"
    if what:
        problems.append(f"data folder {data_dir} {what} ({expected})")
    elif _has_downstream(data_dir):
        problems += _file_problems(data_dir, known)
    else:
        problems.append(f"data folder {data_dir} has no downstream/ folder ({expected})")
    if problems:
        raise DataError(
            f"SentEval data check failed ({len(problems)} problem(s)):\n  - "
            + "\n  - ".join(problems)
        )


def _stat(path: Path) -> os.stat_result | None:
    """``os.stat(path)``; None if it does not exist; PermissionError if a folder above it
    cannot be entered (the caller names that folder)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _has_downstream(data_dir: Path) -> bool:
    try:
        return _stat(data_dir / _D) is not None
    except PermissionError:
        return True  # data_dir cannot be entered: _file_problems names it


def _file_problems(data_dir: Path, tasks: Iterable[str]) -> list[str]:
    """One line per missing/unreadable/BOM file, one per folder that cannot be entered."""
    users: dict[str, list[str]] = {}  # file -> tasks that read it
    encoding: dict[str, str] = {}  # file -> the encoding its loader reads it with
    for task in tasks:
        for rel in required_files(task):
            users.setdefault(rel, []).append(task)
            encoding[rel] = _SPECS[task].load.encoding
    blocked: dict[Path, list[str]] = {}  # folder that cannot be entered -> tasks under it
    problems: list[str] = []
    for rel, tasks_of in users.items():
        needed = f"needed by {', '.join(tasks_of)}"
        path, folder = data_dir / rel, data_dir
        try:
            for part in Path(rel).parts:  # walk down to find the folder that blocks, if any
                result = _stat(folder / part)
                if result is None:
                    break
                folder = folder / part
        except PermissionError:
            blocked.setdefault(folder, [])
            blocked[folder] += [t for t in tasks_of if t not in blocked[folder]]
            continue
        if result is None:
            problems.append(f"missing file {path} ({needed})")
        elif stat.S_ISDIR(result.st_mode):
            problems.append(f"{path} is a folder, expected a file ({needed})")
        elif not stat.S_ISREG(result.st_mode):  # a FIFO would block the open below
            problems.append(f"{path} is not a regular file ({needed})")
        else:
            try:
                head = _head(path)
            except PermissionError:
                problems.append(
                    f"cannot read {path} (permission denied; {needed}): "
                    f"expected a file this user can read (chmod a+r {path})"
                )
                continue
            except OSError as exc:
                problems.append(f"cannot read {path} ({exc.strerror or exc}; {needed})")
                continue
            if head == BOM and encoding[rel] != "utf-8-sig":
                problems.append(bom_problem(path, encoding[rel], f" ({needed})"))
    problems += [
        f"cannot enter folder {folder} (permission denied; needed by {', '.join(tasks_of)}): "
        f"expected a folder this user can read and enter (chmod -R a+rX {folder})"
        for folder, tasks_of in blocked.items()
    ]
    return problems


def _head(path: Path) -> bytes:
    # os.open, not open(): an unbuffered read of just the bytes that can hold a BOM.
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, len(BOM))
    finally:
        os.close(fd)


def load_task(task: str, data_dir: str | os.PathLike) -> TaskData:
    """Load one task exactly as SentEval (SimCSE's fork) would present it to an encoder."""
    spec = _spec(task)
    check_data_dir(data_dir, (task,))
    data_dir = Path(data_dir)
    splits = {
        name: spec.load(*(data_dir / rel for rel in files)) for name, files in spec.splits.items()
    }
    return TaskData(
        name=task,
        kind=spec.kind,
        splits=splits,
        files=tuple(data_dir / rel for rel in required_files(task)),
    )


def fingerprint(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """SHA-256 over (name, size, bytes) of each file, in sorted name order.

    Names are POSIX paths relative to ``root`` when given, else bare file names, so the digest
    does not depend on where the data folder lives nor on the order ``paths`` come in.
    """
    entries = []
    for p in paths:
        p = Path(p)
        name = p.relative_to(root).as_posix() if root is not None else p.name
        entries.append((name, str(p), p))
    digest = hashlib.sha256()
    for name, _, p in sorted(entries):
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot fingerprint {p}: {exc.strerror}") from None
        encoded = name.encode("utf-8")
        # Length prefixes keep (name, bytes) boundaries unambiguous.
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def task_fingerprint(task: str, data_dir: str | os.PathLike) -> str:
    """Fingerprint of every file ``task`` reads, named relative to ``data_dir``."""
    check_data_dir(data_dir, (task,))
    data_dir = Path(data_dir)
    return fingerprint((data_dir / rel for rel in required_files(task)), root=data_dir)
