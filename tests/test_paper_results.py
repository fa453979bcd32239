"""The paper's reference numbers (``resources/paper_results.csv``): how each row was confirmed,
that the README rows match the authors' README, and that unconfirmed rows are flagged in the
gap table, left out of its headline and drawn hollow."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentscale import aggregate, data, plots
from sentscale.aggregate import STS_AVG, TRANSFER_AVG
from sentscale.errors import DataError

CSV = Path(aggregate.__file__).resolve().parents[1] / "resources" / "paper_results.csv"
MIRROR = Path("/work/.mirror/kongds+scaling_sentemb/repo")
COMMIT = "8567aa083c1b3c77586670f91e7f78eb80694ad3"
README_TAG = f"readme@{COMMIT[:7]}"
FIGURES = [*data.STS_TASKS, STS_AVG, TRANSFER_AVG]


def test_every_row_says_how_it_was_confirmed():
    paper = aggregate.paper_results()
    assert "confirmed" in paper.columns
    assert set(paper["confirmed"]) <= set(aggregate.CONFIRMATIONS)
    assert README_TAG in aggregate.CONFIRMATIONS


def test_exactly_the_readme_rows_are_readme_confirmed():
    paper = aggregate.paper_results()
    from_readme = paper["source"].str.contains("authors' README")
    assert from_readme.sum() == 15  # ICL OPT 125M-66B (8), CSE OPT x4 + LLaMA x3 (7)
    assert (paper.loc[from_readme, "confirmed"] == README_TAG).all()
    # The two zero-shot averages cite the paper, and no reachable copy of its tables has them.
    rest = paper[~from_readme]
    assert sorted(zip(rest["model"], rest["confirmed"], strict=True)) == [
        ("opt-6.7b", "unconfirmed"),
        ("opt-66b", "unconfirmed"),
    ]


@pytest.mark.parametrize(
    ("value", "shown"), [("readme@HEAD", "'readme@HEAD'"), ("", "an empty value"), ("yes", "'yes'")]
)
def test_a_bad_confirmation_names_file_line_and_allowed_values(tmp_path, value, shown):
    lines = CSV.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + "," + value  # the third data row: file line 4
    bad = tmp_path / "paper.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        aggregate.paper_results(bad)
    message = str(err.value)
    assert f"{bad}, line 4:" in message and "'confirmed'" in message
    assert all(c in message for c in aggregate.CONFIRMATIONS)
    assert message.endswith(f"found {shown}")


def test_a_file_without_the_column_is_refused(tmp_path):
    table = pd.read_csv(CSV).drop(columns="confirmed")
    bad = tmp_path / "old.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"old\.csv, line 1: expected a 'confirmed' column"):
        aggregate.paper_results(bad)


def _readme_tables(text: str) -> list[list[list[str]]]:
    """Every <table> of the README as rows of cell texts (tags stripped)."""
    tables = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", text, flags=re.S):
        # The README leaves one <tr> unopened (LLaMA-30B): split on </tr> instead.
        rows = [
            re.findall(r"<td[^>]*>(.*?)</td>", chunk, flags=re.S) for chunk in body.split("</tr>")
        ]
        tables.append([[re.sub(r"<[^>]+>", "", c).strip() for c in r] for r in rows if r])
    return tables


@pytest.mark.skipif(not MIRROR.exists(), reason="no local mirror of kongds/scaling_sentemb")
def test_readme_rows_match_the_readme_at_the_commit():
    text = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "show", f"{COMMIT}:README.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    icl, cse = _readme_tables(text)
    # README row name -> its eight numbers (7 STS tasks, Avg.)
    names = {}
    for row in icl:
        names[("PromptEOL+ICL", row[0].lower().replace(" ", "-"))] = row[1:]
    for row in cse:
        if row[0]:
            names[("PromptEOL+CSE", row[0].removeprefix("royokong/prompteol-"))] = row[1:]
    columns = [*data.STS_TASKS, STS_AVG]
    paper = aggregate.paper_results()
    readme_rows = paper[paper["confirmed"] == README_TAG]
    assert len(readme_rows) == len(names) == 15
    for _, row in readme_rows.iterrows():
        expected = names[(row["setting"], row["model"])]
        assert [f"{row[c]:.2f}" for c in columns] == expected, (row["setting"], row["model"])


def _gap_inputs() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Our cells: OPT-1.3B with a demo (README-confirmed ICL figures, STS CI given) and
    zero-shot OPT-66B / OPT-6.7B (the two unconfirmed averages)."""
    icl = {"model": "opt-1.3b", "params": 1.3e9, "prompt": "eol", "demo": "icl"}
    sts = [{**icl, **dict.fromkeys(data.STS_TASKS, 75.0), STS_AVG: 75.0}]
    sts[0].update({f"{t} lo": 70.0 for t in [*data.STS_TASKS, STS_AVG]})
    sts[0].update({f"{t} hi": 80.0 for t in [*data.STS_TASKS, STS_AVG]})
    zero = {"prompt": "eol", "demo": "none"}
    sts.append(
        {"model": "opt-66b", "params": 66e9, **zero, **dict.fromkeys(data.STS_TASKS, 70.0)}
        | {STS_AVG: 70.0}
    )
    transfer = pd.DataFrame(
        [
            {"model": "opt-6.7b", "params": 6.7e9, **zero}
            | dict.fromkeys(data.TRANSFER_TASKS, 90.0)
            | {TRANSFER_AVG: 90.0}
        ]
    )
    return pd.DataFrame(sts), transfer, {"none": "none", "icl": "fixed"}


def test_gap_table_carries_the_flag_and_the_headline_skips_unconfirmed_rows():
    sts, transfer, kinds = _gap_inputs()
    gap = aggregate.gap_table(
        sts, transfer, aggregate.paper_results(), eol_prompts=["eol"], demo_kinds=kinds
    )
    assert "confirmed" in gap.columns
    flags = dict(zip(zip(gap["model"], gap["task"], strict=True), gap["confirmed"], strict=True))
    assert flags[("opt-66b", STS_AVG)] == "unconfirmed"
    assert flags[("opt-6.7b", TRANSFER_AVG)] == "unconfirmed"
    icl = gap[gap["model"] == "opt-1.3b"]
    assert len(icl) == 8 and (icl["confirmed"] == README_TAG).all()
    assert len(gap) == 10

    head = aggregate.gap_headline(gap)
    assert head["figures"] == 8 and head["unconfirmed"] == 2
    # ours 75 against the README's OPT-1.3B row; the unconfirmed deltas (+1.16, -1.34) are out
    assert head["mean delta"] == pytest.approx(round(icl["delta"].mean(), 2))
    assert head["mean delta"] != pytest.approx(round(gap["delta"].mean(), 2))
    assert head["mean |delta|"] == pytest.approx(round(icl["delta"].abs().mean(), 2))
    assert head["with CI"] == 8 and head["paper in CI"] == int(icl["paper in CI"].sum())

    caption = aggregate.gap_caption(gap, "95% CI")
    assert "over 8 confirmed figures" in caption
    assert "2 unconfirmed rows (paper text only) not summarised" in caption


def test_headline_of_only_unconfirmed_rows_is_empty():
    sts, transfer, kinds = _gap_inputs()
    gap = aggregate.gap_table(
        sts[sts["demo"] == "none"],
        transfer,
        aggregate.paper_results(),
        eol_prompts=["eol"],
        demo_kinds=kinds,
    )
    head = aggregate.gap_headline(gap)
    assert len(gap) == 2 and head["figures"] == 0 and np.isnan(head["mean delta"])
    assert "confirmed figures" not in aggregate.gap_caption(gap, "95% CI")


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """plot_scaling's figure, kept open instead of saved."""
    figures = []
    monkeypatch.setattr("sentscale.plots.scaling.save", lambda fig, *a, **k: figures.append(fig))

    def draw(column: str, paper: pd.DataFrame):
        ours = pd.DataFrame([{"model": "m", "params": 1e8, "prompt": "eol", "demo": "none"}])
        plots.plot_scaling(ours.assign(**{column: 60.0}), column, tmp_path / "f.png", paper=paper)
        return figures[-1].axes[0]

    yield draw
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)


def _lines_with_points(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) and ln.get_marker() != "None"]


@pytest.mark.parametrize(("column", "model"), [(STS_AVG, "opt-66b"), (TRANSFER_AVG, "opt-6.7b")])
def test_unconfirmed_points_are_hollow_with_their_own_legend_entry(drawn, column, model):
    paper = aggregate.paper_results()
    ax = drawn(column, paper)
    unconfirmed = paper[(paper["confirmed"] == "unconfirmed") & paper[column].notna()]
    assert list(unconfirmed["model"]) == [model]
    hollow = [ln for ln in _lines_with_points(ax) if ln.get_markerfacecolor() == "none"]
    hollow = [ln for ln in hollow if ln.get_markersize() < 13]  # not our peak rings
    assert len(hollow) == 1
    (point,) = hollow
    assert point.get_linestyle() == "None"  # never joined to a confirmed line
    assert list(point.get_xdata()) == [float(unconfirmed["params"].iloc[0])]
    assert list(point.get_ydata()) == [float(unconfirmed[column].iloc[0])]
    labels = ax.get_legend_handles_labels()[1]
    assert point.get_label() in labels and point.get_label().endswith(plots.UNCONFIRMED_LABEL)
    assert plots.UNCONFIRMED_LABEL == "unconfirmed (paper text only)"


def test_confirmed_points_stay_filled(drawn):
    paper = aggregate.paper_results()
    ax = drawn(STS_AVG, paper)
    icl = paper[(paper["setting"] == "PromptEOL+ICL") & paper[STS_AVG].notna()]
    lines = [ln for ln in _lines_with_points(ax) if len(ln.get_xdata()) == len(icl)]
    assert len(lines) == 1 and lines[0].get_markerfacecolor() != "none"
    # the same row flagged unconfirmed turns hollow and leaves the line
    flagged = paper.copy()
    flagged.loc[icl.index[0], "confirmed"] = "unconfirmed"
    ax = drawn(STS_AVG, flagged)
    hollow = [
        ln
        for ln in _lines_with_points(ax)
        if ln.get_markerfacecolor() == "none" and ln.get_markersize() < 13
    ]
    xs = sorted(x for ln in hollow for x in ln.get_xdata())
    assert float(icl["params"].iloc[0]) in xs
    assert any(len(ln.get_xdata()) == len(icl) - 1 for ln in _lines_with_points(ax))


def test_a_reference_table_without_the_flag_is_not_drawn_as_confirmed(drawn):
    with pytest.raises(DataError, match="'confirmed' column"):
        drawn(STS_AVG, aggregate.paper_results().drop(columns="confirmed"))
