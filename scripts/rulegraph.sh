#!/usr/bin/env bash
# Regenerate docs/rulegraph.svg, the picture of the workflow's rule graph shown in README.md.
# Usage: bash scripts/rulegraph.sh [DATA_DIR]   (needs graphviz's `dot`:
#        apt-get install --no-install-recommends graphviz)
# DATA_DIR defaults to ../shared/data/senteval; the config check needs the SentEval files.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-../shared/data/senteval}
command -v dot >/dev/null || { echo "graphviz 'dot' not found" >&2; exit 1; }
graph=$(.venv/bin/snakemake --rulegraph --configfile config/config.yaml --config "data_dir=$DATA_DIR")
printf '%s\n' "$graph" | dot -Tsvg > docs/rulegraph.svg.tmp
mv docs/rulegraph.svg.tmp docs/rulegraph.svg
echo "wrote docs/rulegraph.svg"
