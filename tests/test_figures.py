"""The figures' geometry and content: a line per model family, a peak mark no series shares,
a readable per-task grid, and a demo_spread figure whose legend and labels cover no data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from sentscale import aggregate, data, plots  # noqa: E402
from sentscale.aggregate import STS_AVG, TRANSFER_AVG  # noqa: E402
from sentscale.models import Registry  # noqa: E402

REGISTRY = Registry.load()
#: Two families of two sizes each (plus one of a third), two choices, a baseline.
LADDER = ["opt-125m", "opt-350m", "pythia-70m", "pythia-410m", "smollm2-135m"]
CHOICES = [("eol", "none"), ("eol", "smoking")]


@pytest.fixture
def figures(monkeypatch):
    """Every figure drawn, kept open instead of saved."""
    drawn: list[plt.Figure] = []
    for module in ("scaling", "candidates"):
        monkeypatch.setattr(
            f"sentscale.plots.{module}.save", lambda fig, *a, **k: drawn.append(fig)
        )
    yield drawn
    for fig in drawn:
        plt.close(fig)


def _ladder_tables(tasks=("STSBenchmark", "CR")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """STS and transfer tables of the ladder: scores rise with size, so the best cell is also
    its line's peak (ringed in the line's colour, where the old red best-cell ring sat)."""
    rng = np.random.default_rng(0)
    sts_rows, transfer_rows = [], []
    for model in LADDER:
        for k, (prompt, demo) in enumerate(CHOICES):
            params = REGISTRY[model].params
            cell = {"model": model, "params": params, "prompt": prompt, "demo": demo}
            base = 50 + 4 * np.log10(params / 1e7) + 3 * k
            row = dict(cell)
            for task in [t for t in tasks if t in data.STS_TASKS] + [STS_AVG]:
                value = base + rng.normal(0, 0.5)
                row.update({task: value, f"{task} lo": value - 2, f"{task} hi": value + 2})
            sts_rows.append(row)
            row = dict(cell)
            for task in [t for t in tasks if t in data.TRANSFER_TASKS] + [TRANSFER_AVG]:
                row[task] = 75 + k + rng.normal(0, 1)
            transfer_rows.append(row)
    baseline = {"model": "minilm-l6", "params": REGISTRY["minilm-l6"].params}
    baseline |= {"prompt": "native", "demo": "none"}
    sts_rows.append({**baseline, STS_AVG: 77.0, f"{STS_AVG} lo": 75.0, f"{STS_AVG} hi": 79.0})
    transfer_rows.append({**baseline, TRANSFER_AVG: 76.0})
    return pd.DataFrame(sts_rows), pd.DataFrame(transfer_rows)


def _ours(ax) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("ours|")]


def test_scaling_draws_one_line_per_family_and_choice(figures):
    sts, _ = _ladder_tables()
    plots.plot_scaling(sts, STS_AVG, "unused.png", paper=aggregate.paper_results())
    ax = figures[-1].axes[0]
    lines = _ours(ax)
    families = {"opt": 2, "pythia": 2, "smollm2": 1}  # models per family
    assert sorted(ln.get_gid() for ln in lines) == sorted(
        f"ours|{family}|{prompt} / {demo}" for family in families for prompt, demo in CHOICES
    )
    for line in lines:
        family = line.get_gid().split("|")[1]
        assert len(line.get_xdata()) == families[family]  # never a point of another family
    # a colour per choice, a marker per family
    colors = {ln.get_gid().split("|")[2]: ln.get_color() for ln in lines}
    for line in lines:
        assert line.get_color() == colors[line.get_gid().split("|")[2]]
    markers = {ln.get_gid().split("|")[1]: ln.get_marker() for ln in lines}
    assert len(set(markers.values())) == len(families)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {f"{family} (model family)" for family in families} <= set(labels)
    assert "eol / none" in labels and "eol / smoking" in labels


def test_the_peak_mark_is_a_shape_no_series_uses(figures):
    sts, _ = _ladder_tables()
    plots.plot_scaling(sts, STS_AVG, "unused.png", paper=aggregate.paper_results())
    ax = figures[-1].axes[0]
    (peak,) = [ln for ln in ax.get_lines() if ln.get_gid() == "our peak"]
    lms = sts[sts["prompt"] != "native"]
    best = lms.loc[lms[STS_AVG].idxmax()]
    assert peak.get_ydata()[0] == pytest.approx(best[STS_AVG])
    others = {ln.get_marker() for ln in ax.get_lines() if ln is not peak}
    assert peak.get_marker() not in others  # rings, families, baselines, the paper's overlays
    assert peak.get_markeredgecolor() not in {ln.get_color() for ln in _ours(ax)}
    # the legend says what the shape means, with that shape
    entries = dict(
        zip(
            [t.get_text() for t in ax.get_legend().get_texts()],
            ax.get_legend().legend_handles,
            strict=True,
        )
    )
    assert entries["our best cell (hexagon)"].get_marker() == peak.get_marker()
    assert "black hexagon" in ax.get_title()
    # the reserved shapes, whatever the study: no family marker is another series'
    reserved = {plots.PEAK_MARKER, "*", "x"} | {s["marker"] for _, s in plots.PAPER_STYLES.values()}
    assert not reserved & set(plots.FAMILY_MARKERS)


def test_a_model_of_unknown_family_is_never_joined():
    families = plots.model_families(["opt-125m", "mine", "opt-350m"])
    assert families == {"opt-125m": "opt", "mine": "mine", "opt-350m": "opt"}
    # the study's own registry wins over the packaged one
    assert plots.model_families(["opt-125m"], {"opt-125m": "x"}) == {"opt-125m": "x"}


def _inches(fig, artist) -> tuple[float, float]:
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.width / fig.dpi, box.height / fig.dpi


@pytest.mark.parametrize(
    "tasks",
    [data.STS_TASKS + data.TRANSFER_TASKS, ["STSBenchmark", "SICKRelatedness", "CR", "TREC"]],
)
def test_the_task_figure_is_a_grid_of_readable_panels(figures, tasks):
    sts, transfer = _ladder_tables(tasks)
    plots.plot_tasks(sts, transfer, tasks, "unused.png", paper=aggregate.paper_results())
    fig = figures[-1]
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" ")[0] for ax in panels] == list(tasks)
    n_sts = sum(t in data.STS_TASKS for t in tasks)
    ncols = min(4, max(n_sts, len(tasks) - n_sts))
    rows = -(-n_sts // ncols) + -(-(len(tasks) - n_sts) // ncols)
    grid = panels[0].get_subplotspec().get_gridspec()
    assert (grid.nrows, grid.ncols) == (rows, ncols)  # 14 tasks: 4 x 4, not one thin strip
    for ax in panels:
        kind = "STS" if ax.get_title().split(" ")[0] in data.STS_TASKS else "transfer"
        assert ax.get_title().endswith(f"({kind})")
        width, height = _inches(fig, ax)
        assert width >= 3 and height >= 3, (ax.get_title(), width, height)
        assert ax.title.get_fontsize() >= 11 and ax.xaxis.label.get_fontsize() >= 10
        assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 9
    # STS panels first, on rows of their own
    sts_rows = {ax.get_subplotspec().rowspan.start for ax in panels if "(STS)" in ax.get_title()}
    transfer_rows = {
        ax.get_subplotspec().rowspan.start for ax in panels if "(transfer)" in ax.get_title()
    }
    assert max(sts_rows) < min(transfer_rows)
    (legend,) = fig.legends
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 9


def _rankings() -> pd.DataFrame:
    """Three models' candidates; each chosen one (rank 1) is its column's highest dot, where
    the old in-axes legend sat."""
    rows = []
    for m, model in enumerate(["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]):
        scores = [0.50 + 0.08 * m + 0.01 * i for i in range(6)]
        for i, score in enumerate(scores):
            rank = len(scores) - i
            rows.append(
                {
                    "model": model,
                    "prompt": "eol",
                    "candidate": i,
                    "dev_spearman": score,
                    "rank": rank,
                }
            )
    return pd.DataFrame(rows)


def test_demo_spread_legend_and_labels_cover_no_point(figures):
    sizes = {m: REGISTRY[m].params for m in ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]}
    plots.plot_demo_spread(_rankings(), "unused.png", sizes=sizes)
    fig = figures[-1]
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    points = np.vstack([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    chosen = [c for c in ax.collections if len(c.get_offsets()) == 1]  # the red rings
    assert len(chosen) == 3
    for x, y in ax.transData.transform(points):
        assert not legend.contains(x, y)  # no dot under the legend, the chosen ones included
    for text in [t for t in ax.texts if t.get_text().startswith("spread")]:
        box = text.get_window_extent(renderer)
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1  # inside the frame
        assert axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["eol", "chosen"]
