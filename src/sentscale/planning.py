"""Job resources as a function of model size (used by the workflow and the SLURM profile).

Numbers are deliberately simple and conservative: weights dominate memory for inference, and
sentence-embedding jobs are short forward passes. ``resources`` in the study config tunes them:

    resources:
      gpu_mem_gb: 80        # memory of one GPU on the cluster; omit for CPU-only runs
      gpu_model: a100       # optional, passed as gpu_model to the SLURM plugin
      cpus_per_gpu: 8
      minutes_per_billion: 6
"""

from __future__ import annotations

import math
from typing import Any

from .models import ModelSpec
from .options import EmbedOptions, ResourceOptions

BYTES_PER_PARAM = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "8bit": 1.0, "4bit": 0.55}
#: Activations of short-sentence batches, CUDA context, fragmentation: weights x this factor
#: plus a constant (OPT-66B fp16: 132 GB -> 147 GB, two 80 GB GPUs).
MEMORY_OVERHEAD_FACTOR = 1.1
MEMORY_OVERHEAD_GB = 2.0


def weight_gb(params: int, dtype: str, quantization: str | None = None) -> float:
    return params * BYTES_PER_PARAM[quantization or dtype] / 1e9


def job_resources(
    spec: ModelSpec,
    embed_options: EmbedOptions,
    cluster: ResourceOptions,
    *,
    attempt: int = 1,
) -> dict[str, Any]:
    """Resources for one embedding job of ``model``; retries (``attempt`` > 1) get more.

    Returns ``mem_mb`` and ``runtime`` (minutes, an int: the SLURM plugin does not parse
    compound strings such as ``7h30m``), ``cpus`` and, only when the cluster config names a
    GPU size, ``gpu`` (count), ``cpus_per_gpu`` and ``gpu_model``.
    """
    weights = weight_gb(spec.params, embed_options.dtype, embed_options.quantization)
    need_gb = weights * MEMORY_OVERHEAD_FACTOR + MEMORY_OVERHEAD_GB
    billions = spec.params / 1e9
    runtime = int(math.ceil((30 + cluster.minutes_per_billion * billions) * attempt))
    out: dict[str, Any] = {"runtime": runtime}
    gpu_mem = cluster.gpu_mem_gb
    if gpu_mem:
        gpus = max(1, math.ceil(need_gb / gpu_mem))
        out["gpu"] = gpus
        out["cpus_per_gpu"] = cluster.cpus_per_gpu
        if cluster.gpu_model:
            out["gpu_model"] = cluster.gpu_model
        # Host memory: weights pass through RAM once while loading (safetensors are mmapped).
        out["mem_mb"] = int(math.ceil((weights + 16) * 1024 * attempt))
    else:
        out["mem_mb"] = int(math.ceil(need_gb * 1024 * attempt))
    return out


def finetune_resources(
    spec: ModelSpec,
    *,
    dtype: str,
    quantization: str | None,
    world_size: int,
    cluster: ResourceOptions,
    runtime_scale: float = 1,
    attempt: int = 1,
) -> dict[str, Any]:
    """Resources of one fine-tuning job: ``world_size`` processes, each holding the whole
    (4-bit) model on its own GPU as the original's ``torchrun`` + DDP does (2 GPUs up to
    OPT-2.7B, 4 for 6.7B/7B, 8 for 13B). ``runtime`` is an embed job's runtime times
    ``runtime_scale`` (per process); host memory holds one copy of the weights per process.

    A model whose weights do not fit one GPU cannot train data-parallel: ``gpu`` is then still
    ``world_size`` and the job fails at load time, so the check is left to the recipe's
    quantization (QLoRA 4-bit fits 30B on one 80 GB GPU)."""
    options = EmbedOptions(dtype=dtype, quantization=quantization)
    out = job_resources(spec, options, cluster, attempt=attempt)
    out["runtime"] = int(math.ceil(out["runtime"] * runtime_scale))
    weights = weight_gb(spec.params, dtype, quantization)
    if cluster.gpu_mem_gb:
        out["gpu"] = world_size
        out["mem_mb"] = int(math.ceil((weights * world_size + 16) * 1024 * attempt))
    return out
