"""What every job shares: its registry, threads, logging and provenance.

A workflow job (one Snakemake rule's script) builds one :class:`JobContext` from its params and
passes it to the step it runs. Job entry points are named after their rule,
``<rule>_job(ctx, ...)``: ``embed_job``, ``label_candidates_job``, ``select_demo_job``,
``finetune_job``, ``track_cell_job`` (``evaluate_job`` and ``aggregate_job`` load no model and
take no context). The registry comes from the params (the study's registry overrides,
sentscale.study), never from module state; provenance is the same block in every record a job
writes.
"""

from __future__ import annotations

import contextlib
import logging
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .logs import log_to
from .models import Registry
from .runtime import package_versions, peak_rss_mb

#: Distributions whose versions decide a result (recorded, never imported to find them).
RECORDED_PACKAGES = ("torch", "transformers", "peft", "numpy", "scikit-learn", "scipy")


@dataclass(frozen=True)
class JobContext:
    """One job's shared state: ``registry`` (the study's models), ``threads`` (torch threads of
    model jobs; None leaves torch's default), ``name`` (for logs)."""

    registry: Registry = field(default_factory=Registry.load)
    threads: int | None = None
    name: str = "job"

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, threads: int | None = None, name: str = "job"
    ) -> JobContext:
        """From a rule's params: ``registry`` holds the study's registry overrides."""
        return cls(Registry.load(params["registry"]), threads, name)

    def set_torch_threads(self) -> None:
        """Apply ``threads`` to torch (model jobs only: scoring jobs never import torch)."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    @contextlib.contextmanager
    def logging_to(self, log_file: str | Path) -> Iterator[logging.Logger]:
        """Route logging and stderr to the job's ``log:`` file; yields the job's logger."""
        with log_to(log_file):
            yield logging.getLogger(f"sentscale.{self.name}")

    def provenance(self) -> dict[str, Any]:
        """Where and with what a record was computed (every job record carries this block)."""
        return {
            "sentscale": __version__,
            "python": platform.python_version(),
            "packages": package_versions(RECORDED_PACKAGES),
            "host": platform.node(),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
