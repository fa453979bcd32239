"""Snakemake adapter: the study's MLflow experiment and the sweep's parent run (created once)."""

from pathlib import Path

from sentscale.logs import log_to
from sentscale.track import start_sweep

with log_to(snakemake.log[0]):  # noqa: F821 - injected by Snakemake
    start_sweep(
        study=snakemake.params.study,  # noqa: F821
        settings=snakemake.params.sweep,  # noqa: F821
        uri=snakemake.params.uri,  # noqa: F821
        experiment=snakemake.params.experiment,  # noqa: F821
        results_dir=Path(snakemake.output[0]).parents[1],  # noqa: F821 - results/tracking/..
        out_json=snakemake.output[0],  # noqa: F821
    )
