"""Typed options of a study, built once from the validated config and read as fields.

Each config block (``embed``, ``evaluate``, ``resources``, ``tracking``, ``aggregate``) is a
frozen dataclass here. Their defaults live here and only here: the config schema
(``workflow/schemas/config.schema.yaml``) repeats them for users, and
``tests/test_options.py`` fails if the two ever drift apart. Code reads fields, never
``dict.get(key, default)``.

Jobs receive options through Snakemake params as plain mappings (``to_dict``: canonical key
order, so re-saving the config reruns nothing) and rebuild them with ``from_mapping``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

#: SentEval's seed (its transfer classifiers use 1111). Every seeded step of the study defaults
#: to it: transfer cross-validation and classifiers, item subsamples, demonstration sampling and
#: selection subsamples, bootstrap resamples.
SENTEVAL_SEED = 1111

DTYPES = ("float32", "bfloat16", "float16")
TRANSFER_MODES = ("fast", "paper")
#: fast mode's solvers (sentscale.transfer_fast): "warm" reaches the optimum of the logistic
#: regression; "sklearn" is the original per-fit lbfgs (it stops short of it; older studies)
FAST_SOLVERS = ("warm", "sklearn")

OptionsT = TypeVar("OptionsT", bound="Options")


def unknown_key_message(where: str, key: str, allowed: list[str]) -> str:
    """``<where>: unknown key 'x'`` plus the closest allowed key, if any is close."""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}"


@dataclass(frozen=True)
class Options:
    """Base of the option blocks: strict construction from a mapping, canonical dict out."""

    @classmethod
    def from_mapping(
        cls: type[OptionsT], block: Mapping[str, Any] | None, where: str = ""
    ) -> OptionsT:
        """Build from a config block; unknown keys are a :class:`ConfigError` naming them."""
        block = dict(block or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in block if k not in names]
        if unknown:
            raise ConfigError(
                "; ".join(unknown_key_message(where or cls.__name__, k, names) for k in unknown)
            )
        return cls(**block)

    def to_dict(self) -> dict[str, Any]:
        """Every field, keys sorted (Snakemake compares params by their text)."""
        values = dataclasses.asdict(self)
        return {key: values[key] for key in sorted(values)}


@dataclass(frozen=True)
class EmbedOptions(Options):
    """How a model is loaded and run (``embed:``)."""

    dtype: str = "float32"
    batch_size: int = 16
    device: str = "auto"
    #: 8bit / 4bit bitsandbytes weights (CUDA only); None: the dtype's full weights
    quantization: str | None = None
    #: torch threads of a job (Snakemake ``threads:`` of the model jobs)
    threads: int = 2
    #: the paper's evaluation-time sentence clean-up (sentscale.prompts)
    preprocess: bool = True
    #: model name -> the dtype of that model's jobs, over ``dtype`` (the paper grid: float32,
    #: OPT-66B in float16 as the authors ran it)
    model_dtype: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def for_model(self, name: str) -> EmbedOptions:
        """The options of ``name``'s jobs: its ``model_dtype`` entry as ``dtype``, no map."""
        return dataclasses.replace(
            self, dtype=self.model_dtype.get(name, self.dtype), model_dtype={}
        )

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Options.to_dict`; an empty ``model_dtype`` is left out, so job params
        (resolved per model by :meth:`for_model`) read as they did before the key existed
        and nothing reruns for it."""
        values = super().to_dict()
        if not values["model_dtype"]:
            del values["model_dtype"]
        return values

    def loading(self) -> dict[str, Any]:
        """How the model is loaded (``models.load_causal_lm`` keywords): dtype, device,
        quantization. Batching does not enter a load, nor greedy labelling."""
        return {"dtype": self.dtype, "device": self.device, "quantization": self.quantization}

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(f"embed.batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ConfigError(f"embed.batch_size must be an integer >= 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"embed.dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        for name, dtype in dict(self.model_dtype).items():
            if dtype not in DTYPES:
                raise ConfigError(
                    f"embed.model_dtype.{name} must be one of {list(DTYPES)}, got {dtype!r}"
                )


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """How cells are scored (``evaluate:``)."""

    transfer_mode: str = "fast"
    seed: int = SENTEVAL_SEED
    #: at most this many items per split (seeded, stratified); None: every item, as the paper
    max_items: int | None = None
    #: fast mode's solver (transfer tasks only)
    fast_solver: str = "warm"

    def __post_init__(self) -> None:
        if self.transfer_mode not in TRANSFER_MODES:
            raise ConfigError(
                f"evaluate.transfer_mode must be one of {list(TRANSFER_MODES)}, "
                f"got {self.transfer_mode!r}"
            )
        if self.fast_solver not in FAST_SOLVERS:
            raise ConfigError(
                f"evaluate.fast_solver must be one of {list(FAST_SOLVERS)}, "
                f"got {self.fast_solver!r}"
            )

    def sts_params(self) -> dict[str, Any]:
        """What decides an STS score: the transfer-only keys left out, so that changing them
        reruns no STS job."""
        out = self.to_dict()
        del out["fast_solver"]
        return out

    def sampling(self) -> dict[str, Any]:
        """The options that decide which items are scored, hence which sentences embedded."""
        return {"max_items": self.max_items, "seed": self.seed}


@dataclass(frozen=True)
class ResourceOptions(Options):
    """Cluster resources (``resources:``; sentscale.planning). No ``gpu_mem_gb``: CPU jobs."""

    gpu_mem_gb: float | None = None
    gpu_model: str | None = None
    cpus_per_gpu: int = 8
    minutes_per_billion: float = 6


@dataclass(frozen=True)
class TrackingOptions(Options):
    """The MLflow view (``tracking:``; sentscale.track)."""

    enabled: bool = True
    uri: str | None = None
    #: None: sentscale/<study> (sentscale.track_sweep.experiment_name)
    experiment: str | None = None


@dataclass(frozen=True)
class AggregateOptions(Options):
    """Tables and figures (``aggregate:``): the bootstrap behind every confidence interval."""

    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    seed: int = SENTEVAL_SEED

    def __post_init__(self) -> None:
        if self.bootstrap_resamples < 1000:
            raise ConfigError(
                f"aggregate.bootstrap_resamples must be >= 1000, got {self.bootstrap_resamples}"
            )
        if not 0 < self.confidence < 1:
            raise ConfigError(f"aggregate.confidence must be in (0, 1), got {self.confidence}")
