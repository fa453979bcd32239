"""Tables from score files (the files are the source of truth; MLflow is only a view).

One row per cell (model, prompt, demo), one column per task, plus the STS and transfer
averages over the tasks present. Averages follow the paper's tables (SimCSE): every task score
rounded to two decimals, then the mean rounded to two decimals. Rows are sorted by model size,
then prompt and demonstration names.

Uncertainty: every STS score file keeps its scored pairs (``pairs``: system cosine and gold
score, see ``sentscale.sts``), so confidence intervals come from a percentile bootstrap over
pairs: ``resamples`` (>= 1000) resamples of the pairs with replacement, Spearman recomputed on
each. The resample indices depend only on (seed, task, number of pairs), so every cell scored
on the same pairs sees the *same* resamples: a difference between two cells is a paired
bootstrap (the "does scale help" table), and the CI of an average uses, for each resample, the
mean over tasks of that resample's scores. Transfer scores come from cross-validated
classifiers and get no bootstrap CI.

The paper's reported figures ship in ``resources/paper_results.csv`` (with their source); where
a reproduced cell has a paper counterpart, :func:`gap_table` shows ours, theirs and the delta.
"""

from __future__ import annotations

import csv
import logging
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from . import data, io, models

log = logging.getLogger(__name__)

CELL_KEYS = ["model", "prompt", "demo"]
CELL_COLUMNS = ["model", "params", "prompt", "demo"]
STS_AVG = "STS avg"
TRANSFER_AVG = "transfer avg"
#: Prompt name of sentence-transformers baselines (see ``sentscale.study.NATIVE_PROMPT``).
BASELINE_PROMPT = "native"
#: Resamples per bootstrap chunk (fixed, so results do not depend on memory settings).
_CHUNK = 250


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap settings (config block ``aggregate``)."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 1111

    def __post_init__(self) -> None:
        if self.resamples < 1000:
            raise ValueError(f"bootstrap needs >= 1000 resamples, got {self.resamples}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None) -> Bootstrap:
        block = dict(block or {})
        return cls(
            resamples=int(block.get("bootstrap_resamples", 1000)),
            confidence=float(block.get("confidence", 0.95)),
            seed=int(block.get("seed", 1111)),
        )


# ------------------------------------------------------------------------------ score files


def cell_of(result: Mapping[str, Any]) -> tuple[str, str, str]:
    cell = result["cell"]
    return (cell["model"], cell["prompt"], cell["demo"])


def read_results(paths: Iterable[str | Path]) -> dict[tuple[str, str, str], dict[str, dict]]:
    """``{(model, prompt, demo): {task: score file content}}``."""
    out: dict[tuple[str, str, str], dict[str, dict]] = {}
    for path in paths:
        result = io.read_json(path)
        out.setdefault(cell_of(result), {})[result["task"]] = result
    return out


def load_scores(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Long table: one row per (cell, task) with the reported score."""
    rows = []
    for path in paths:
        result = io.read_json(path)
        model, prompt, demo = cell_of(result)
        rows.append(
            {
                "model": model,
                "prompt": prompt,
                "demo": demo,
                "task": result["task"],
                "score": float(result["score"]),
            }
        )
    return pd.DataFrame(rows, columns=["model", "prompt", "demo", "task", "score"])


def paper_average(scores: Iterable[float]) -> float:
    """The paper's (SimCSE's) average: each score rounded to two decimals, mean rounded."""
    values = [round(float(s), 2) for s in scores]
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return round(sum(values) / len(values), 2)


def params_of(model: str) -> int:
    try:
        return models.get_spec(model).params
    except Exception:  # noqa: BLE001 - a model unknown to this registry still gets a row
        return 0


def _sort_cells(frame: pd.DataFrame) -> pd.DataFrame:
    frame.insert(1, "params", [params_of(m) for m in frame["model"]])
    frame = frame.sort_values(["params", "model", "prompt", "demo"], kind="stable")
    return frame.reset_index(drop=True)


def score_table(long: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """Wide table: a row per cell, task columns in ``tasks`` order, then the averages."""
    wide = long.pivot_table(index=CELL_KEYS, columns="task", values="score")
    wide = wide.reindex(columns=[t for t in tasks if t in wide.columns])
    sts = [t for t in wide.columns if t in data.STS_TASKS]
    transfer = [t for t in wide.columns if t in data.TRANSFER_TASKS]
    if sts:
        wide[STS_AVG] = [paper_average(row) for row in wide[sts].to_numpy()]
    if transfer:
        wide[TRANSFER_AVG] = [paper_average(row) for row in wide[transfer].to_numpy()]
    wide = wide.round(2).reset_index()
    wide.columns.name = None
    return _sort_cells(wide)


def format_params(params: int) -> str:
    """125000000 -> '125M', 6700000000 -> '6.7B' (the paper's labels)."""
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    return f"{params / 1e6:.3g}M"


# -------------------------------------------------------------------------------- bootstrap


def _spearman_rows(system: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair (ties: average ranks, as scipy's spearmanr)."""
    rs = rankdata(system, axis=1)
    rg = rankdata(gold, axis=1)
    rs -= rs.mean(axis=1, keepdims=True)
    rg -= rg.mean(axis=1, keepdims=True)
    denom = np.sqrt((rs * rs).sum(axis=1) * (rg * rg).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rs * rg).sum(axis=1) / denom  # a constant resample gives NaN


def resample_indices(n: int, boot: Bootstrap, key: str) -> Iterable[np.ndarray]:
    """Chunks of resample index rows, a pure function of (seed, key, n)."""
    rng = np.random.default_rng([boot.seed, zlib.crc32(key.encode("utf-8")), n])
    done = 0
    while done < boot.resamples:
        size = min(_CHUNK, boot.resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def bootstrap_spearman(
    system: Sequence[float], gold: Sequence[float], boot: Bootstrap, key: str
) -> np.ndarray:
    """Spearman ×100 of each of ``boot.resamples`` resamples of the pairs (seeded by ``key``,
    usually the task name, so equal pair sets share their resamples)."""
    system = np.asarray(system, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if system.shape != gold.shape or system.ndim != 1 or len(system) < 3:
        raise ValueError(f"need two equal 1-D arrays of >= 3 scores, got {system.shape}")
    chunks = [
        100.0 * _spearman_rows(system[idx], gold[idx])
        for idx in resample_indices(len(system), boot, key)
    ]
    return np.concatenate(chunks)


def percentile_ci(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (NaN resamples ignored)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return (float(low), float(high))


def compare_samples(delta: np.ndarray, confidence: float) -> dict[str, float]:
    """Paired-bootstrap summary of ``delta`` samples (B - A): CI and two-sided p-value."""
    delta = np.asarray(delta, dtype=np.float64)
    delta = delta[np.isfinite(delta)]
    low, high = percentile_ci(delta, confidence)
    b = len(delta)
    if not b:
        return {"delta_lo": math.nan, "delta_hi": math.nan, "p_value": math.nan}
    le = (np.count_nonzero(delta <= 0) + 1) / (b + 1)
    ge = (np.count_nonzero(delta >= 0) + 1) / (b + 1)
    return {"delta_lo": low, "delta_hi": high, "p_value": float(min(1.0, 2 * min(le, ge)))}


def paired_bootstrap(
    system_a: Sequence[float],
    system_b: Sequence[float],
    gold: Sequence[float],
    boot: Bootstrap,
    key: str = "paired",
) -> dict[str, float]:
    """Is system B's Spearman on these pairs different from A's? Both are scored on the same
    resamples; returns ``delta`` (B - A, ×100), its percentile CI and a two-sided p-value."""
    a = bootstrap_spearman(system_a, gold, boot, key)
    b = bootstrap_spearman(system_b, gold, boot, key)
    point = 100.0 * (
        _spearman_rows(np.asarray([system_b], float), np.asarray([gold], float))[0]
        - _spearman_rows(np.asarray([system_a], float), np.asarray([gold], float))[0]
    )
    return {"delta": float(point), **compare_samples(b - a, boot.confidence)}


def verdict(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "n/a"
    if lo > 0:
        return "larger is better"
    if hi < 0:
        return "smaller is better"
    return "no clear difference"


@dataclass
class CellBootstrap:
    """Bootstrap samples of one cell: per STS task, plus the gold scores they were drawn on."""

    samples: dict[str, np.ndarray]
    gold: dict[str, np.ndarray]
    scores: dict[str, float]

    def average_samples(self, tasks: Sequence[str]) -> np.ndarray | None:
        if not tasks or any(t not in self.samples for t in tasks):
            return None
        return np.mean([self.samples[t] for t in tasks], axis=0)


def bootstrap_cell(results: Mapping[str, Mapping], boot: Bootstrap) -> CellBootstrap:
    """Bootstrap every STS result of one cell that stored its pairs (older files did not)."""
    samples, gold, scores = {}, {}, {}
    for task, result in results.items():
        if task not in data.STS_TASKS:
            continue
        scores[task] = float(result["score"])
        pairs = result.get("pairs")
        if not pairs:
            continue
        system = np.asarray(pairs["system"], dtype=np.float64)
        gold[task] = np.asarray(pairs["gold"], dtype=np.float64)
        check = 100.0 * _spearman_rows(system[None, :], gold[task][None, :])[0]
        if not math.isclose(check, scores[task], abs_tol=1e-6):
            log.warning(
                "%s: stored pairs give %.6f, score file says %.6f", task, check, scores[task]
            )
        samples[task] = bootstrap_spearman(system, gold[task], boot, task)
    return CellBootstrap(samples, gold, scores)


def bootstrap_all(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]], boot: Bootstrap
) -> dict[tuple[str, str, str], CellBootstrap]:
    return {cell: bootstrap_cell(tasks, boot) for cell, tasks in results.items()}


# ----------------------------------------------------------------------------------- tables


def _sts_tasks(results, tasks: Sequence[str]) -> list[str]:
    present = {t for r in results.values() for t in r}
    return [t for t in tasks if t in data.STS_TASKS and t in present]


def _transfer_tasks(results, tasks: Sequence[str]) -> list[str]:
    present = {t for r in results.values() for t in r}
    return [t for t in tasks if t in data.TRANSFER_TASKS and t in present]


def sts_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    tasks: Sequence[str],
    boots: Mapping[tuple[str, str, str], CellBootstrap],
    boot: Bootstrap,
) -> pd.DataFrame:
    """STS per task and average, each with ``<col> lo`` / ``<col> hi`` bootstrap CI columns."""
    sts = _sts_tasks(results, tasks)
    rows = []
    for cell, by_task in results.items():
        row: dict[str, Any] = dict(zip(CELL_KEYS, cell, strict=True))
        cb = boots.get(cell)
        for task in sts:
            row[task] = float(by_task[task]["score"]) if task in by_task else math.nan
            lo, hi = (
                percentile_ci(cb.samples[task], boot.confidence)
                if cb and task in cb.samples
                else (math.nan, math.nan)
            )
            row[f"{task} lo"], row[f"{task} hi"] = lo, hi
        if sts:
            row[STS_AVG] = paper_average(row[t] for t in sts)
            avg = cb.average_samples(sts) if cb else None
            lo, hi = (
                percentile_ci(avg, boot.confidence) if avg is not None else (math.nan, math.nan)
            )
            row[f"{STS_AVG} lo"], row[f"{STS_AVG} hi"] = lo, hi
        rows.append(row)
    columns = CELL_KEYS + [
        c for t in sts + ([STS_AVG] if sts else []) for c in (t, f"{t} lo", f"{t} hi")
    ]
    return _sort_cells(pd.DataFrame(rows, columns=columns).round(2))


def transfer_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]], tasks: Sequence[str]
) -> pd.DataFrame:
    """Transfer accuracy per task (and MRPC F1 when scored), plus the average accuracy."""
    transfer = _transfer_tasks(results, tasks)
    rows = []
    for cell, by_task in results.items():
        row: dict[str, Any] = dict(zip(CELL_KEYS, cell, strict=True))
        for task in transfer:
            row[task] = float(by_task[task]["score"]) if task in by_task else math.nan
        if "MRPC" in transfer:
            row["MRPC F1"] = float(by_task.get("MRPC", {}).get("f1", math.nan))
        if transfer:
            row[TRANSFER_AVG] = paper_average(row[t] for t in transfer)
        rows.append(row)
    columns = CELL_KEYS + transfer + (["MRPC F1"] if "MRPC" in transfer else [])
    columns += [TRANSFER_AVG] if transfer else []
    return _sort_cells(pd.DataFrame(rows, columns=columns).round(2))


def scale_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    tasks: Sequence[str],
    boots: Mapping[tuple[str, str, str], CellBootstrap],
    boot: Bootstrap,
) -> pd.DataFrame:
    """Does scale help? For each prompt/demo choice, adjacent model sizes (LMs, not baselines)
    compared per STS task and on the STS average with a paired bootstrap on the same pairs."""
    sts = _sts_tasks(results, tasks)
    groups: dict[tuple[str, str], list[str]] = {}
    for model, prompt, demo in results:
        if prompt != BASELINE_PROMPT:
            groups.setdefault((prompt, demo), []).append(model)
    rows = []
    for (prompt, demo), names in sorted(groups.items()):
        names = sorted(names, key=lambda m: (params_of(m), m))
        for small, large in zip(names, names[1:], strict=False):
            a, b = boots[(small, prompt, demo)], boots[(large, prompt, demo)]
            paired_tasks = []
            for task in sts + ([STS_AVG] if len(sts) > 1 else []):
                row = {
                    "prompt": prompt,
                    "demo": demo,
                    "smaller": small,
                    "larger": large,
                    "params smaller": params_of(small),
                    "params larger": params_of(large),
                    "task": task,
                }
                if task == STS_AVG:
                    score_a = paper_average(a.scores.get(t, math.nan) for t in sts)
                    score_b = paper_average(b.scores.get(t, math.nan) for t in sts)
                    ok = len(paired_tasks) == len(sts)
                    delta = b.average_samples(sts) - a.average_samples(sts) if ok else None
                else:
                    score_a = a.scores.get(task, math.nan)
                    score_b = b.scores.get(task, math.nan)
                    ok = (
                        task in a.samples
                        and task in b.samples
                        and np.array_equal(a.gold[task], b.gold[task])
                    )
                    delta = b.samples[task] - a.samples[task] if ok else None
                    if ok:
                        paired_tasks.append(task)
                stats = (
                    compare_samples(delta, boot.confidence)
                    if delta is not None
                    else {"delta_lo": math.nan, "delta_hi": math.nan, "p_value": math.nan}
                )
                rows.append(
                    {
                        **row,
                        "score smaller": score_a,
                        "score larger": score_b,
                        "delta": score_b - score_a,
                        "delta lo": stats["delta_lo"],
                        "delta hi": stats["delta_hi"],
                        "p value": stats["p_value"],
                        "verdict": verdict(stats["delta_lo"], stats["delta_hi"])
                        if delta is not None
                        else "n/a (pairs not shared)",
                    }
                )
    columns = [
        "prompt", "demo", "smaller", "larger", "params smaller", "params larger", "task",
        "score smaller", "score larger", "delta", "delta lo", "delta hi", "p value", "verdict",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    rounded = [c for c in columns[7:12]]
    table[rounded] = table[rounded].astype(float).round(2)
    table["p value"] = table["p value"].astype(float).round(4)
    return table


# ---------------------------------------------------------------------------- paper results


def paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported figures (``resources/paper_results.csv``), one row per
    (setting, model), our task names as columns, with the source of every row."""
    if path is None:
        with resources.files("sentscale").joinpath("resources/paper_results.csv").open() as fh:
            return pd.read_csv(fh)
    return pd.read_csv(path)


def paper_setting(demo: str, demo_kinds: Mapping[str, str]) -> str | None:
    """The paper's setting a PromptEOL cell reproduces, or None. ``demo_kinds``: demo name ->
    kind (none / fixed / per_model / select / cse): zero-shot is PromptEOL, any demo
    PromptEOL+ICL, a fine-tuned cell (kind ``cse``, sentscale.finetune) PromptEOL+CSE."""
    kind = demo_kinds.get(demo)
    if kind is None:
        return None
    if kind == "cse":
        return "PromptEOL+CSE"
    return "PromptEOL" if kind == "none" else "PromptEOL+ICL"


#: The tasks behind the paper's averages: ours is comparable only when it has all of them.
AVERAGED = {
    STS_AVG: data.STS_TASKS,
    TRANSFER_AVG: data.TRANSFER_TASKS,
}


def gap_table(
    sts: pd.DataFrame,
    transfer: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    eol_prompts: Sequence[str],
    demo_kinds: Mapping[str, str],
    max_items: int | None = None,
) -> pd.DataFrame:
    """Ours vs the paper wherever a cell has a counterpart: one row per (cell, figure) with
    ``ours`` (and its CI), ``paper``, ``delta`` = ours - paper, whether the CI covers the
    paper's figure, and the paper's source. Averages are compared only when ours covers the
    paper's tasks (all seven STS or all seven transfer tasks). ``max_items`` flags subsampled
    studies (not comparable with the paper's full test sets)."""
    ours = sts.merge(transfer, on=CELL_COLUMNS, how="outer") if len(transfer) else sts
    figures = [c for c in paper.columns if c in data.STS_TASKS or c in (STS_AVG, TRANSFER_AVG)]
    rows = []
    for _, row in ours.iterrows():
        if row["prompt"] not in eol_prompts:
            continue
        setting = paper_setting(row["demo"], demo_kinds)
        if setting is None:
            continue
        match = paper[(paper["model"] == row["model"]) & (paper["setting"] == setting)]
        if match.empty:
            continue
        ref = match.iloc[0]
        for fig in figures:
            if fig not in row.index or pd.isna(row[fig]) or pd.isna(ref[fig]):
                continue
            if fig in AVERAGED and not all(
                t in row.index and pd.notna(row[t]) for t in AVERAGED[fig]
            ):
                continue  # our average covers fewer tasks than the paper's: not comparable
            lo, hi = row.get(f"{fig} lo", math.nan), row.get(f"{fig} hi", math.nan)
            covered = None if pd.isna(lo) or pd.isna(hi) else bool(lo <= ref[fig] <= hi)
            rows.append(
                {
                    "model": row["model"],
                    "params": row["params"],
                    "prompt": row["prompt"],
                    "demo": row["demo"],
                    "setting": setting,
                    "task": fig,
                    "ours": row[fig],
                    "ours lo": lo,
                    "ours hi": hi,
                    "paper": float(ref[fig]),
                    "delta": round(float(row[fig]) - float(ref[fig]), 2),
                    "paper in CI": covered,
                    "max_items": max_items,
                    "source": ref["source"],
                }
            )
    columns = [
        "model", "params", "prompt", "demo", "setting", "task", "ours", "ours lo", "ours hi",
        "paper", "delta", "paper in CI", "max_items", "source",
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    order = {t: i for i, t in enumerate([*data.STS_TASKS, STS_AVG, *data.TRANSFER_TASKS])}
    table["_order"] = table["task"].map(order)
    table = table.sort_values(["params", "model", "prompt", "demo", "_order"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


# -------------------------------------------------------------------------------------- cost


def read_benchmark(path: str | Path) -> dict[str, float]:
    """First row of a Snakemake ``benchmark:`` TSV (s, max_rss in MB, ...)."""
    with open(path, encoding="utf-8") as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _cell_from_path(path: str | Path, depth: int) -> tuple[str, str, str]:
    """``.../<model>/<prompt>/<demo>.ext`` (depth 0) or ``.../<model>/<prompt>/<demo>/x`` (1)."""
    parts = Path(path).parts
    if depth == 0:
        return (parts[-3], parts[-2], Path(parts[-1]).stem)
    return (parts[-4], parts[-3], parts[-2])


def cost_table(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]],
    *,
    embed_meta: Iterable[str | Path],
    embed_benchmarks: Iterable[str | Path],
    evaluate_benchmarks: Iterable[str | Path] = (),
) -> pd.DataFrame:
    """Cost per cell: embedding throughput, wall time and peak memory (Snakemake benchmark of
    the embed job), scoring wall time (transfer benchmarks + STS timings), next to the
    averages. Paths follow ``.../<model>/<prompt>/<demo>.(json|tsv)``."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}

    def row(cell):
        return rows.setdefault(cell, dict(zip(CELL_KEYS, cell, strict=True)))

    for path in embed_meta:
        meta = io.read_json(path)
        r = row(_cell_from_path(path, 0))
        r["n sentences"] = meta.get("n_sentences")
        r["sentences/s"] = (meta.get("timings") or {}).get("sentences_per_s")
        r["dtype"] = (meta.get("embed") or {}).get("dtype")
    for path in embed_benchmarks:
        bench = read_benchmark(path)
        r = row(_cell_from_path(path, 0))
        r["embed wall s"] = bench.get("s")
        r["embed peak MB"] = bench.get("max_rss")
    scoring: dict[tuple[str, str, str], float] = {}
    for path in evaluate_benchmarks:
        cell = _cell_from_path(path, 1)
        scoring[cell] = scoring.get(cell, 0.0) + read_benchmark(path).get("s", 0.0)
    for cell, by_task in results.items():
        r = row(cell)
        sts_s = sum(
            sum((res.get("timings") or {}).values())
            for t, res in by_task.items()
            if t in data.STS_TASKS
        )
        r["scoring wall s"] = scoring.get(cell, 0.0) + sts_s
        sts = [res["score"] for t, res in by_task.items() if t in data.STS_TASKS]
        transfer = [res["score"] for t, res in by_task.items() if t in data.TRANSFER_TASKS]
        r[STS_AVG] = paper_average(sts) if sts else math.nan
        r[TRANSFER_AVG] = paper_average(transfer) if transfer else math.nan
    for r in rows.values():
        r["total wall s"] = (r.get("embed wall s") or 0.0) + (r.get("scoring wall s") or 0.0)
    columns = CELL_KEYS + [
        "dtype", "n sentences", "sentences/s", "embed wall s", "embed peak MB",
        "scoring wall s", "total wall s", STS_AVG, TRANSFER_AVG,
    ]  # fmt: skip
    table = pd.DataFrame(list(rows.values()), columns=columns)
    return _sort_cells(table.round(2))


# ----------------------------------------------------------------------------------- output


def _ci_text(value: float, lo: float, hi: float) -> str:
    if pd.isna(value):
        return ""
    if pd.isna(lo) or pd.isna(hi):
        return f"{value:.2f}"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def with_ci_text(table: pd.DataFrame) -> pd.DataFrame:
    """Fold ``<col> lo`` / ``<col> hi`` into ``<col>`` as '71.09 [65.20, 76.00]' for display."""
    shown = table.copy()
    for col in [c for c in table.columns if f"{c} lo" in table.columns]:
        shown[col] = [
            _ci_text(v, lo, hi)
            for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"], strict=True)
        ]
        shown = shown.drop(columns=[f"{col} lo", f"{col} hi"])
    return shown


def _p_text(p: float) -> str:
    if pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    shown = with_ci_text(table)
    if "p value" in shown.columns:
        shown["p value"] = shown["p value"].map(_p_text)
    for col in ("params", "params smaller", "params larger"):
        if col in shown.columns:
            shown[col] = shown[col].map(format_params)
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return shown


def write_table(
    table: pd.DataFrame,
    *,
    csv: str | Path,
    markdown: str | Path | None = None,
    latex: str | Path | None = None,
    html: str | Path | None = None,
    caption: str = "",
) -> None:
    """CSV (numbers, CI columns separate) plus display formats with CIs folded in."""
    io.atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    shown = _display(table)
    if markdown is not None:
        text = (
            shown.to_markdown(index=False, floatfmt=".2f", disable_numparse=True)
            if len(shown)
            else "| " + " | ".join(shown.columns) + " |\n\n(no rows)"
        )
        io.atomic_write(markdown, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    if latex is not None:
        tex = shown.to_latex(index=False, float_format="%.2f", escape=True, na_rep="--")
        io.atomic_write(latex, lambda tmp: tmp.write_text(tex, encoding="utf-8"))
    if html is not None:
        body = shown.to_html(index=False, float_format="{:.2f}".format, na_rep="", border=0)
        page = _HTML.format(title=caption, body=body if len(shown) else "<p>(no rows)</p>")
        io.atomic_write(html, lambda tmp: tmp.write_text(page, encoding="utf-8"))


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; font-size: 13px; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f3f3f3; }}
</style></head>
<body><p>{title}</p>
{body}
</body></html>
"""


def write_score_tables(
    score_files: Iterable[str | Path],
    *,
    tasks: Sequence[str],
    csv: str | Path,
    markdown: str | Path,
    latex: str | Path,
    html: str | Path | None = None,
) -> pd.DataFrame:
    """The overview table (point estimates of every task, both averages)."""
    table = score_table(load_scores(score_files), tasks)
    write_table(
        table,
        csv=csv,
        markdown=markdown,
        latex=latex,
        html=html,
        caption="Scores (x100) per cell; STS: Spearman, transfer: accuracy",
    )
    return table


def write_all_tables(
    score_files: Sequence[str | Path],
    *,
    tasks: Sequence[str],
    out: Mapping[str, Mapping[str, str | Path]],
    boot: Bootstrap = Bootstrap(),
    eol_prompts: Sequence[str] = ("eol", "eol-paper-text"),
    demo_kinds: Mapping[str, str] | None = None,
    embed_meta: Iterable[str | Path] = (),
    embed_benchmarks: Iterable[str | Path] = (),
    evaluate_benchmarks: Iterable[str | Path] = (),
    paper_csv: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of the study. ``out``: table name (scores, sts, transfer, gap, scale, cost,
    paper) -> {csv, markdown, latex, html} paths; a name missing from ``out`` is not written."""
    results = read_results(score_files)
    boots = bootstrap_all(results, boot)
    sts = sts_table(results, tasks, boots, boot)
    transfer = transfer_table(results, tasks)
    paper = paper_results(paper_csv)
    max_items = {
        (r.get("protocol") or {}).get("max_items") for by in results.values() for r in by.values()
    }
    tables = {
        "scores": score_table(load_scores(score_files), tasks),
        "sts": sts,
        "transfer": transfer,
        "gap": gap_table(
            sts,
            transfer,
            paper,
            eol_prompts=eol_prompts,
            demo_kinds=demo_kinds if demo_kinds is not None else {"none": "none"},
            max_items=max(max_items - {None}, default=None),
        ),
        "scale": scale_table(results, tasks, boots, boot),
        "cost": cost_table(
            results,
            embed_meta=embed_meta,
            embed_benchmarks=embed_benchmarks,
            evaluate_benchmarks=evaluate_benchmarks,
        ),
        "paper": paper,
    }
    ci = f"{boot.confidence:.0%} bootstrap CI, {boot.resamples} resamples, seed {boot.seed}"
    captions = {
        "scores": "Scores (x100) per cell; STS: Spearman, transfer: accuracy",
        "sts": f"STS Spearman x100 per task and average [{ci}]",
        "transfer": "Transfer accuracy (MRPC also F1) per task and average",
        "gap": f"Ours vs the paper's reported figures, delta = ours - paper [{ci}]",
        "scale": f"Does scale help? Adjacent sizes, paired bootstrap on the same pairs [{ci}]",
        "cost": "Cost per cell: embedding throughput, wall time, peak memory",
        "paper": "The paper's reported figures (reference, with sources)",
    }
    for name, paths in out.items():
        write_table(tables[name], caption=captions[name], **paths)
    return tables
