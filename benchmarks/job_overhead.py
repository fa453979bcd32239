"""Where a small job's seconds go: imports per workflow script, and whole scoring jobs, for this
tree and an earlier revision side by side in one run (issue 17, item 3).

Most jobs of a study load no model (52 of the default study's 95 score one task each), and a
job is a fresh Python process, so its imports are a fixed cost per job. For every script in
``workflow/scripts`` this times a fresh interpreter importing what the script imports, with
``src/`` of this tree and of ``--baseline-rev`` (extracted with ``git archive``), interleaved
round by round, and lists the heavy packages each loads; then it times whole ``evaluate_job``
processes (an STS task and a transfer task from stored embeddings) the same way, and prints the
evaluate job's largest imports (``python -X importtime``).

    .venv/bin/python benchmarks/job_overhead.py --baseline-rev 418b482 --json overhead.json
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "workflow" / "scripts"
HEAVY = ("torch", "transformers", "peft", "mlflow", "sklearn", "scipy", "pandas", "matplotlib")
LISTING = f"import json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"


def script_imports(script: Path) -> list[str]:
    """The sentscale modules a job script imports at its top level."""
    modules = []
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sentscale"):
            modules.append(node.module)
    return modules


def timed_python(code: str, src: Path) -> tuple[float, list[str]]:
    """Wall seconds of a fresh interpreter running ``code`` with ``src`` first on the path, and
    the heavy packages it loaded."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(src)!r})\n{code}\n{LISTING}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return time.perf_counter() - started, json.loads(out.strip().splitlines()[-1])


def baseline_src(rev: str, into: Path) -> Path:
    """``src/`` of ``rev``, extracted from git into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def scoring_code(npz: Path, task: str, data_dir: Path, out: Path, max_items: int) -> str:
    return (
        "from sentscale.cells import evaluate_job\n"
        "from sentscale.options import EvaluateOptions\n"
        f"evaluate_job({str(npz)!r}, {task!r}, data_dir={str(data_dir)!r}, "
        f"out_json={str(out)!r}, options=EvaluateOptions(max_items={max_items}))"
    )


def compare(cases: dict[str, str], sources: dict[str, Path], repeats: int) -> list[dict]:
    """Median wall seconds of each case under each source tree, interleaved per round."""
    times: dict[tuple[str, str], list[float]] = {}
    loaded: dict[tuple[str, str], list[str]] = {}
    for _ in range(repeats):
        for case, code in cases.items():
            for label, src in sources.items():
                seconds, heavy = timed_python(code, src)
                times.setdefault((case, label), []).append(seconds)
                loaded[case, label] = heavy
    rows = []
    for case in cases:
        row = {"case": case}
        for label in sources:
            row[f"{label}_s"] = round(statistics.median(times[case, label]), 3)
            row[f"{label}_loads"] = loaded[case, label]
        row["ratio"] = round(row["baseline_s"] / row["now_s"], 2)
        rows.append(row)
    return rows


def largest_imports(code: str, src: Path, n: int = 8) -> list[tuple[str, float]]:
    """The ``n`` largest cumulative imports of ``code`` (``-X importtime``), in seconds."""
    err = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            f"import sys; sys.path.insert(0, {str(src)!r})\n{code}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if name.count("  ") <= 1:  # top-level and first-level imports only
                found.append((name.strip(), int(parts[1]) / 1e6))
    return sorted(found, key=lambda item: -item[1])[:n]


def table(rows: list[dict]) -> str:
    lines = [
        "| job (imports or runs) | baseline s | now s | ratio | baseline loads | now loads |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['baseline_s']:.2f} | {r['now_s']:.2f} | {r['ratio']:.2f}× | "
            f"{', '.join(r['baseline_loads']) or '-'} | {', '.join(r['now_loads']) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-rev", default="418b482", help="git revision to compare with")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/senteval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-items", type=int, default=200, help="as the default study")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from sentscale import cells

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = {"baseline": baseline_src(args.baseline_rev, tmp), "now": REPO / "src"}
        cases = {
            f"{p.name}: import": "\n".join(f"import {m}" for m in script_imports(p))
            for p in sorted(SCRIPTS.glob("*.py"))
        }
        # whole scoring jobs on stored embeddings: random and 16-d, so that the job's fixed cost,
        # not the classifier (benchmarks/transfer_benchmark.py), is what is timed
        tasks = ("STSBenchmark", "CR")
        sentences = cells.cell_sentences(tasks, args.data_dir, max_items=args.max_items)
        npz = tmp / "cell.npz"
        rng = np.random.default_rng(0)
        np.savez(
            npz,
            sentences=np.array(sentences, dtype=str),
            embeddings=rng.normal(size=(len(sentences), 16)).astype(np.float32),
        )
        for task in tasks:
            cases[f"evaluate_job {task}: run"] = scoring_code(
                npz, task, args.data_dir, tmp / f"{task}.json", args.max_items
            )
        rows = compare(cases, sources, args.repeats)
        top = largest_imports(cases["evaluate.py: import"], sources["now"])

    print(
        f"fresh interpreters, median of {args.repeats} interleaved rounds; "
        f"baseline = {args.baseline_rev}, now = this tree"
    )
    print(table(rows))
    print(
        "\nevaluate job, largest imports now (cumulative s): "
        + ", ".join(f"{name} {s:.2f}" for name, s in top)
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "evaluate_top_imports": top}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
