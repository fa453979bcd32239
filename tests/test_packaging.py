"""Library vs workflow: `pip install sentscale` (embedder, evaluator, data loaders) needs neither
Snakemake nor its Slurm plugin nor MLflow; those are the `workflow` extra."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib

from conftest import REPO_ROOT

WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "mlflow"}
# Modules a library user imports; none may import a workflow-only package at import time.
LIBRARY_MODULES = [
    "sentscale.data",
    "sentscale.sts",
    "sentscale.transfer",
    "sentscale.evaluation",
    "sentscale.prompts",
    "sentscale.models",
    "sentscale.embed",
]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_workflow_packages_are_only_in_the_workflow_extra():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {_name(r) for r in project["dependencies"]}.isdisjoint(WORKFLOW_ONLY)
    for extra, requirements in extras.items():
        if extra != "workflow":
            assert {_name(r) for r in requirements}.isdisjoint(WORKFLOW_ONLY), extra
    workflow = {_name(r): r for r in extras["workflow"]}
    assert set(workflow) >= WORKFLOW_ONLY
    for name in WORKFLOW_ONLY:  # exact pins, as every other requirement
        assert re.fullmatch(rf"{re.escape(name)}==[\w.]+", workflow[name]), workflow[name]


def test_library_modules_import_without_workflow_packages():
    blocked = sorted({"snakemake", "mlflow"})
    code = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys

        BLOCKED = {blocked!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        for name in BLOCKED:
            sys.modules.pop(name, None)
        for module in {LIBRARY_MODULES!r}:
            importlib.import_module(module)
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED))
        assert not loaded, loaded
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")
