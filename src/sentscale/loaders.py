"""SentEval's file formats: the split containers and one loader per format.

Each loader reads one file format the way SentEval does (see :mod:`sentscale.data` for the
rules) and raises one :class:`DataError` naming the file, the 1-based line and what was
expected where SentEval would crash or silently misalign. :mod:`sentscale.data` maps tasks to
files and loaders.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentscale.errors import DataError

from .options import SENTEVAL_SEED

# SentEval's tgt2idx for TREC: class index = position in this tuple.
TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")

#: The UTF-8 byte-order mark. Only MRPC's published files start with one; a BOM anywhere else
#: means the file was re-saved (e.g. by an editor) and is refused (docs/data.md, "Encodings").
BOM = b"\xef\xbb\xbf"


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


def subsample(task: TaskData, max_items: int | None, seed: int = SENTEVAL_SEED) -> TaskData:
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


def bom_problem(path: Path, encoding: str, needed_by: str = "") -> str:
    """Why a BOM at the start of ``path`` (read as ``encoding``) is refused, and the fix.

    Refused rather than stripped: no published file but MRPC's has one, so such a file is not
    the published one, and SentEval itself would keep the BOM in the first sentence (utf-8: as
    an invisible U+FEFF; latin-1: as the three characters ``\\xef\\xbb\\xbf`` decoded) or crash
    on it (a gold score, a TREC label): a study must not silently score other text.
    """
    kept = "'\u00ef\u00bb\u00bf'" if encoding == "latin-1" else "an invisible U+FEFF"
    return (
        f"{path} starts with a UTF-8 byte-order mark (BOM){needed_by}: SentEval reads this "
        f"file as {encoding}, so its first line would start with {kept}; expected the file "
        "as published, without a BOM (only MRPC's files have one); remove it with: "
        f"sed -i '1s/^\\xEF\\xBB\\xBF//' {shlex.quote(str(path))}"
    )


def _reads(encoding: str) -> Callable:
    """Tag a loader with the encoding SentEval reads its files with; ``"utf-8-sig"``: the
    published files start with a BOM (MRPC). data.check_data_dir reads the tag too."""

    def tag(load: Callable) -> Callable:
        load.encoding = encoding
        return load

    return tag


def _read_lines(path: Path, encoding: str, *, splitlines: bool = False) -> list[str]:
    """Decode ``path`` and split it into lines without their line endings.

    ``splitlines=True`` mirrors SentEval's ``read().splitlines()``; otherwise lines end at
    ``\\n``, ``\\r\\n`` or ``\\r`` as with SentEval's ``for line in io.open(...)``. A leading
    BOM is refused (:func:`bom_problem`) unless ``encoding`` is ``"utf-8-sig"``.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    if data.startswith(BOM) and encoding != "utf-8-sig":
        raise DataError(bom_problem(path, encoding))
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


@_reads("utf-8")
def _load_sts_subset(input_path: Path, gs_path: Path) -> SentencePairs:
    """STS12-16: ``STS.input.X.txt`` (s1<TAB>s2) aligned line by line with ``STS.gs.X.txt``."""
    inputs = _read_lines(input_path, _load_sts_subset.encoding, splitlines=True)
    golds = _read_lines(gs_path, _load_sts_subset.encoding, splitlines=True)
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


@_reads("utf-8")
def _load_stsb(path: Path) -> SentencePairs:
    """STS-B ``sts-*.csv``: genre, file, year, id, score, s1, s2 (tab-separated, extras ignored)."""
    sent1, sent2, scores = [], [], []
    for lineno, line in enumerate(_read_lines(path, _load_stsb.encoding), start=1):
        cols = _columns(
            path, lineno, line, 7, "score in column 5, sentences in 6 and 7", at_least=True
        )
        scores.append(_score(path, lineno, cols[4], line))
        sent1.append(_tokens(cols[5]))
        sent2.append(_tokens(cols[6]))
    return SentencePairs(sent1, sent2, np.array(scores))


@_reads("utf-8")
def _load_sick(path: Path) -> SentencePairs:
    """SICK: header, then pair_ID, sentence_A, sentence_B, relatedness_score[, ...]."""
    sent1, sent2, scores = [], [], []
    rows = _header(path, _read_lines(path, _load_sick.encoding), "pair_ID")
    for lineno, line in enumerate(rows, start=2):
        cols = _columns(
            path, lineno, line, 4, "pair_ID, sentence_A, sentence_B, score", at_least=True
        )
        scores.append(_score(path, lineno, cols[3], line))
        sent1.append(_tokens(cols[1]))
        sent2.append(_tokens(cols[2]))
    return SentencePairs(sent1, sent2, np.array(scores))


@_reads("latin-1")
def _load_binary(pos_path: Path, neg_path: Path) -> LabelledSentences:
    """MR/CR/SUBJ/MPQA: one sentence per line, positive file (label 1) then negative (label 0)."""
    pos = [_tokens(line) for line in _read_lines(pos_path, _load_binary.encoding, splitlines=True)]
    neg = [_tokens(line) for line in _read_lines(neg_path, _load_binary.encoding, splitlines=True)]
    return LabelledSentences(pos + neg, np.array([1] * len(pos) + [0] * len(neg)))


@_reads("utf-8")
def _load_sst2(path: Path) -> LabelledSentences:
    """SST binary: ``sentence<TAB>label`` with label 0 or 1."""
    sentences, labels = [], []
    for lineno, line in enumerate(_read_lines(path, _load_sst2.encoding), start=1):
        cols = _columns(path, lineno, line, 2, "sentence, label")
        labels.append(_label(path, lineno, cols[1], line))
        sentences.append(_tokens(cols[0]))
    return LabelledSentences(sentences, np.array(labels))


@_reads("latin-1")
def _load_trec(path: Path) -> LabelledSentences:
    """TREC: ``COARSE:fine question``; the label is the coarse class, the text the question."""
    sentences, labels = [], []
    for lineno, line in enumerate(_read_lines(path, _load_trec.encoding), start=1):
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


@_reads("utf-8-sig")
def _load_mrpc(path: Path) -> LabelledPairs:
    """MRPC: header, then Quality, #1 ID, #2 ID, #1 String, #2 String (file starts with a BOM)."""
    sent1, sent2, labels = [], [], []
    # utf-8-sig drops the BOM; SentEval reads utf-8 and the BOM lands in the skipped header.
    rows = _header(path, _read_lines(path, _load_mrpc.encoding), "Quality")
    for lineno, line in enumerate(rows, start=2):
        cols = _columns(path, lineno, line, 5, "Quality, #1 ID, #2 ID, #1 String, #2 String")
        labels.append(_label(path, lineno, cols[0], line))
        sent1.append(_tokens(cols[3]))
        sent2.append(_tokens(cols[4]))
    return LabelledPairs(sent1, sent2, np.array(labels))
