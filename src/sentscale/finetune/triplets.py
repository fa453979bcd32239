"""NLI triplets (anchor, entailment, hard negative) from SimCSE's ``nli_for_simcse.csv``."""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from ..errors import DataError

#: Columns of SimCSE's ``nli_for_simcse.csv`` (anchor, entailment, contradiction).
TRIPLET_COLUMNS = ("sent0", "sent1", "hard_neg")


@dataclass(frozen=True)
class Triplets:
    """(anchor, positive, hard negative) sentences read from one CSV file."""

    anchor: list[str]
    positive: list[str]
    negative: list[str]
    path: str
    sha256: str

    def __len__(self) -> int:
        return len(self.anchor)


def _shown(row: Sequence[str]) -> str:
    text = ",".join(row)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def load_triplets(path: str | os.PathLike) -> Triplets:
    """Read an NLI triplet CSV (a header naming ``sent0,sent1,hard_neg``, in any order; other
    columns are ignored). A missing file, a bad header, a row with the wrong number of fields
    or an empty sentence is one :class:`DataError` naming the file, line and expectation."""
    path = Path(path)
    expected = ",".join(TRIPLET_COLUMNS)
    if not path.is_file():
        raise DataError(
            f"{path}: NLI triplet file not found (a CSV with columns {expected}, e.g. SimCSE's "
            "nli_for_simcse.csv; set finetune.data)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: expected UTF-8 text ({err.reason})") from None
    reader = csv.reader(StringIO(text, newline=""))  # quoted fields may span lines
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header line {expected}")
    header = [h.strip() for h in header]
    missing = [c for c in TRIPLET_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}, line 1: expected a header with columns {expected}; found "
            f"{_shown(header)} (missing {missing})"
        )
    index = [header.index(c) for c in TRIPLET_COLUMNS]
    columns: tuple[list[str], list[str], list[str]] = ([], [], [])
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: expected {len(header)} comma-separated fields "
                f"({','.join(header)}); found {len(row)}: {_shown(row)}"
            )
        for column, (name, i) in zip(
            columns, zip(TRIPLET_COLUMNS, index, strict=True), strict=True
        ):
            value = " ".join(row[i].split())
            if not value:
                raise DataError(
                    f"{path}, line {line}: expected a sentence in column {name!r}; found it empty"
                )
            column.append(value)
    if not columns[0]:
        raise DataError(f"{path}: no triplets after the header; expected rows of {expected}")
    return Triplets(*columns, path=str(path), sha256=hashlib.sha256(raw).hexdigest())
