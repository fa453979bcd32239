"""What a user of a finished study reads: table titles and notes, the empty gap table, the
Snakemake report's order, rows and links, and a rule graph with one node per rule."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from graphlib import TopologicalSorter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sentscale import aggregate, io, sts
from sentscale.aggregate import Bootstrap
from sentscale.models import Registry

BOOT = Bootstrap(resamples=1000, confidence=0.95, seed=7)
FORMATS = {"csv": "csv", "markdown": "md", "latex": "tex", "html": "html"}
TABLE_ORDER = ["scores", "sts", "transfer", "scale", "gap", "cost", "paper"]
FIGURE_ORDER = ["scaling_sts", "scaling_transfer", "tasks", "demo_spread", "cost"]


def _write_study(root: Path, models: list[str], max_items: int | None) -> list[Path]:
    """Score files of eol/none cells of ``models`` on STS-B and CR, as the evaluate jobs write
    them (``protocol.max_items`` included)."""
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 120)
    files = []
    for i, model in enumerate(models):
        cell = {"model": model, "prompt": "eol", "demo": "none"}
        system = gold + rng.normal(0, 1 + i, len(gold))
        figures = sts.correlations(system, gold)
        results = {
            "STSBenchmark": {
                "score": 100.0 * figures["spearman"],
                "metric": "spearman_test_x100",
                "test": figures,
                "pairs": sts.scored_pairs({"test": (system, gold)}),
            },
            "CR": {"score": 80.0 + i, "accuracy": 80.0 + i, "metric": "accuracy_x100"},
        }
        for task, result in results.items():
            path = root / "scores" / model / "eol" / "none" / f"{task}.json"
            protocol = {"max_items": max_items, "seed": 1111}
            io.write_json(
                path, {"task": task, "cell": cell, "n": 120, "protocol": protocol, **result}
            )
            files.append(path)
    return files


def _tables(tmp_path: Path, models: list[str], max_items: int | None, **kwargs) -> dict:
    files = _write_study(tmp_path, models, max_items)
    sizes = {m: Registry.load()[m].params for m in models}
    out = {
        name: {fmt: tmp_path / "tables" / f"{name}.{ext}" for fmt, ext in FORMATS.items()}
        for name in TABLE_ORDER
    }
    aggregate.aggregate_job(
        files, tasks=["STSBenchmark", "CR"], sizes=sizes, out=out, boot=BOOT, **kwargs
    )
    return out


def _first_lines(paths: dict[str, Path]) -> dict[str, str]:
    """The line of each display format that must carry the note."""
    html = paths["html"].read_text(encoding="utf-8")
    return {
        "markdown": paths["markdown"].read_text(encoding="utf-8").splitlines()[0],
        "latex": paths["latex"].read_text(encoding="utf-8").splitlines()[0],
        "html title": re.search(r"<title>(.*?)</title>", html).group(1),
        "html first line": re.search(r"<body><p>(.*?)</p>", html).group(1),
    }


def test_every_table_of_a_subsampled_study_says_so_on_its_first_line(tmp_path):
    out = _tables(tmp_path, ["smollm2-135m", "gemma3-270m"], max_items=200)
    for name, paths in out.items():
        lines = _first_lines(paths)
        for where, line in lines.items():
            assert "Subsampled study" in line and "evaluate.max_items: 200" in line, (name, where)
        assert lines["latex"].startswith("% ")  # a comment: the tabular still \inputs as is
        # the CSV stays data only: its first line is the header, pandas reads the rows as is
        csv = paths["csv"].read_text(encoding="utf-8")
        assert "Subsampled" not in csv
        assert csv.splitlines()[0].split(",")[0] in {"model", "setting", "prompt"}
    # the paper's own numbers are not subsampled: their note says whose numbers these are
    assert "the paper's numbers on the full test sets" in _first_lines(out["paper"])["markdown"]
    assert "indicative numbers" in _first_lines(out["scores"])["markdown"]


def test_a_full_study_has_no_subsample_note(tmp_path):
    out = _tables(tmp_path, ["smollm2-135m", "gemma3-270m"], max_items=None)
    for name, paths in out.items():
        for fmt in ("markdown", "latex", "html"):
            assert "Subsampled" not in paths[fmt].read_text(encoding="utf-8"), (name, fmt)
    first = out["scores"]["markdown"].read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("Scores (x100) per cell")  # the caption is still the first line


def test_the_note_counts_subsampled_files_when_a_study_mixes_them():
    note = aggregate.subsample_note([200, None, 200, None])
    assert "2 of this study's 4 score files" in note and "evaluate.max_items: 200" in note
    assert aggregate.subsample_note([None, None]) == ""


def test_an_empty_gap_table_says_why_in_every_display_format(tmp_path):
    models = ["smollm2-135m", "gemma3-270m"]  # the paper reports neither
    out = _tables(tmp_path, models, max_items=200, eol_prompts=["eol"], demo_kinds={"none": "none"})
    gap = out["gap"]
    assert pd.read_csv(gap["csv"]).empty  # data only: no explanation row to mistake for data
    for fmt in ("markdown", "latex", "html"):
        text = gap[fmt].read_text(encoding="utf-8")
        assert "(no rows)" not in text, fmt
        assert "No rows: the gap table compares each cell with a PromptEOL prompt (eol)" in text
        # per setting: whom the paper reports (zero-shot: two OPT sizes) and whom we scored
        assert (
            "No model is in both: PromptEOL: the paper reports opt-66b, opt-6.7b, this study "
            "scores smollm2-135m, gemma3-270m." in text
        ), fmt
    markdown = gap["markdown"].read_text(encoding="utf-8")
    assert "|---|" in markdown  # a header with its separator: an empty table, not stray text
    assert "\\multicolumn{13}" in gap["latex"].read_text(encoding="utf-8")


def test_the_gap_explanation_names_the_condition_no_cell_meets():
    paper = aggregate.paper_results()
    kinds = {"none": "none", "icl": "per_model", "mine": "fixed"}

    def explain(cells):
        args = dict(eol_prompts=["eol"], demo_kinds=kinds)
        assert aggregate.gap_table(cells, cells.iloc[:0], paper, **args).empty
        return aggregate.gap_explanation(cells, cells.iloc[:0], paper, **args)

    def cell(model, prompt, demo, **scores):
        params = Registry.load()[model].params
        return {"model": model, "params": params, "prompt": prompt, "demo": demo, **scores}

    no_prompt = explain(pd.DataFrame([cell("opt-125m", "avg", "none")]))
    assert "this study has no such cell (its prompts: avg)" in no_prompt
    # opt-125m is reported with a demonstration (ICL), not zero-shot: said per setting
    cells = [cell("opt-125m", "eol", "none"), cell("pythia-70m", "eol", "mine")]
    unmatched = explain(pd.DataFrame(cells))
    assert (
        "PromptEOL: the paper reports opt-66b, opt-6.7b, this study scores opt-125m;" in unmatched
    )
    assert "PromptEOL+ICL: the paper reports opt-125m, opt-350m, opt-1.3b" in unmatched
    assert unmatched.endswith(", opt-66b, this study scores pythia-70m.")
    unknown = explain(pd.DataFrame([cell("opt-125m", "eol", "other")]))
    assert "no demonstration choice of this study's PromptEOL cells (other)" in unknown
    # a counterpart, but the paper's zero-shot opt-66b row has only the STS average
    matched = explain(pd.DataFrame([cell("opt-66b", "eol", "none", STS12=60.0)]))
    assert "1 cells (opt-66b) have a counterpart, but none scores a figure" in matched


# --- the report's order and rows ----------------------------------------------------------


def _app_order(labels: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows as Snakemake's report app orders a category: by label values, first label first
    (abstract_results.js, localeCompare; our values are lower-case ASCII and digits)."""
    return sorted(labels, key=lambda lab: [str(v).lower() for v in lab.values()])


def _toggle_labels(labels: list[dict[str, str]]) -> list[str]:
    """Labels the app would turn into a toggle (hiding half of the rows): any but the first
    with exactly two values, each on half of the rows."""
    keys = list(labels[0])[1:]
    toggles = []
    for key in keys:
        counts = Counter(lab[key] for lab in labels)
        if len(counts) == 2 and set(counts.values()) == {len(labels) / 2}:
            toggles.append(key)
    return toggles


def test_report_rows_follow_the_argument_one_row_per_file():
    tables = [
        aggregate.report_labels("table", name, ext)
        for name in reversed(aggregate.REPORT_TABLES)  # the outputs' order does not matter
        for ext in FORMATS.values()
    ]
    order = list(dict.fromkeys(lab["table"] for lab in _app_order(tables)))
    assert order == TABLE_ORDER  # not alphabetical (cost, gap, paper, scale, scores, ...)
    figures = [
        aggregate.report_labels("figure", name, ext)
        for name in sorted(aggregate.REPORT_FIGURES)
        for ext in ("png", "pdf")
    ]
    assert list(dict.fromkeys(lab["figure"] for lab in _app_order(figures))) == FIGURE_ORDER
    for labels in (tables, figures):
        assert len({lab["file"] for lab in labels}) == len(labels)  # a row per file
        assert _toggle_labels(labels) == []  # no PNG/PDF toggle hides half of them
    # the place sorts as text, so it is zero-padded once there are ten or more entries
    assert aggregate.report_labels("table", "scores", "csv")["#"] == "1"


# --- the rule graph -----------------------------------------------------------------------


def _fake_dag(edges: list[tuple[str, str]]) -> SimpleNamespace:
    """A job DAG ``(job, dependency)`` with jobs named ``rule:cell``, as Snakemake's DAG
    exposes it to the report (jobs, dependencies, toposorted levels)."""

    class Job:  # hashed by identity, as Snakemake's jobs in the DAG's sets
        def __init__(self, name: str):
            self.rule = SimpleNamespace(name=name.split(":")[0])

    jobs: dict[str, Job] = {}

    def job(name):
        return jobs.setdefault(name, Job(name))

    dependencies: dict = {}
    for child, parent in edges:
        dependencies.setdefault(job(child), set()).add(job(parent))
        dependencies.setdefault(job(parent), set())

    def toposorted():
        sorter = TopologicalSorter(dependencies)
        sorter.prepare()
        levels = []
        while sorter.is_active():
            level = set(sorter.get_ready())
            sorter.done(*level)
            levels.append(level)
        return levels

    return SimpleNamespace(
        jobs=list(dependencies), dependencies=dependencies, toposorted=toposorted
    )


#: The default study's shape: a `select` cell's embed job sits three jobs deep, a fixed-demo
#: cell's one job deep; evaluate and track jobs follow each.
SELECT_DAG = [
    ("label_candidates:m", "provision_model:m"),
    ("select_demo:m", "label_candidates:m"),
    ("select_demo:m", "provision_model:m"),
    ("embed:m/selected", "select_demo:m"),
    ("embed:m/selected", "provision_model:m"),
    ("embed:m/none", "provision_model:m"),
    ("evaluate_sts:m/selected", "embed:m/selected"),
    ("evaluate_sts:m/none", "embed:m/none"),
    ("track_cell:m/selected", "evaluate_sts:m/selected"),
    ("track_cell:m/none", "evaluate_sts:m/none"),
    ("all", "track_cell:m/selected"),
    ("all", "track_cell:m/none"),
]


def test_the_report_rule_graph_has_one_node_per_rule():
    from snakemake.report.rulegraph_spec import rulegraph_spec

    dag = _fake_dag(SELECT_DAG)
    theirs = Counter(n["rule"] for n in rulegraph_spec(dag)[0]["nodes"])
    assert theirs["embed"] == 2  # Snakemake's own: one node per rule and depth
    spec, xmax, ymax = aggregate.rule_graph_spec(dag)
    nodes = [n["rule"] for n in spec["nodes"]]
    assert Counter(nodes) == Counter(set(nodes)) and len(nodes) == 7
    # every dependency between rules is a link, and links point down the list
    every = spec["links"] + spec["links_direct"]
    links = {(link["sourcerule"], link["targetrule"]) for link in every}
    expected = {(p.split(":")[0], c.split(":")[0]) for c, p in SELECT_DAG}
    assert links == expected
    for link in every:
        assert nodes[link["source"]] == link["sourcerule"] and link["source"] < link["target"]
        assert (link["target"] - link["source"] == 1) == (link in spec["links_direct"])
    assert nodes.index("embed") > nodes.index("select_demo")  # after all its dependencies
    assert (xmax, ymax) == (100, 50 * (len(nodes) - 1))


def test_the_report_draws_our_rule_graph(monkeypatch):
    from snakemake.report import html_reporter
    from snakemake.report.rulegraph_spec import rulegraph_spec

    monkeypatch.setattr(html_reporter, "rulegraph_spec", rulegraph_spec)
    assert aggregate.use_rule_graph_spec() is True
    assert html_reporter.rulegraph_spec is aggregate.rule_graph_spec
    assert aggregate.use_rule_graph_spec() is True  # parsing the Snakefile again: still ours
    monkeypatch.setattr(html_reporter, "rulegraph_spec", lambda dag: None)
    assert aggregate.use_rule_graph_spec() is False  # an unknown drawer is left alone


@pytest.mark.parametrize("config", ["config.yaml", "paper.yaml"])
def test_rulegraph_has_one_node_per_rule(tmp_path, repo_root, data_dir, config):
    from conftest import run_snakemake

    overrides = {"data_dir": str(data_dir)} if config == "config.yaml" else None
    proc = run_snakemake(
        tmp_path, "--rulegraph", configfile=repo_root / "config" / config, config=overrides
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = Counter(re.findall(r'\[label = "([^"]+)"', proc.stdout))
    assert {"embed", "evaluate_sts", "evaluate_transfer", "track_cell", "aggregate"} <= set(rules)
    assert {rule: n for rule, n in rules.items() if n > 1} == {}


# --- the report of a real study -----------------------------------------------------------


def _report_data(html: str, name: str):
    match = re.search(rf'<script id="{name}">\s*var \w+ = (.*?);\s*</script>', html, re.S)
    return json.loads(match.group(1))


@pytest.mark.integration
@pytest.mark.slow
def test_the_report_lists_every_file_in_order_with_one_node_per_rule(
    local_test_study, test_study_config
):
    from conftest import TEST_STUDY_CONFIG, run_snakemake

    report = local_test_study / "report-order.html"
    proc = run_snakemake(
        local_test_study, "--report", str(report),
        configfile=TEST_STUDY_CONFIG, config=test_study_config,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = report.read_text(encoding="utf-8")
    results, categories = _report_data(html, "results"), _report_data(html, "categories")
    assert set(categories) == {"Tables", "Figures"}
    for category, order, n_formats in (
        ("Tables", TABLE_ORDER, 4),
        ("Figures", FIGURE_ORDER, 2),
    ):
        paths = [p for sub in categories[category].values() for p in sub]
        labels = [results[p]["labels"] for p in paths]
        kind = "table" if category == "Tables" else "figure"
        assert list(dict.fromkeys(lab[kind] for lab in _app_order(labels))) == order
        assert len(paths) == len(order) * n_formats and _toggle_labels(labels) == []
        for path in paths:  # each row's link carries the file itself
            uri = results[path]["data_uri"]
            data = base64.b64decode(uri.split("base64,", 1)[1])
            assert data == (local_test_study / path).read_bytes(), path
    nodes = [n["rule"] for n in _report_data(html, "rulegraph")["data"][0]["values"]]
    assert "embed" in nodes and Counter(nodes) == Counter(set(nodes))
