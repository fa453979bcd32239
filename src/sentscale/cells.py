"""One study cell's steps, as the workflow scripts call them.

A cell (model, prompt variant, demonstration choice) is embedded once over the union of the
sentences of all its tasks (deduplicated across tasks), stored as ``.npz``; each task is then
scored from that file by a :class:`LookupEncoder`, so scoring never loads a model.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, data, evaluation, io, models, prompts
from .adapters import read_adapter_record
from .errors import DataError
from .runtime import peak_rss_mb


def cell_sentences(
    tasks: Sequence[str], data_dir: str | Path, *, max_items: int | None = None, seed: int = 1111
) -> list[str]:
    """Unique sentences that scoring ``tasks`` will ask for, in first-seen order."""
    seen: dict[str, None] = {}
    for task in tasks:
        scored = evaluation.load_scored_task(task, data_dir, max_items=max_items, seed=seed)
        seen.update(dict.fromkeys(evaluation.sentences_to_encode(scored)))
    return list(seen)


def embed_cell(
    cell: Mapping[str, Any],
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_npz: str | Path,
    out_meta: str | Path,
    threads: int | None = None,
    demos: Sequence[prompts.Demo] | None = None,
    demos_file: str | Path | None = None,
    adapter: str | Path | None = None,
) -> dict[str, Any]:
    """Embed every sentence of ``cell["tasks"]`` with the cell's model, prompt and demos.

    ``cell`` is the workflow's ``embed_params`` mapping: model, prompt (variant dict or None for
    a baseline encoder), demos, tasks, embed options, the evaluate options that decide which
    items are scored (``max_items``, ``seed``), registry overrides. ``demos`` overrides
    ``cell["demos"]`` (demonstrations chosen upstream on STS-B dev); ``demos_file``, a
    selection job's ``selected.json`` (:mod:`sentscale.demos`), overrides both. ``adapter``:
    the LoRA adapter directory of a fine-tuned (``cse``) cell (:mod:`sentscale.finetune`).
    """
    from . import embed  # torch import is slow; keep it out of scoring jobs

    if threads:
        import torch

        torch.set_num_threads(threads)
    models.load_registry(cell.get("registry") or {})
    options = dict(cell.get("embed") or {})
    if demos_file:
        from .demos.selection import read_selected

        demos = read_selected(demos_file)
    demos = prompts.as_demos(cell.get("demos") or () if demos is None else demos)
    variant = None if cell.get("prompt") is None else prompts.PromptVariant(**cell["prompt"])

    scoring = cell.get("evaluate") or {}
    sentences = cell_sentences(
        cell["tasks"],
        data_dir,
        max_items=scoring.get("max_items"),
        seed=scoring.get("seed", 1111),
    )
    t_load = time.perf_counter()
    encoder = _load_encoder(embed, cell["model"], models_dir, variant, demos, options, adapter)
    load_s = time.perf_counter() - t_load
    t_encode = time.perf_counter()
    embeddings = encoder.encode(sentences)
    encode_s = time.perf_counter() - t_encode

    io.save_npz(out_npz, sentences=np.array(sentences, dtype=str), embeddings=embeddings)
    meta = {
        "model": cell["model"],
        "spec": models.get_spec(cell["model"]).to_dict(),
        "prompt": None
        if variant is None
        else prompts.prompt_metadata(variant, demos, options.get("preprocess", True)),
        "embed": options,
        "tasks": list(cell["tasks"]),
        "demos_file": None if demos_file is None else str(demos_file),
        **({} if adapter is None else {"adapter": _adapter_meta(adapter)}),
        "data_fingerprints": {t: data.task_fingerprint(t, data_dir) for t in cell["tasks"]},
        "n_sentences": len(sentences),
        "dim": int(embeddings.shape[1]),
        "timings": {
            "load_s": round(load_s, 3),
            "encode_s": round(encode_s, 3),
            "sentences_per_s": round(len(sentences) / encode_s, 2) if encode_s else None,
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "sentscale_version": __version__,
        "host": platform.node(),
    }
    io.write_json(out_meta, meta)
    return meta


def _load_encoder(embed, model, models_dir, variant, demos, options, adapter):
    """The cell's encoder (``embed``: the :mod:`sentscale.embed` module, imported by the caller
    before its timer starts)."""
    return embed.load_encoder(
        model,
        models_dir=models_dir,
        prompt=variant,
        demos=demos,
        dtype=options.get("dtype", "float32"),
        batch_size=options.get("batch_size", 16),
        device=options.get("device", "auto"),
        quantization=options.get("quantization"),
        preprocess=options.get("preprocess", True),
        adapter=adapter,
    )


def _adapter_meta(adapter: str | Path) -> dict[str, Any]:
    """What the embeddings of a fine-tuned cell were computed with: the adapter's training."""
    record = read_adapter_record(adapter)
    keep = ("model", "recipe", "step", "dev_spearman", "triplets_sha256")
    return {"path": str(adapter), **{k: record[k] for k in keep if k in record}}


class LookupEncoder:
    """An ``encode`` callable that serves embeddings computed earlier by :func:`embed_cell`."""

    def __init__(self, npz_path: str | Path):
        self.path = Path(npz_path)
        with np.load(self.path, allow_pickle=False) as archive:
            self.embeddings = archive["embeddings"]
            self.index = {s: i for i, s in enumerate(archive["sentences"].tolist())}

    def __call__(self, sentences: list[str]) -> np.ndarray:
        missing = [s for s in sentences if s not in self.index]
        if missing:
            raise DataError(
                f"{self.path}: {len(missing)} sentence(s) were not embedded (first: "
                f"{missing[0]!r}); the data changed since embedding - rerun the embed step"
            )
        return self.embeddings[[self.index[s] for s in sentences]]

    encode = __call__


def evaluate_cell_task(
    embeddings_npz: str | Path,
    task: str,
    *,
    data_dir: str | Path,
    out_json: str | Path,
    options: Mapping[str, Any] | None = None,
    cell: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Score one task from a cell's stored embeddings and write its result JSON."""
    options = dict(options or {})
    results = evaluation.evaluate(
        LookupEncoder(embeddings_npz),
        [task],
        data_dir,
        transfer_mode=options.get("transfer_mode", "fast"),
        seed=options.get("seed", 1111),
        max_items=options.get("max_items"),
    )
    result = {**results[task], "task": task, "cell": dict(cell or {})}
    # Score files hold only what the embeddings and data determine, so reruns are
    # byte-identical; wall times live in the log and the rule's benchmark file.
    logging.getLogger(__name__).info("%s timings: %s", task, result.pop("timings"))
    io.write_json(out_json, result)
    return result
