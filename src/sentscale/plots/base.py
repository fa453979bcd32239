"""What every figure shares: atomic, timestamp-free saving, colours, the log-size axis."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .. import io  # noqa: E402
from ..aggregate import STS_AVG, TRANSFER_AVG, format_params  # noqa: E402

DODGE = 0.04  # decades between neighbouring lines at one model size
YLABELS = {
    STS_AVG: "STS avg (Spearman ×100)",
    TRANSFER_AVG: "transfer avg (accuracy %)",
}


#: PNG metadata of the study's figures: no "Software" entry (the matplotlib version).
NO_STAMP: Mapping[str, Any] = {"Software": None}


def save(
    fig: plt.Figure,
    png: str | Path,
    pdf: str | Path | None = None,
    *,
    dpi: int = 150,
    png_metadata: Mapping[str, Any] | None = NO_STAMP,
) -> None:
    """Write ``fig`` atomically as PNG (``dpi``, ``png_metadata``; None: matplotlib's default
    "Software" entry) and PDF, without timestamps."""
    io.atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata=png_metadata))
    if pdf is not None:
        io.atomic_write(
            pdf,
            lambda tmp: fig.savefig(
                tmp, format="pdf", metadata={"CreationDate": None, "Creator": None}
            ),
        )
    plt.close(fig)


def model_families(
    models: Iterable[str], families: Mapping[str, str] | None = None
) -> dict[str, str]:
    """model -> family for every model of ``models``: ``families`` (the study's registry, as
    the workflow passes it), else the packaged registry's ``family``, else the model's own
    name: a model of unknown family is never joined by a line to another model."""
    from ..models import Registry

    registry = Registry.load() if families is None else None
    out = {}
    for model in dict.fromkeys(models):
        family = (families or {}).get(model)
        if family is None and registry is not None and model in registry:
            family = registry[model].family
        out[model] = family or model
    return out


def _choice(prompt: str, demo: str) -> str:
    return f"{prompt} / {demo}"


def _colors(choices: Iterable[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {c: cmap(i % 10) for i, c in enumerate(sorted(set(choices)))}


def _log_x(ax: plt.Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_params(x) if x > 0 else ""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)


def _ci(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = f"{column} lo", f"{column} hi"
    if lo not in frame.columns or not frame[lo].notna().any():
        return None
    return frame[lo].to_numpy(float), frame[hi].to_numpy(float)
