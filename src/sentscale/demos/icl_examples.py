"""The authors' demonstration candidates: ``icl_examples.txt`` of kongds/scaling_sentemb.

The paper chooses each model's demonstration by scoring every line of that file on STS-B dev
(their ``evaluation.py``, lines 233-276). A line is a whole one-demo PromptEOL template with
``_`` for spaces and ``*sent_0*`` for the sentence::

    This_sentence_:_"A_man_is_smoking."_means_in_one_word:"Smoking".This_sentence_:_"*sent_0*"_means_in_one_word:"

Their batcher (lines 191-201) turns it into a prompt with
``template.replace('_', ' ').replace('*sep+*', '').replace('*cls*', '')``, then
``template.replace('*sent 0*', s).strip()`` for each (cleaned-up) sentence ``s``.
:func:`parse_icl_examples` applies the same replacements to the whole line and reads it back as
``(sentence, word)`` by matching it against our own ``eol`` prompt with one demonstration, so a
parsed line rendered by :func:`sentscale.prompts.build_prompt` is exactly the authors' prompt
(``tests/test_icl_examples.py`` checks every line of the pinned file when it is at hand).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from .. import prompts
from ..errors import DataError
from .candidates import Candidate, checked_candidate

#: The commit of kongds/scaling_sentemb whose ``icl_examples.txt`` the paper's search used.
AUTHORS_COMMIT = "8567aa083c1b3c77586670f91e7f78eb80694ad3"
AUTHORS_URL = (
    f"https://raw.githubusercontent.com/kongds/scaling_sentemb/{AUTHORS_COMMIT}/icl_examples.txt"
)
AUTHORS_SHA256 = "92c3a40dbd756c14abaf97266543843bb8bd1365ef21d020ccc48a40667d8777"
#: Lines (candidates) of the pinned file: sizes the selection job before the file is fetched.
AUTHORS_LINES = 300
#: The ``source`` of every candidate read from such a file (ranking tables, selected.json).
ICL_SOURCE = "icl-examples"
#: Where the workflow puts fetched files (relative to the working directory, like results/).
FETCH_DIR = "resources/data"
#: The authors' sentence slot once ``_`` is a space.
SENT_SLOT = "*sent 0*"
#: The shape of a line, for error messages.
LINE_SHAPE = (
    'This_sentence_:_"<sentence>"_means_in_one_word:"<word>".'
    'This_sentence_:_"*sent_0*"_means_in_one_word:"'
)
#: The prompt variant whose one-demo prompt a line must be.
VARIANT = "eol"


def fetched_path(sha256: str) -> str:
    """Where the workflow's ``fetch_icl_examples`` rule puts the file pinned by ``sha256``:
    named by the pin, so a new pin is a new file and never a stale one."""
    return f"{FETCH_DIR}/icl_examples-{sha256[:12]}.txt"


def expand_line(line: str) -> str:
    """An authors' template line as their batcher rewrites it (``evaluation.py`` 193-194):
    every ``_`` a space, ``*sep+*`` and ``*cls*`` removed. The final ``.strip()`` of their
    prompt is applied here too (it strips the same ends: the sentence sits inside quotes)."""
    return line.replace("_", " ").replace("*sep+*", "").replace("*cls*", "").strip()


@cache
def _line_pattern() -> re.Pattern[str]:
    """An expanded line, as our own one-demo ``eol`` prompt around the authors' slot.

    Built from :func:`sentscale.prompts.build_prompt` itself (markers in place of the demo),
    so the parser is the inverse of the renderer the embedder uses.
    """
    s_mark, w_mark = "\x00S\x00", "\x00W\x00"
    shape = prompts.build_prompt(
        SENT_SLOT, VARIANT, [prompts.Demo(s_mark, w_mark)], preprocess=False
    )
    pattern = re.escape(shape)
    pattern = pattern.replace(re.escape(s_mark), '(?P<sentence>[^"]*)', 1)
    pattern = pattern.replace(re.escape(w_mark), '(?P<word>[^"]*)', 1)
    return re.compile(pattern)


def parse_icl_examples(text: str, where: str, source: str = ICL_SOURCE) -> list[Candidate]:
    """Candidates from the text of an ``icl_examples.txt``: one template line each.

    Blank lines are skipped (the authors' file ends with a newline). Any other line must be a
    one-demo PromptEOL template (:data:`LINE_SHAPE`) whose sentence has no ``"`` and whose word
    is one word; else DataError naming ``where``, the line and the expected shape.
    """
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        shown = repr(line if len(line) <= 100 else line[:97] + "...")
        match = _line_pattern().fullmatch(expand_line(line))
        if match is None:
            raise DataError(
                f"{where}, line {lineno}: expected an authors' template line {LINE_SHAPE} "
                f"('_' for spaces); found {shown}"
            )
        out.append(
            checked_candidate(match["sentence"], match["word"], source, where, lineno, shown)
        )
    if not out:
        raise DataError(f"{where}: no candidates (expected lines {LINE_SHAPE})")
    return out


def read_icl_examples(
    path: str | Path, sha256: str | None = None, source: str = ICL_SOURCE
) -> list[Candidate]:
    """Candidates from an ``icl_examples.txt`` file (:func:`parse_icl_examples`).

    With ``sha256``, the file must have that hash (a fetched file edited since, or another
    file at its path, is refused before it is read as candidates).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the icl_examples file {path}: {exc.strerror}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and actual != sha256:
        raise DataError(
            f"{path}: sha256 {actual} does not match the pin {sha256} "
            "(changed since it was fetched? delete it and rerun to fetch it again)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {lineno}: expected utf-8 text ({exc.reason})") from None
    return parse_icl_examples(text, str(path), source)
