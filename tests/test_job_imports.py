"""What a job's process imports: most of a small job's seconds are imports, so scoring jobs stay
free of torch/transformers/peft/mlflow, tracking jobs of torch, and building the DAG (once per
local run, once per job on a cluster) of all four (issue 17, item 3).

Each check runs in a fresh interpreter and reads ``sys.modules`` there, after importing what the
job script imports and, for the scoring jobs, after actually scoring a task.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentscale import cells

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "workflow" / "scripts"
HEAVY = ("torch", "transformers", "peft", "mlflow")

#: Scripts of jobs that load no model, and what each may not import.
LIGHT_JOBS = {
    "evaluate.py": HEAVY,
    "aggregate.py": HEAVY,
    "plots.py": HEAVY,
    "demo_summary.py": HEAVY,
    "demo_ranking.py": HEAVY,
    "demo_plot.py": HEAVY,
    "track_cell.py": ("torch", "transformers", "peft"),
    "track_parent.py": ("torch", "transformers", "peft"),
    "track_summary.py": ("torch", "transformers", "peft"),
}


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = (
        code
        + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _sentscale_imports(source: str) -> list[str]:
    """The ``sentscale`` modules a script imports at its top level."""
    modules = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentscale"):
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names if a.name.startswith("sentscale")]
    return modules


def test_every_light_job_script_is_checked():
    # a new script is either a model job (it may import torch) or listed above
    model_jobs = {
        "embed.py",
        "finetune.py",
        "label_candidates.py",
        "select_demo.py",
        "provision_model.py",
    }
    scripts = {p.name for p in SCRIPTS.glob("*.py")}
    assert scripts == set(LIGHT_JOBS) | model_jobs


@pytest.mark.parametrize("script", sorted(LIGHT_JOBS))
def test_light_job_scripts_import_no_heavy_package(script):
    modules = _sentscale_imports((SCRIPTS / script).read_text())
    assert modules, f"{script} imports nothing from sentscale?"
    loaded = _loaded_after("\n".join(f"import {m}" for m in modules))
    assert "sentscale" in loaded
    assert sorted(loaded & set(LIGHT_JOBS[script])) == []


def test_building_the_dag_imports_no_heavy_package():
    # the sentscale modules rules/common.smk imports while Snakemake parses the workflow
    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    modules = re.findall(r"^from (sentscale[\w.]*) import", text, flags=re.M)
    modules += [f"sentscale.{m}" for m in re.findall(r"^from sentscale import (\w+)", text, re.M)]
    assert len(modules) >= 10
    loaded = _loaded_after("\n".join(f"import {m}" for m in modules))
    assert sorted(loaded & set(HEAVY)) == []


def test_the_finetune_package_imports_its_training_side_on_first_use():
    assert "torch" not in _loaded_after("import sentscale.finetune, sentscale.study")
    assert "torch" in _loaded_after("from sentscale.finetune import Trainer")


@pytest.mark.parametrize("task", ["STSBenchmark", "CR", "TREC"])
def test_scoring_a_task_imports_no_heavy_package(tmp_path, data_dir, task):
    sentences = cells.cell_sentences([task], data_dir, max_items=60)
    embeddings = np.random.default_rng(0).normal(size=(len(sentences), 8)).astype(np.float32)
    npz = tmp_path / "cell.npz"
    np.savez(npz, sentences=np.array(sentences, dtype=str), embeddings=embeddings)
    out = tmp_path / "score.json"
    loaded = _loaded_after(
        "from sentscale.cells import evaluate_job\n"
        "from sentscale.options import EvaluateOptions\n"
        f"evaluate_job({str(npz)!r}, {task!r}, data_dir={str(data_dir)!r}, "
        f"out_json={str(out)!r}, options=EvaluateOptions(max_items=60))"
    )
    assert json.loads(out.read_text())["n"] > 0
    assert sorted(loaded & set(HEAVY)) == []
