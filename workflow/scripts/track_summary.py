"""Snakemake adapter: the study's summary, figures and tables on the sweep's parent run."""

from sentscale.logs import log_to
from sentscale.track import track_summary_job

with log_to(snakemake.log[0]):
    track_summary_job(
        sweep_json=snakemake.input.sweep,
        cell_records=list(snakemake.input.cells),
        scores_table=snakemake.input.scores,
        files=list(snakemake.input.files),
        out_json=snakemake.output[0],
    )
