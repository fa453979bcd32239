"""Demonstration candidates: the :class:`Candidate` type, candidate TSV files, the shipped
dictionary candidates, and the pool a selection job scores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .. import io, prompts
from ..errors import DataError

DICTIONARY_FILE = "dictionary_candidates.tsv"


@dataclass(frozen=True)
class Candidate:
    """A candidate demonstration and where it came from (``dictionary``, ``file:<path>``,
    ``self-labelled:<labeller>``)."""

    sentence: str
    word: str
    source: str

    @property
    def demo(self) -> prompts.Demo:
        return prompts.Demo(self.sentence, self.word)


def _check_demo_text(sentence: str, word: str) -> str | None:
    """Why ``(sentence, word)`` cannot be a demonstration, or None."""
    if not sentence:
        return "an empty sentence"
    if not word:
        return "an empty word"
    if any(ch.isspace() for ch in word):
        return f"one word, got {word!r} (no spaces; join with '-' if need be)"
    if '"' in sentence or '"' in word:
        return "no double quote (it would close the prompt's quotes; use ' instead)"
    return None


def checked_candidate(
    sentence: str, word: str, source: str, where: str, lineno: int, shown: str
) -> Candidate:
    """A Candidate, or the DataError naming ``where`` and the line ``shown`` if the pair cannot
    be a demonstration (:func:`_check_demo_text`)."""
    problem = _check_demo_text(sentence, word)
    if problem:
        raise DataError(f"{where}, line {lineno}: expected {problem}; found {shown}")
    return Candidate(sentence, word, source)


def parse_candidates(text: str, where: str, source: str) -> list[Candidate]:
    """Candidates from TSV text: ``sentence<TAB>word`` per line.

    Blank lines and lines starting with ``#`` are skipped; a first data line
    ``sentence<TAB>word`` is a header. Any other line must have exactly two tab-separated,
    non-empty fields and a one-word word, else DataError naming ``where`` and the line.
    """
    out = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if not header_seen and [c.strip().lower() for c in cols] == ["sentence", "word"]:
            header_seen = True
            continue
        header_seen = True
        shown = repr(line if len(line) <= 80 else line[:77] + "...")
        if len(cols) != 2:
            raise DataError(
                f"{where}, line {lineno}: expected 2 tab-separated columns (sentence, word), "
                f"got {len(cols)}; found {shown}"
            )
        out.append(
            checked_candidate(cols[0].strip(), cols[1].strip(), source, where, lineno, shown)
        )
    if not out:
        raise DataError(f"{where}: no candidates (expected lines 'sentence<TAB>word')")
    return out


def read_candidates(path: str | Path, source: str | None = None) -> list[Candidate]:
    """Candidates from a TSV file (see :func:`parse_candidates`); ``source`` defaults to
    ``file:<path>``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read candidate file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {lineno}: expected utf-8 text ({exc.reason})") from None
    return parse_candidates(text, str(path), source or f"file:{path}")


def write_candidates(
    path: str | Path, candidates: Iterable[Candidate], comments: Sequence[str] = ()
) -> Path:
    """Write a candidate TSV readable by :func:`read_candidates` (comments first)."""
    lines = [f"# {c}" for c in comments] + ["sentence\tword"]
    lines += [f"{c.sentence}\t{c.word}" for c in candidates]
    text = "\n".join(lines) + "\n"
    return io.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def dictionary_candidates() -> list[Candidate]:
    """The shipped dictionary-style candidates: a definition and its headword."""
    ref = resources.files("sentscale") / "resources" / DICTIONARY_FILE
    return parse_candidates(ref.read_text(encoding="utf-8"), DICTIONARY_FILE, "dictionary")


def pool_candidates(
    sources: Iterable[Sequence[Candidate]], max_candidates: int | None, seed: int
) -> tuple[list[Candidate], int]:
    """Concatenate sources, drop repeated (sentence, word) pairs (first kept), then cap with a
    seeded sample kept in pool order. Returns (candidates, size of the pool before the cap)."""
    seen: dict[tuple[str, str], Candidate] = {}
    for source in sources:
        for c in source:
            seen.setdefault((c.sentence, c.word), c)
    pool = list(seen.values())
    if not pool:
        raise DataError("no demonstration candidates: every source is empty")
    if max_candidates is None or len(pool) <= max_candidates:
        return pool, len(pool)
    keep = np.sort(np.random.default_rng(seed).choice(len(pool), max_candidates, replace=False))
    return [pool[i] for i in keep], len(pool)
