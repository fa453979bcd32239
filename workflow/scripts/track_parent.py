"""Snakemake adapter: the study's MLflow experiment and the sweep's parent run (created once)."""

from pathlib import Path

from sentscale.logs import log_to
from sentscale.track import mlflow_parent_job

with log_to(snakemake.log[0]):
    mlflow_parent_job(
        study=snakemake.params.study,
        settings=snakemake.params.sweep,
        uri=snakemake.params.uri,
        experiment=snakemake.params.experiment,
        results_dir=Path(snakemake.output[0]).parents[1],  # results/tracking/..
        out_json=snakemake.output[0],
    )
