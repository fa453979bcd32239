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
* STS12-16 pairs whose gold-score line is empty are unscored and dropped.

Items keep file order. SentEval sorts items by length before encoding only to reduce padding;
that changes no score, so it is left to the encoder.

Where SentEval would crash with an IndexError/ValueError (or silently misalign), these loaders
raise one :class:`DataError` naming the file, the 1-based line and what was expected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentscale.errors import DataError

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
    "check_data_dir",
    "fingerprint",
    "load_task",
    "required_files",
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

# SentEval's tgt2idx for TREC: class index = position in this tuple.
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


# ----------------------------------------------------------------------------- containers


def _readonly(values, dtype) -> np.ndarray:
    array = np.array(values, dtype=dtype)  # always a copy, so freezing it touches no caller data
    array.setflags(write=False)
    return array


def _check_lengths(kind: str, **columns: Sequence) -> None:
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{kind}: columns differ in length: {lengths}")


# eq=False: generated __eq__ would compare numpy arrays and raise "truth value is ambiguous".
@dataclass(frozen=True, eq=False)
class SentencePairs:
    """One STS subset or split: sentence pairs with float64 gold similarity scores."""

    sent1: list[str]
    sent2: list[str]
    scores: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", _readonly(self.scores, np.float64))
        _check_lengths("SentencePairs", sent1=self.sent1, sent2=self.sent2, scores=self.scores)

    def __len__(self) -> int:
        return len(self.scores)

    def texts(self) -> Iterable[str]:
        """Sentences in reading order (s1, s2 of each line)."""
        for a, b in zip(self.sent1, self.sent2, strict=True):
            yield a
            yield b


@dataclass(frozen=True, eq=False)
class LabelledSentences:
    """Single sentences with int64 class labels 0..K-1 (MR, CR, SUBJ, MPQA, SST2, TREC)."""

    sentences: list[str]
    labels: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _readonly(self.labels, np.int64))
        _check_lengths("LabelledSentences", sentences=self.sentences, labels=self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def texts(self) -> Iterable[str]:
        return iter(self.sentences)


@dataclass(frozen=True, eq=False)
class LabelledPairs:
    """Sentence pairs with int64 class labels (MRPC: 1 = paraphrase)."""

    sent1: list[str]
    sent2: list[str]
    labels: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _readonly(self.labels, np.int64))
        _check_lengths("LabelledPairs", sent1=self.sent1, sent2=self.sent2, labels=self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def texts(self) -> Iterable[str]:
        for a, b in zip(self.sent1, self.sent2, strict=True):
            yield a
            yield b


Split = SentencePairs | LabelledSentences | LabelledPairs


@dataclass(frozen=True, eq=False)
class TaskData:
    """One task as SentEval sees it.

    ``splits`` keys: STS12-16 subset names in SentEval's order; "train"/"dev"/"test" for
    STSBenchmark and SICKRelatedness ("dev" is SICK_trial); only "dev" for STSBenchmark-dev;
    "all" for MR/CR/SUBJ/MPQA (cross-validated); "train"/"dev"/"test" for SST2;
    "train"/"test" for TREC and MRPC.
    """

    name: str
    kind: str  # "sts" | "classification" | "pair-classification"
    splits: dict[str, Split]
    files: tuple[Path, ...]

    def sentences(self) -> list[str]:
        """Unique sentences over all splits in first-seen order (splits in order, then lines)."""
        seen: dict[str, None] = {}
        for split in self.splits.values():
            for text in split.texts():
                seen.setdefault(text)
        return list(seen)

    def n_items(self) -> int:
        """Scored items summed over splits (pairs for STS/MRPC, sentences otherwise)."""
        return sum(len(split) for split in self.splits.values())


def take_rows(split: Split, rows: Sequence[int]) -> Split:
    """The same kind of split restricted to ``rows`` (in the given order)."""
    rows = list(rows)
    columns = {
        f.name: (value[rows] if isinstance(value, np.ndarray) else [value[i] for i in rows])
        for f in dataclasses.fields(split)
        for value in [getattr(split, f.name)]
    }
    return type(split)(**columns)


def subsample(task: TaskData, max_items: int | None, seed: int = 1111) -> TaskData:
    """At most ``max_items`` items per split, drawn with a fixed seed, kept in file order.

    For quick CPU studies only (the paper protocol uses every item). Classification splits are
    drawn stratified by label so every class keeps its share. ``None`` returns ``task``.
    """
    if max_items is None or all(len(split) <= max_items for split in task.splits.values()):
        return task
    from sklearn.model_selection import train_test_split

    splits = {}
    for name, split in task.splits.items():
        if len(split) <= max_items:
            splits[name] = split
            continue
        labels = getattr(split, "labels", None)
        rows, _ = train_test_split(
            np.arange(len(split)), train_size=max_items, random_state=seed, stratify=labels
        )
        splits[name] = take_rows(split, np.sort(rows))
    return dataclasses.replace(task, splits=splits)


# ----------------------------------------------------------------------------- reading


def _tokens(text: str) -> str:
    # SentEval hands the encoder text.split(); re-joining gives the text it would reconstruct.
    return " ".join(text.split())


def _shown(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def _bad_line(path: Path, lineno: int, expected: str, line: str) -> DataError:
    return DataError(f"{path}, line {lineno}: expected {expected}; found {_shown(line)}")


def _read_lines(path: Path, encoding: str, *, splitlines: bool = False) -> list[str]:
    """Decode ``path`` and split it into lines without their line endings.

    ``splitlines=True`` mirrors SentEval's ``read().splitlines()``; otherwise lines end at
    ``\\n``, ``\\r\\n`` or ``\\r`` as with SentEval's ``for line in io.open(...)``.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}, line {lineno}: expected {encoding} text; byte {data[exc.start]:#04x} "
            f"at offset {exc.start} cannot be decoded ({exc.reason})"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as io.open
    if splitlines:
        lines = text.splitlines()
    else:
        lines = text.split("\n")
        if lines[-1] == "":  # the final line ending does not start another line
            lines.pop()
    if not lines:
        raise DataError(f"{path} is empty: expected at least one line of data (truncated file?)")
    return lines


def _columns(
    path: Path, lineno: int, line: str, n: int, what: str, *, at_least: bool = False
) -> list[str]:
    # SentEval strips each line before splitting on tabs (loses trailing empty columns too).
    cols = line.strip().split("\t")
    if len(cols) < n or (len(cols) != n and not at_least):
        count = f"at least {n}" if at_least else str(n)
        raise _bad_line(
            path, lineno, f"{count} tab-separated columns ({what}), got {len(cols)}", line
        )
    return cols


def _score(path: Path, lineno: int, field: str, line: str) -> float:
    try:
        value = float(field)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _bad_line(path, lineno, f"a numeric similarity score, got {field!r}", line)
    return value


def _label(path: Path, lineno: int, field: str, line: str, allowed=(0, 1)) -> int:
    try:
        value = int(field)
    except ValueError:
        value = None
    if value not in allowed:
        expected = " or ".join(str(a) for a in allowed)
        raise _bad_line(path, lineno, f"label {expected}, got {field!r}", line)
    return value


def _header(path: Path, lines: list[str], first: str) -> list[str]:
    # SentEval skips line 1 unconditionally; checking it catches a file without its header.
    if lines[0].strip().split("\t")[0] != first:
        raise _bad_line(path, 1, f"a header line starting with {first!r}", lines[0])
    return lines[1:]


# ------------------------------------------------------------- one loader per format


def _load_sts_subset(input_path: Path, gs_path: Path) -> SentencePairs:
    """STS12-16: ``STS.input.X.txt`` (s1<TAB>s2) aligned line by line with ``STS.gs.X.txt``."""
    inputs = _read_lines(input_path, "utf-8", splitlines=True)
    golds = _read_lines(gs_path, "utf-8", splitlines=True)
    if len(inputs) != len(golds):
        short, long_ = (gs_path, input_path) if len(golds) < len(inputs) else (input_path, gs_path)
        raise DataError(
            f"{short} has {min(len(inputs), len(golds))} lines but {long_} has "
            f"{max(len(inputs), len(golds))}: line {min(len(inputs), len(golds)) + 1} of {long_} "
            "has no partner; expected one gold-score line per input pair (truncated file?)"
        )
    sent1, sent2, scores = [], [], []
    for lineno, (line, gold) in enumerate(zip(inputs, golds, strict=True), start=1):
        # SentEval splits the unstripped line on tabs and uses columns 1 and 2; in valid data
        # there are exactly two, so anything else is a damaged line.
        cols = line.split("\t")
        if len(cols) != 2:
            raise _bad_line(
                input_path, lineno, f"2 tab-separated sentences, got {len(cols)} columns", line
            )
        if gold == "":  # unscored pair (STS15/16): SentEval drops it
            continue
        scores.append(_score(gs_path, lineno, gold, gold))
        sent1.append(_tokens(cols[0]))
        sent2.append(_tokens(cols[1]))
    return SentencePairs(sent1, sent2, np.array(scores))


def _load_stsb(path: Path) -> SentencePairs:
    """STS-B ``sts-*.csv``: genre, file, year, id, score, s1, s2 (tab-separated, extras ignored)."""
    sent1, sent2, scores = [], [], []
    for lineno, line in enumerate(_read_lines(path, "utf-8"), start=1):
        cols = _columns(
            path, lineno, line, 7, "score in column 5, sentences in 6 and 7", at_least=True
        )
        scores.append(_score(path, lineno, cols[4], line))
        sent1.append(_tokens(cols[5]))
        sent2.append(_tokens(cols[6]))
    return SentencePairs(sent1, sent2, np.array(scores))


def _load_sick(path: Path) -> SentencePairs:
    """SICK: header, then pair_ID, sentence_A, sentence_B, relatedness_score[, ...]."""
    sent1, sent2, scores = [], [], []
    rows = _header(path, _read_lines(path, "utf-8"), "pair_ID")
    for lineno, line in enumerate(rows, start=2):
        cols = _columns(
            path, lineno, line, 4, "pair_ID, sentence_A, sentence_B, score", at_least=True
        )
        scores.append(_score(path, lineno, cols[3], line))
        sent1.append(_tokens(cols[1]))
        sent2.append(_tokens(cols[2]))
    return SentencePairs(sent1, sent2, np.array(scores))


def _load_binary(pos_path: Path, neg_path: Path) -> LabelledSentences:
    """MR/CR/SUBJ/MPQA: one sentence per line, positive file (label 1) then negative (label 0)."""
    pos = [_tokens(line) for line in _read_lines(pos_path, "latin-1", splitlines=True)]
    neg = [_tokens(line) for line in _read_lines(neg_path, "latin-1", splitlines=True)]
    return LabelledSentences(pos + neg, np.array([1] * len(pos) + [0] * len(neg)))


def _load_sst2(path: Path) -> LabelledSentences:
    """SST binary: ``sentence<TAB>label`` with label 0 or 1."""
    sentences, labels = [], []
    for lineno, line in enumerate(_read_lines(path, "utf-8"), start=1):
        cols = _columns(path, lineno, line, 2, "sentence, label")
        labels.append(_label(path, lineno, cols[1], line))
        sentences.append(_tokens(cols[0]))
    return LabelledSentences(sentences, np.array(labels))


def _load_trec(path: Path) -> LabelledSentences:
    """TREC: ``COARSE:fine question``; the label is the coarse class, the text the question."""
    sentences, labels = [], []
    for lineno, line in enumerate(_read_lines(path, "latin-1"), start=1):
        target, colon, rest = line.strip().partition(":")
        if not colon:
            raise _bad_line(path, lineno, "'COARSE:fine question'", line)
        if target not in TREC_CLASSES:
            raise _bad_line(
                path,
                lineno,
                f"a coarse label among {', '.join(TREC_CLASSES)}, got unknown label {target!r}",
                line,
            )
        fine_and_question = rest.split(" ", 1)  # SentEval drops the fine label up to 1st space
        if len(fine_and_question) != 2:
            raise _bad_line(path, lineno, "a question after the fine label", line)
        sentences.append(_tokens(fine_and_question[1]))
        labels.append(TREC_CLASSES.index(target))
    return LabelledSentences(sentences, np.array(labels))


def _load_mrpc(path: Path) -> LabelledPairs:
    """MRPC: header, then Quality, #1 ID, #2 ID, #1 String, #2 String (file starts with a BOM)."""
    sent1, sent2, labels = [], [], []
    # utf-8-sig drops the BOM; SentEval reads utf-8 and the BOM lands in the skipped header.
    rows = _header(path, _read_lines(path, "utf-8-sig"), "Quality")
    for lineno, line in enumerate(rows, start=2):
        cols = _columns(path, lineno, line, 5, "Quality, #1 ID, #2 ID, #1 String, #2 String")
        labels.append(_label(path, lineno, cols[0], line))
        sent1.append(_tokens(cols[3]))
        sent2.append(_tokens(cols[4]))
    return LabelledPairs(sent1, sent2, np.array(labels))


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
    """Raise one DataError listing every problem (unknown tasks, missing files) before loading."""
    data_dir = Path(data_dir)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    problems = [
        f"unknown task {t!r} (expected one of {', '.join(ALL_TASKS)})"
        for t in dict.fromkeys(tasks)
        if t not in _SPECS
    ]
    known = [t for t in dict.fromkeys(tasks) if t in _SPECS]
    if not data_dir.is_dir():
        problems.append(
            f"data folder {data_dir} does not exist (expected SentEval's data folder, "
            "the one holding downstream/<TASK>/)"
        )
    elif not (data_dir / _D).is_dir():
        problems.append(
            f"data folder {data_dir} has no downstream/ folder (expected SentEval's data folder, "
            "the one holding downstream/<TASK>/)"
        )
    else:
        missing: dict[str, list[str]] = {}
        for task in known:
            for rel in required_files(task):
                if not (data_dir / rel).is_file():
                    missing.setdefault(rel, []).append(task)
        problems += [
            f"missing file {data_dir / rel} (needed by {', '.join(users)})"
            for rel, users in missing.items()
        ]
    if problems:
        raise DataError(
            f"SentEval data check failed ({len(problems)} problem(s)):\n  - "
            + "\n  - ".join(problems)
        )


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
