"""The data guard: selection reads only STS-B dev, self-labelling only STS-B train.

:func:`check_selection_files` refuses anything else before any file is read, so test data
cannot leak into the choice of a demonstration (nor into fine-tuning's checkpoint choice).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .. import data
from ..errors import DataError

#: The only task selection scores: STS-B dev (its TaskData holds only the dev split).
SELECTION_TASK = "STSBenchmark-dev"
#: Files (relative to the data folder) that each stage may read; nothing else.
SELECTION_FILES = data.required_files(SELECTION_TASK)
LABELLING_FILES = ("downstream/STS/STSBenchmark/sts-train.csv",)


def check_selection_files(files: Iterable[str | Path], data_dir: str | Path, allowed) -> None:
    """Refuse (DataError) any file outside ``allowed`` (paths relative to ``data_dir``)."""
    data_dir = Path(data_dir)
    allowed_paths = {(data_dir / rel).resolve() for rel in allowed}
    bad = [str(f) for f in files if Path(f).resolve() not in allowed_paths]
    if bad:
        raise DataError(
            f"demonstration selection may read only {list(allowed)} under {data_dir}; refusing "
            f"{bad} (test data must never inform the choice)"
        )


def load_dev(data_dir: str | Path, max_items: int | None, seed: int) -> data.TaskData:
    """STS-B dev as selection scores it (a seeded pair subsample if ``max_items``)."""
    from .. import evaluation

    check_selection_files(
        [Path(data_dir) / rel for rel in data.required_files(SELECTION_TASK)],
        data_dir,
        SELECTION_FILES,
    )
    task = evaluation.load_scored_task(SELECTION_TASK, data_dir, max_items=max_items, seed=seed)
    check_selection_files(task.files, data_dir, SELECTION_FILES)
    if set(task.splits) != {"dev"}:
        raise DataError(f"selection task has splits {list(task.splits)}; expected only 'dev'")
    return task


def stsb_train_sentences(data_dir: str | Path) -> list[str]:
    """Distinct STS-B train sentences (s1, s2 of each line, file order); reads only train."""
    (rel,) = LABELLING_FILES
    path = Path(data_dir) / rel
    check_selection_files([path], data_dir, LABELLING_FILES)
    train = data._SPECS["STSBenchmark"].load(path)  # the STS-B reader, on the train file alone
    return list(dict.fromkeys(train.texts()))
