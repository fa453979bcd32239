"""What a user sees (issue 18): the Snakemake report and the MLflow UI in headless Chromium.

The browser is Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it with apt)
driven by ``playwright`` (the ``test`` extra; no browser is downloaded). The tests skip only
when that Chromium is absent. They open the report of the tests' real study
(``local_test_study``) as a reader does, and run ``scripts/screenshots.py`` on it end to end;
the browser helpers are that script's, loaded from its file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, TEST_STUDY_CONFIG, run_snakemake

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = REPO_ROOT / "scripts" / "screenshots.py"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: apt-get install chromium chromium-driver (.ci/run does)",
)

#: The report's tables in reading order (issue 18): the overview, STS, transfer, does scale
#: help, the gap to the paper, cost, the paper's own numbers.
TABLE_ORDER = ("scores", "sts", "transfer", "scale", "gap", "cost", "paper")
FIGURES = ("scaling_sts", "scaling_transfer", "tasks", "demo_spread", "cost")
TABLE_FORMATS = ("html", "csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
#: The formats the report opens itself (a view button), by the type its data URI has; the
#: others (CSV, Markdown, LaTeX) are links that download the file.
OPENED = {"html": "text/html", "png": "image/png", "pdf": "application/pdf"}
TIMEOUT_MS = 120_000


def load_screenshots():
    spec = importlib.util.spec_from_file_location("sentscale_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = load_screenshots()


@pytest.fixture(scope="module")
def report(local_test_study, test_study_config, tmp_path_factory) -> Path:
    """The test study's report, built as README says (``snakemake --report``)."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_snakemake(
        local_test_study, "--report", str(path),
        configfile=TEST_STUDY_CONFIG, config=test_study_config,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return path


@pytest.fixture(scope="module")
def report_rows(report) -> list[dict]:
    """Every row of every results list of the report, as a reader meets them: category, labels,
    the result path its button leads to, and how (``view`` in the report or ``download``)."""
    rows = []
    with shots.chromium(str(CHROMIUM)) as browser:
        page = shots.fresh_page(browser)
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        shots.open_report(page, report, TIMEOUT_MS)
        for category, subcategories in shots.report_categories(page).items():
            for subcategory in subcategories:
                shots.open_category(page, report, category, subcategory, TIMEOUT_MS)
                for row in shots.result_rows(page):
                    rows.append({**row, "category": category, "subcategory": subcategory})
        assert not errors, errors
    return rows


@pytest.mark.integration
@pytest.mark.slow
def test_the_report_lists_the_tables_in_reading_order(report_rows):
    tables = [r for r in report_rows if (r["path"] or "").startswith("results/tables/")]
    assert {r["category"] for r in tables} == {"Tables"}, "every table in the Tables category"
    listed = [r for r in report_rows if r["category"] == "Tables"]
    order = list(dict.fromkeys(Path(r["path"]).stem for r in listed))
    assert order == list(TABLE_ORDER), [r["labels"] for r in listed]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("folder", "names", "formats"),
    [("tables", TABLE_ORDER, TABLE_FORMATS), ("plots", FIGURES, FIGURE_FORMATS)],
    ids=["tables", "figures"],
)
def test_every_format_of_every_table_and_figure_is_a_link_in_the_report(
    report_rows, local_test_study, folder, names, formats
):
    """HTML tables and PNG/PDF figures open in the report; CSV, Markdown and LaTeX download,
    each link holding exactly the file of results/."""
    by_path = {}
    for row in report_rows:
        by_path.setdefault(row["path"], row)
    missing = []
    for name in names:
        for ext in formats:
            path = f"results/{folder}/{name}.{ext}"
            row = by_path.get(path)
            if row is None or not row["href"]:
                missing.append(path)
                continue
            how = "view" if ext in OPENED else "download"
            assert row["link"] == how, (path, row["link"])
            if how == "view":
                assert row["href"].startswith(f"data:{OPENED[ext]}"), (path, row["href"][:80])
            # the link holds the file itself
            assert shots.data_uri_bytes(row["href"]) == (local_test_study / path).read_bytes()
    assert not missing, f"not reachable from the report: {missing}"


def png_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=float)


@pytest.mark.integration
@pytest.mark.slow
def test_screenshots_script_end_to_end(local_test_study, test_study_config, tmp_path):
    out = tmp_path / "shots"
    config = [f"{key}={value}" for key, value in test_study_config.items()]
    cmd = [
        sys.executable, str(SCRIPT), str(local_test_study), "--out", str(out),
        "--configfile", str(TEST_STUDY_CONFIG), "--config", *config,
        "--chromium", str(CHROMIUM), "--timeout", "120",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    sweep = json.loads((local_test_study / "results/tracking/parent.json").read_text())
    if sweep["tracking_uri"].startswith("sqlite:"):  # it served the store, and stopped it
        stopped = re.search(r"stopped mlflow server \(pid (\d+)\)", proc.stdout)
        assert stopped, proc.stdout[-3000:]
        with pytest.raises(ProcessLookupError):  # no process of its group is left
            os.killpg(int(stopped.group(1)), 0)

    record = json.loads((out / "shots.json").read_text(encoding="utf-8"))
    assert record["failures"] == []
    taken = {shot["file"]: shot for shot in record["shots"]}
    expected = {
        "mlflow-1-home.png", "mlflow-2-experiments.png", "mlflow-3-first-click.png",
        "mlflow-4-runs.png", "mlflow-5-runs-expanded.png", "mlflow-6-run.png",
        "mlflow-6-run-full.png", "report-1-landing.png", "report-2-tables.png",
        *(f"report-figure-{name}.png" for name in FIGURES),
        *(f"report-table-{name}.png" for name in TABLE_ORDER),
    }  # fmt: skip
    assert expected <= set(taken), sorted(expected - set(taken))
    for name in taken:
        assert f"saved {out / name}" in proc.stdout, name  # it says what it saved
        pixels = png_pixels(out / name)
        height, width, _ = pixels.shape
        assert width == 1600 and height >= 1000, (name, pixels.shape)
        # a real page, not a blank or single-colour one
        assert pixels.std() > 10, (name, pixels.std())
        colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
        assert len(colours) > 32, (name, len(colours))

    # the runs table at the address the study printed lists the study's runs: the sweep's
    # parent row, and a row per cell once it is expanded. (A click on the experiment in the list,
    # mlflow-3-first-click.png, lands where MLflow 3.17 sends a new browser: its GenAI view; the
    # tracking step prints the runs table's address for that reason - docs/tracking.md.)
    tracking = local_test_study / "results" / "tracking"
    cells = [
        json.loads(p.read_text()) for p in sorted(tracking.rglob("*.json"))
        if p.parent != tracking  # parent.json, summary.json: the sweep's records
    ]  # fmt: skip
    runs = taken["mlflow-4-runs.png"]
    assert sweep["run_name"] in runs["run_links"], (runs["url"], runs["run_links"])
    expanded = taken["mlflow-5-runs-expanded.png"]
    missing = [cell["run_name"] for cell in cells if cell["run_name"] not in expanded["run_links"]]
    assert not missing, (
        f"the runs table ({expanded['url']}) does not list the runs {missing}; "
        f"it links {expanded['run_links']}"
    )
    # a cell's run page, reached by a click in that table, shows the run and its scores
    run = taken["mlflow-6-run.png"]
    assert "/runs/" in run["url"] and "sts_avg" in run["text"], run["text"][:2000]
    assert any(cell["run_name"] in run["text"] for cell in cells), run["text"][:2000]


def test_a_page_that_does_not_load_is_named_and_exits_1(tmp_path):
    """A "report" that is not one: the script says which page failed, exits 1, and still
    writes its record."""
    study = tmp_path / "study"
    (study / "results").mkdir(parents=True)
    broken = tmp_path / "report.html"
    broken.write_text("<html><body>not a Snakemake report</body></html>\n", encoding="utf-8")
    out = tmp_path / "shots"
    cmd = [
        sys.executable, str(SCRIPT), str(study), "--out", str(out), "--report", str(broken),
        "--no-mlflow", "--chromium", str(CHROMIUM), "--timeout", "5",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED the report's landing page" in proc.stderr, proc.stderr[-3000:]
    record = json.loads((out / "shots.json").read_text(encoding="utf-8"))
    assert record["failures"] and record["failures"][0].startswith("the report's landing page")
