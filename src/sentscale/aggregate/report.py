"""What ``snakemake --report`` shows: the order of tables and figures, their labels, and a rule
graph with one node per rule.

Order. Snakemake's report app lists a category's results as a table with one column per label
and sorts the rows by the label values as text, first label first (it ignores the order of the
rule's outputs), and sorts categories by name. So every result gets a first label ``#``, its
place in the reading order (zero-padded, so that "10" sorts after "9"): the tables as the
argument goes (:data:`REPORT_TABLES`: the overview, STS, transfer, does scale help, the gap to
the paper, cost, the paper's own numbers) and the figures likewise (:data:`REPORT_FIGURES`).

Formats. Each file of a table (HTML, CSV, Markdown, LaTeX) and of a figure (PNG, PDF) is a
result of its own, with a ``file`` label: a row with its own button (HTML, PNG and PDF open in
the report; CSV, Markdown and LaTeX download). The label is the file name, unique per row, not
a two-valued "format": the app turns a label with exactly two values, each on half of the rows
(PNG/PDF), into a toggle that hides one of them.

Rule graph. Snakemake draws the report's workflow graph from the job DAG, keeping one job per
rule *per topological level* (``snakemake.report.rulegraph_spec``). A rule whose jobs sit at
different depths is drawn once per depth: here ``embed`` jobs of cells with a ``select`` demo
come after ``label_candidates`` and ``select_demo``, those of other cells right after
``provision_model``, so ``embed``, ``evaluate_*`` and ``track_cell`` appeared twice.
:func:`rule_graph_spec` draws the graph of rules instead (``snakemake --rulegraph`` has one node
per rule already); :func:`use_rule_graph_spec` puts it in the report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from graphlib import TopologicalSorter
from typing import Any

#: The report's tables in reading order, with what each shows (the ``shows`` label).
REPORT_TABLES: Mapping[str, str] = {
    "scores": "every task and both averages, per cell",
    "sts": "STS per task and average, bootstrap CIs",
    "transfer": "transfer accuracy per task and average",
    "scale": "does scale help? adjacent sizes, paired bootstrap",
    "gap": "ours vs the paper's reported numbers",
    "cost": "throughput, wall time, peak memory per cell",
    "paper": "the paper's reported numbers, with sources",
}
#: The report's figures in reading order, with what each shows.
REPORT_FIGURES: Mapping[str, str] = {
    "scaling_sts": "STS average vs parameters",
    "scaling_transfer": "transfer average vs parameters",
    "tasks": "every task vs parameters",
    "demo_spread": "STS-B dev score of every candidate demonstration",
    "cost": "score vs throughput, memory, wall time",
}
#: Report category of each kind of result (the app lists categories by name).
REPORT_CATEGORIES: Mapping[str, str] = {"table": "Tables", "figure": "Figures"}


def report_labels(kind: str, name: str, ext: str) -> dict[str, str]:
    """Labels of one file in the report: ``#`` (reading order), the table or figure
    (``kind``), what it shows, the file (a row per format). ``kind``: table or figure."""
    order = {"table": REPORT_TABLES, "figure": REPORT_FIGURES}[kind]
    names = list(order)
    place = str(names.index(name) + 1).zfill(len(str(len(names))))
    return {"#": place, kind: name, "shows": order[name], "file": f"{name}.{ext}"}


def rule_graph_spec(dag: Any) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """The report's workflow graph with one node per rule, in the shape of Snakemake's
    ``snakemake.report.rulegraph_spec.rulegraph_spec`` (its data, x and y extent): nodes
    ordered by the topological levels of the rule graph (by name within a level), a link per
    pair of dependent rules; links between neighbouring nodes are "direct" (drawn straight).
    ``dag``: Snakemake's DAG (``jobs``, ``dependencies``)."""
    needs: dict[str, set[str]] = {}
    for job in dag.jobs:
        rule = job.rule.name
        needs.setdefault(rule, set()).update(
            dep.rule.name for dep in dag.dependencies[job] if dep.rule.name != rule
        )
    sorter = TopologicalSorter(needs)  # CycleError for a cycle of rules (jobs have none)
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        level = sorted(sorter.get_ready())
        order += level
        sorter.done(*level)
    nodes = [{"rule": rule, "fx": 10, "fy": i * 50} for i, rule in enumerate(order)]
    index = {rule: i for i, rule in enumerate(order)}

    def links(direct: bool) -> Iterator[dict[str, Any]]:
        for target_rule in order:
            for source_rule in sorted(needs[target_rule]):
                target, source = index[target_rule], index[source_rule]
                if (target - source == 1) == direct:
                    yield {
                        "target": target,
                        "source": source,
                        "sourcerule": source_rule,
                        "targetrule": target_rule,
                        "value": 1,
                    }

    spec = {"nodes": nodes, "links": list(links(False)), "links_direct": list(links(True))}
    return spec, 100, max((node["fy"] for node in nodes), default=0)


def use_rule_graph_spec() -> bool:
    """Make ``snakemake --report`` draw :func:`rule_graph_spec`. Replaces the function the
    HTML report plugin calls only where it is the one this was written against (Snakemake
    9's ``snakemake.report.rulegraph_spec.rulegraph_spec``); returns whether the report now
    uses :func:`rule_graph_spec` (False: Snakemake's own graph, e.g. another version)."""
    try:
        from snakemake.report import html_reporter
        from snakemake.report.rulegraph_spec import rulegraph_spec
    except ImportError:  # the library without the workflow extra: no report to draw
        return False
    current = getattr(html_reporter, "rulegraph_spec", None)
    if current is rulegraph_spec:
        html_reporter.rulegraph_spec = rule_graph_spec
    return getattr(html_reporter, "rulegraph_spec", None) is rule_graph_spec
