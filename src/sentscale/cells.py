"""One study cell's steps, as the workflow scripts call them.

A cell (model, prompt variant, demonstration choice) is embedded once over the union of the
sentences of all its tasks (deduplicated across tasks), stored as ``.npz``; each task is then
scored from that file by a :class:`LookupEncoder`, so scoring never loads a model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import data, evaluation, io, prompts
from .adapters import read_adapter_record
from .context import JobContext
from .errors import DataError
from .options import SENTEVAL_SEED, EmbedOptions, EvaluateOptions

#: Encoder metadata on prompt lengths kept in the embed metadata (causal LMs: the model's
#: positions and the longest prompt; sentence-transformers: max_seq_length, truncations).
LENGTH_KEYS = ("max_positions", "longest_prompt_tokens", "max_seq_length", "truncated_sentences")


def cell_sentences(
    tasks: Sequence[str],
    data_dir: str | Path,
    *,
    max_items: int | None = None,
    seed: int = SENTEVAL_SEED,
) -> list[str]:
    """Unique sentences that scoring ``tasks`` will ask for, in first-seen order."""
    seen: dict[str, None] = {}
    for task in tasks:
        scored = evaluation.load_scored_task(task, data_dir, max_items=max_items, seed=seed)
        seen.update(dict.fromkeys(evaluation.sentences_to_encode(scored)))
    return list(seen)


def embed_job(
    ctx: JobContext,
    cell: Mapping[str, Any],
    *,
    data_dir: str | Path,
    models_dir: str | Path,
    out_npz: str | Path,
    out_meta: str | Path,
    demos: Sequence[prompts.Demo] | None = None,
    demos_file: str | Path | None = None,
    adapter: str | Path | None = None,
) -> dict[str, Any]:
    """The ``embed`` rule: embed every sentence of ``cell["tasks"]`` with the cell's model,
    prompt and demos.

    ``cell`` is the workflow's embed params (``get_embed_params``): model, prompt (variant dict
    or None for a baseline encoder), demos, tasks, embed options, the evaluate options that
    decide which items are scored (``max_items``, ``seed``), registry overrides. ``demos``
    overrides ``cell["demos"]`` (demonstrations chosen upstream on STS-B dev); ``demos_file``,
    a selection job's ``selected.json`` (:mod:`sentscale.demos`), overrides both.
    ``adapter``: the LoRA adapter directory of a fine-tuned (``cse``) cell.
    """
    from . import embed  # torch import is slow; keep it out of scoring jobs

    ctx.set_torch_threads()
    spec = ctx.registry[cell["model"]]
    options = EmbedOptions.from_mapping(cell["embed"], "embed")
    sampling = EvaluateOptions.from_mapping(cell["evaluate"], "evaluate")
    if demos_file:
        from .demos.selection import read_selected

        demos = read_selected(demos_file)
    demos = prompts.as_demos(cell["demos"] if demos is None else demos)
    variant = None if cell["prompt"] is None else prompts.PromptVariant(**cell["prompt"])

    sentences = cell_sentences(
        cell["tasks"], data_dir, max_items=sampling.max_items, seed=sampling.seed
    )
    t_load = time.perf_counter()
    encoder = embed.load_encoder(
        spec,
        models_dir=models_dir,
        prompt=variant,
        demos=demos,
        dtype=options.dtype,
        batch_size=options.batch_size,
        device=options.device,
        quantization=options.quantization,
        preprocess=options.preprocess,
        adapter=adapter,
    )
    load_s = time.perf_counter() - t_load
    t_encode = time.perf_counter()
    embeddings = encoder.encode(sentences)
    encode_s = time.perf_counter() - t_encode

    io.save_npz(out_npz, sentences=np.array(sentences, dtype=str), embeddings=embeddings)
    meta = {
        "model": cell["model"],
        "spec": spec.to_dict(),
        "prompt": None
        if variant is None
        else prompts.prompt_metadata(variant, demos, options.preprocess),
        "embed": options.to_dict(),
        "tasks": list(cell["tasks"]),
        "demos_file": None if demos_file is None else str(demos_file),
        **({} if adapter is None else {"adapter": _adapter_meta(adapter)}),
        "data_fingerprints": {t: data.task_fingerprint(t, data_dir) for t in cell["tasks"]},
        "n_sentences": len(sentences),
        "dim": int(embeddings.shape[1]),
        # prompt lengths against the model's limit (longer prompts are refused, sentence
        # encoders truncate: sentscale.embed)
        "lengths": {k: encoder.metadata[k] for k in LENGTH_KEYS if k in encoder.metadata},
        "timings": {
            "load_s": round(load_s, 3),
            "encode_s": round(encode_s, 3),
            "sentences_per_s": round(len(sentences) / encode_s, 2) if encode_s else None,
        },
        "provenance": ctx.provenance(),  # versions, host, peak memory
    }
    io.write_json(out_meta, meta)
    return meta


def _adapter_meta(adapter: str | Path) -> dict[str, Any]:
    """What the embeddings of a fine-tuned cell were computed with: the adapter's training."""
    record = read_adapter_record(adapter)
    keep = ("model", "recipe", "step", "dev_spearman", "triplets_sha256")
    return {"path": str(adapter), **{k: record[k] for k in keep if k in record}}


class LookupEncoder:
    """An ``encode`` callable that serves embeddings computed earlier by :func:`embed_job`."""

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


def evaluate_job(
    embeddings_npz: str | Path,
    task: str,
    *,
    data_dir: str | Path,
    out_json: str | Path,
    options: EvaluateOptions | None = None,
    cell: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``evaluate_sts``/``evaluate_transfer`` rules: score one task from a cell's stored
    embeddings and write its result JSON. (No model, no registry: it needs no JobContext.)"""
    options = options or EvaluateOptions()
    results = evaluation.evaluate(
        LookupEncoder(embeddings_npz),
        [task],
        data_dir,
        transfer_mode=options.transfer_mode,
        seed=options.seed,
        max_items=options.max_items,
        fast_solver=options.fast_solver,
    )
    result = {**results[task], "task": task, "cell": dict(cell or {})}
    # Score files hold only what the embeddings and data determine, so reruns are
    # byte-identical; wall times live in the log and the rule's benchmark file.
    logging.getLogger(__name__).info("%s timings: %s", task, result.pop("timings"))
    # score and the other figures first, the per-pair arrays last (issue 18)
    io.write_json(out_json, evaluation.summary_first(result), sort_keys=False)
    return result
