"""Writing tables (CSV plus Markdown, LaTeX and HTML with CIs folded in) and the study's set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

import pandas as pd

from .. import io
from .bootstrap import DEFAULT_BOOTSTRAP, Bootstrap, bootstrap_all
from .cost import cost_table
from .paper import gap_caption, gap_explanation, gap_table, paper_results
from .scores import format_params, load_scores, read_results, score_table
from .tables import scale_table, sts_table, transfer_table


def _ci_text(value: float, lo: float, hi: float) -> str:
    if pd.isna(value):
        return ""
    if pd.isna(lo) or pd.isna(hi):
        return f"{value:.2f}"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def with_ci_text(table: pd.DataFrame) -> pd.DataFrame:
    """Fold ``<col> lo`` / ``<col> hi`` into ``<col>`` as '71.09 [65.20, 76.00]' for display."""
    shown = table.copy()
    for col in [c for c in table.columns if f"{c} lo" in table.columns]:
        shown[col] = [
            _ci_text(v, lo, hi)
            for v, lo, hi in zip(table[col], table[f"{col} lo"], table[f"{col} hi"], strict=True)
        ]
        shown = shown.drop(columns=[f"{col} lo", f"{col} hi"])
    return shown


def _p_text(p: float) -> str:
    if pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    shown = with_ci_text(table)
    if "p value" in shown.columns:
        shown["p value"] = shown["p value"].map(_p_text)
    for col in ("params", "params smaller", "params larger"):
        if col in shown.columns:
            shown[col] = shown[col].map(format_params)
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    return shown


def subsample_note(max_items: Iterable[int | None], *, reference: bool = False) -> str:
    """One sentence for the first line of every table of a subsampled study, from the score
    files' ``protocol.max_items`` (None: every item); '' when no file was subsampled.
    ``reference``: for the table of the paper's own numbers (full test sets)."""
    values = list(max_items)
    limits = sorted({v for v in values if v is not None})
    if not limits:
        return ""
    shown = ", ".join(str(v) for v in limits)
    scored = f"seeded subsamples of at most {shown} items per split (evaluate.max_items: {shown})"
    if len(limits) == 1 and None not in values:
        what = f"this study scored every task on {scored}"
    else:
        subsampled = sum(v is not None for v in values)
        what = f"{subsampled} of this study's {len(values)} score files come from {scored}"
    if reference:
        return (
            f"Subsampled study: {what}; these are the paper's numbers on the full test sets, "
            "not comparable with this study's."
        )
    return (
        f"Subsampled study: {what}, not the full test sets: indicative numbers, not comparable "
        "with the paper's."
    )


def _tex_escape(text: str) -> str:
    specials = {
        "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
    }  # fmt: skip
    return "".join(specials.get(c, c) for c in text)


def write_table(
    table: pd.DataFrame,
    *,
    csv: str | Path,
    markdown: str | Path | None = None,
    latex: str | Path | None = None,
    html: str | Path | None = None,
    caption: str = "",
    note: str = "",
    empty: str = "(no rows)",
) -> None:
    """CSV (numbers, CI columns separate) plus display formats with CIs folded in.

    The display formats open with ``caption`` and ``note`` (e.g. :func:`subsample_note`) on
    their first line (Markdown: the first line; HTML: the title and first paragraph; LaTeX: a
    comment above the tabular) and say ``empty`` where a table has no rows (LaTeX: a row
    spanning the columns). The CSV stays data only (header and rows, nothing else) so that
    pandas and spreadsheets read it as it is: a note or an empty-table explanation there
    would be read as a row of data."""
    io.atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    shown = _display(table)
    title = ". ".join(part for part in (caption, note) if part)
    if markdown is not None:
        body = (
            shown.to_markdown(index=False, floatfmt=".2f", disable_numparse=True)
            if len(shown)
            else "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns)
            + f"\n\n{empty}"
        )  # fmt: skip
        heading = caption + (f". **{note}**" if note else "")
        text = f"{heading}\n\n{body}" if heading else body
        io.atomic_write(markdown, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    if latex is not None:
        tex = shown.to_latex(index=False, float_format="%.2f", escape=True, na_rep="--")
        if not len(shown):
            span = f"\\multicolumn{{{len(shown.columns)}}}{{p{{0.9\\linewidth}}}}"
            tex = tex.replace("\\bottomrule", f"{span}{{{_tex_escape(empty)}}} \\\\\n\\bottomrule")
        if title:
            tex = f"% {title}\n{tex}"  # a comment: the file stays a bare tabular to \input
        io.atomic_write(latex, lambda tmp: tmp.write_text(tex, encoding="utf-8"))
    if html is not None:
        body = shown.to_html(index=False, float_format="{:.2f}".format, na_rep="", border=0)
        heading = escape(caption, quote=False) + (
            f". <strong>{escape(note, quote=False)}</strong>" if note else ""
        )
        page = _HTML.format(
            title=escape(title, quote=False),
            heading=heading,
            body=body if len(shown) else f"<p>{escape(empty, quote=False)}</p>",
        )
        io.atomic_write(html, lambda tmp: tmp.write_text(page, encoding="utf-8"))


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; font-size: 13px; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f3f3f3; }}
</style></head>
<body><p>{heading}</p>
{body}
</body></html>
"""


def write_score_tables(
    score_files: Iterable[str | Path],
    *,
    tasks: Sequence[str],
    sizes: Mapping[str, int],
    csv: str | Path,
    markdown: str | Path,
    latex: str | Path,
    html: str | Path | None = None,
) -> pd.DataFrame:
    """The overview table (point estimates of every task, both averages)."""
    table = score_table(load_scores(score_files), tasks, sizes=sizes)
    write_table(
        table,
        csv=csv,
        markdown=markdown,
        latex=latex,
        html=html,
        caption="Scores (x100) per cell; STS: Spearman, transfer: accuracy",
    )
    return table


def aggregate_job(
    score_files: Sequence[str | Path],
    *,
    tasks: Sequence[str],
    sizes: Mapping[str, int],
    out: Mapping[str, Mapping[str, str | Path]],
    boot: Bootstrap = DEFAULT_BOOTSTRAP,
    eol_prompts: Sequence[str] = ("eol", "eol-paper-text"),
    demo_kinds: Mapping[str, str] | None = None,
    embed_meta: Iterable[str | Path] = (),
    embed_benchmarks: Iterable[str | Path] = (),
    evaluate_benchmarks: Iterable[str | Path] = (),
    paper_csv: str | Path | None = None,
) -> dict[str, pd.DataFrame]:
    """The ``aggregate`` rule: every table of the study. ``sizes``: model -> parameter count
    (the study's registry; rows sort by it). ``out``: table name (scores, sts, transfer, gap,
    scale, cost, paper) -> {csv, markdown, latex, html} paths; a name missing from ``out`` is
    not written."""
    results = read_results(score_files)
    boots = bootstrap_all(results, boot)
    sts = sts_table(results, tasks, boots, boot, sizes=sizes)
    transfer = transfer_table(results, tasks, sizes=sizes)
    paper = paper_results(paper_csv)
    kinds = demo_kinds if demo_kinds is not None else {"none": "none"}
    # every score file's protocol.max_items (None: all items), for the gap table and the notes
    max_items = [
        (r.get("protocol") or {}).get("max_items") for by in results.values() for r in by.values()
    ]
    tables = {
        "scores": score_table(load_scores(score_files), tasks, sizes=sizes),
        "sts": sts,
        "transfer": transfer,
        "gap": gap_table(
            sts,
            transfer,
            paper,
            eol_prompts=eol_prompts,
            demo_kinds=kinds,
            max_items=max(set(max_items) - {None}, default=None),
        ),
        "scale": scale_table(results, tasks, boots, boot, sizes=sizes),
        "cost": cost_table(
            results,
            embed_meta=embed_meta,
            embed_benchmarks=embed_benchmarks,
            evaluate_benchmarks=evaluate_benchmarks,
            sizes=sizes,
        ),
        "paper": paper,
    }
    ci = f"{boot.confidence:.0%} bootstrap CI, {boot.resamples} resamples, seed {boot.seed}"
    captions = {
        "scores": "Scores (x100) per cell; STS: Spearman, transfer: accuracy",
        "sts": f"STS Spearman x100 per task and average [{ci}]",
        "transfer": "Transfer accuracy (MRPC also F1) per task and average",
        "gap": gap_caption(tables["gap"], ci),
        "scale": f"Does scale help? Adjacent sizes, paired bootstrap on the same pairs [{ci}]",
        "cost": "Cost per cell: embedding throughput, wall time, peak memory",
        "paper": "The paper's reported figures (reference, with sources and how each was "
        "confirmed)",
    }
    empty = {
        "gap": gap_explanation(
            sts,
            transfer,
            paper,
            eol_prompts=eol_prompts,
            demo_kinds=kinds,
        )
    }
    for name, paths in out.items():
        write_table(
            tables[name],
            caption=captions[name],
            note=subsample_note(max_items, reference=name == "paper"),
            empty=empty.get(name, "(no rows)"),
            **paths,
        )
    return tables
