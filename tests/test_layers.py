"""The package's import graph: no cycle, and every import points down the layer table.

Imports are found by walking each module's AST, so imports inside functions count too (the
same walk as ``/work/shared/tools/import_cycles.py``). A module missing from :data:`LAYERS` fails
the test: place a new module in the table when you add it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import sentscale

SRC = Path(sentscale.__file__).resolve().parent.parent
PACKAGE = "sentscale"

#: Layers, lowest first. A module may import modules of its own layer or of lower ones, never
#: of a higher one. An entry names a module or a package (then every module in it, unless a
#: longer entry places a submodule elsewhere).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # plumbing with no sentscale dependencies beyond errors
    # (tracking_uri: a tracking URI refused when it carries credentials, shown without secrets)
    (
        "base",
        (
            "sentscale",
            "errors",
            "io",
            "logs",
            "runtime",
            "options",
            "tracking_uri",
            "config_schema",
        ),
    ),
    # data, prompts, the model registry and what hangs off it directly
    # (context: what every job gets - the registry, threads, logging, provenance)
    (
        "core",
        (
            "loaders",
            "data",
            "prompts",
            "integrity",  # a model folder's recorded files (sizes, sha256s) and their checks
            "weights",  # streamed safetensors reads into the target dtype (below models)
            "models",
            "adapters",
            "planning",
            "provision",
            "context",
            "fetch",  # downloads (urllib): resumed, retried, atomic; below the stages
            "datasets",  # SentEval's tar and the NLI CSV: fetch + manifest/row checks
        ),
    ),
    ("embed", ("embed",)),
    # pipeline stages: scoring, demonstration choice, fine-tuning, the MLflow store (and its
    # sqlite file, created atomically: sqlite_store, below mlflow_store)
    (
        "stages",
        (
            "sts",
            "transfer_fast",  # fast mode's logistic regression, below transfer
            "transfer",
            "evaluation",
            "demos",
            "finetune",
            "sqlite_store",
            "mlflow_store",
        ),
    ),
    # workflow jobs and reports (cells, tracking, tables, figures), the study config the workflow
    # reads, and the demos facade with its reports (demos.summary draws with plots)
    (
        "jobs",
        (
            "cells",
            "track_display",  # run names and rounding as the tables show them
            "track_sweep",  # the parent run: experiment, summary, runs URL (below track)
            "track",
            "aggregate",
            "plots",
            "study",
            "demos.__init__",
            "demos.summary",
        ),
    ),
    ("entry", ("cli",)),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The longest known module that ``name`` is or lives in."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> dict[str, int]:
    """``{imported sentscale module: line}`` for every import in ``module``, at any depth."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_pkg else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            # a package importing its own submodules (its facade) is not an upward edge
            if (
                resolved
                and resolved != module
                and not (is_pkg and resolved.startswith(module + "."))
            ):
                found[resolved] = node.lineno
                break
    return found


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest entry naming ``module`` or a package above it."""
    path = MODULES[module]
    key = module.removeprefix(PACKAGE).lstrip(".") or PACKAGE
    if path.name == "__init__.py" and key != PACKAGE:
        candidates = [f"{key}.__init__", key]
    else:
        candidates = [key]
    best: tuple[int, int] | None = None  # (length of entry, layer)
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            for cand in candidates:
                if cand == entry or cand.startswith(entry + ".") or entry == f"{cand}":
                    score = len(entry) + (1000 if entry.endswith(".__init__") else 0)
                    if best is None or score > best[0]:
                        best = (score, index)
    if best is None:
        raise KeyError(module)
    return best[1]


def find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    return cycles


EDGES = {m: imports_of(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_every_module_has_a_layer():
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"place these modules in LAYERS (tests/test_layers.py): {missing}"


def test_no_import_cycle():
    assert find_cycles(EDGES) == []


def upward_imports(edges: dict[str, dict[str, int]]) -> list[str]:
    """Every import of a module of a higher layer, as ``module:line imports target (...)``."""
    return [
        f"{module}:{line} imports {target} ({LAYERS[layer_of(target)][0]} is above "
        f"{LAYERS[layer_of(module)][0]})"
        for module, targets in sorted(edges.items())
        for target, line in sorted(targets.items())
        if layer_of(target) > layer_of(module)
    ]


def test_imports_point_down_the_layers():
    upward = upward_imports(EDGES)
    assert not upward, "\n".join(upward)


def test_the_checks_catch_a_reintroduced_cells_import_in_finetune():
    """``from ..cells import peak_rss_mb`` inside finetune once closed the cycle cells ->
    demos -> embed -> finetune -> cells: it is an upward import, and a cycle as soon as
    cells imports the training code again."""
    edges = {m: dict(t) for m, t in EDGES.items()}
    edges["sentscale.finetune.job"]["sentscale.cells"] = 1
    assert upward_imports(edges) == [
        "sentscale.finetune.job:1 imports sentscale.cells (jobs is above stages)"
    ]
    edges["sentscale.cells"]["sentscale.finetune.job"] = 1
    assert find_cycles(edges) == [["sentscale.cells", "sentscale.finetune.job"]]
