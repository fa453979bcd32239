#!/usr/bin/env bash
# Install sentscale with its `workflow` and `test` extras into ./.venv, with the exact pins of
# requirements.lock (CPU torch 2.13.0).
# Usage: bash scripts/install.sh   (PYTHON=python3.11 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# --constraint pins every transitive package; torch==2.13.0 exactly (a ranged torch would pull
# a multi-GB CUDA build).
.venv/bin/python -m pip install --quiet --constraint requirements.lock -e '.[workflow,test]'
.venv/bin/sentscale --version
