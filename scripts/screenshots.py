"""Screenshots of what a user of a finished study sees, taken with headless Chromium (issue 18).

Given a study's working directory (the folder that holds ``results/``), this

1. builds its Snakemake report (``snakemake --report``, this checkout's Snakefile, the study's
   ``--configfile``/``--config``) into the output folder, or takes an existing one (``--report``);
2. serves its MLflow store (``results/tracking/parent.json`` names it: a sqlite store is served
   by ``mlflow server`` on a free 127.0.0.1 port, stopped by its process group when done; an
   ``http(s)`` tracking URI is used as it is);
3. opens both in headless Chromium (each visit in a fresh browser context: what a first-time
   user sees) and saves

   - ``mlflow-1-home.png``: the MLflow UI's front page (what ``mlflow ui`` opens on);
   - ``mlflow-2-experiments.png``: the experiment list;
   - ``mlflow-3-first-click.png``: where a click on the study's experiment in the list lands;
   - ``mlflow-4-runs.png``: the runs table at the address the study printed
     (``results/tracking/summary.json``: ``runs_url``; MLflow 3.17 shows a new browser the
     GenAI view of an experiment unless the address says otherwise);
   - ``mlflow-5-runs-expanded.png``: the same, its parent rows expanded (a row per cell);
   - ``mlflow-6-run.png``: a cell's run page, clicked there (``-full``: its whole length);
   - ``report-1-landing.png``: the report's landing page;
   - ``report-2-<category>.png``: each result category's list (Tables: the tables' order;
     ``-full``: the whole list);
   - ``report-figure-<name>.png``, ``report-table-<name>.png``: each figure and HTML table as
     the report shows it;

   and ``shots.json``: for every screenshot its page address, title and visible text, and
   for the MLflow pages that can list runs the run names linked from the page.

It exits 1 when a page fails to load (an HTTP error, a timeout, an element it waits for that
never shows), after taking every other screenshot. The MLflow server is stopped in every case.
Chromium is Debian's (``apt-get install chromium``; ``--chromium`` for another binary), driven by
the ``playwright`` package (the ``test`` extra); no browser is downloaded.

    .venv/bin/python scripts/screenshots.py . --out shots          # the default study, in place
    .venv/bin/python scripts/screenshots.py /tmp/study --out shots \\
        --configfile config/config.yaml --config data_dir=../shared/data/senteval
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
CHROMIUM = "/usr/bin/chromium"
#: Headless Chromium as root, offline: no sandbox (root), no GPU, and none of the background
#: connections to Google's services (without these flags it tries and fails to reach them).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1600, "height": 1000}
MAX_FULL_HEIGHT = 6000  # a "-full" screenshot's height at most (pixels)
#: Report results shown in their own screenshot besides images (PDFs: headless Chromium has no
#: PDF viewer; CSV, Markdown and LaTeX are downloads).
RESULT_KINDS = {"text/html": "table"}


class PageError(RuntimeError):
    """A page that did not load, or an element that never showed."""


# ------------------------------------------------------------------------------ the browser


@contextlib.contextmanager
def chromium(executable: str = CHROMIUM) -> Iterator:
    """Headless Chromium (closed on exit); :func:`fresh_page` opens pages in it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise SystemExit(
            f"playwright is not installed ({err}): pip install -e '.[test]' "
            "(the browser itself is Debian's chromium; nothing is downloaded)"
        ) from None
    if not os.access(executable, os.X_OK):
        raise SystemExit(
            f"no Chromium at {executable}: apt-get install chromium (or pass --chromium PATH)"
        )
    with sync_playwright() as playwright:
        # a fresh temporary profile (--user-data-dir), removed when the browser closes
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def fresh_page(browser, viewport: dict | None = None):
    """A page in a browser context of its own: no cookies, no local storage (MLflow's UI keeps
    the user's choices there), as a first-time user's browser."""
    return browser.new_context(viewport=viewport or VIEWPORT).new_page()


def track_requests(page) -> dict:
    """Follow ``page``'s requests from now on: ``{request: start time}`` of those in flight and
    the time of the last start or end (for :func:`settle`)."""
    traffic: dict = {"in_flight": {}, "last": time.monotonic()}

    def started(request) -> None:
        traffic["in_flight"][request] = traffic["last"] = time.monotonic()

    def ended(request) -> None:
        traffic["in_flight"].pop(request, None)
        traffic["last"] = time.monotonic()

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    return traffic


def settle(page, traffic: dict, quiet_ms: int = 1000, timeout_s: float = 30.0) -> None:
    """Wait until no request of the page started or ended for ``quiet_ms`` and none is in
    flight, except long-lived ones (open for 10 s: streams, long polls); single-page apps keep
    fetching after ``load``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        now = time.monotonic()
        pending = [t for t in traffic["in_flight"].values() if now - t < 10]
        if not pending and (now - traffic["last"]) * 1000 >= quiet_ms:
            break
    page.wait_for_timeout(300)  # the last paint after the last response


def goto(page, url: str, timeout_ms: float) -> None:
    """Load ``url``; an HTTP error or a timeout is a :class:`PageError`."""
    try:
        response = page.goto(url, wait_until="load", timeout=timeout_ms)
    except Exception as err:  # playwright's TimeoutError/Error: the page did not load
        raise PageError(f"{url} did not load: {err}") from err
    if response is not None and response.status >= 400:
        raise PageError(f"{url} answered HTTP {response.status}")


def wait_visible(locator, what: str, timeout_ms: float) -> None:
    try:
        locator.first.wait_for(state="visible", timeout=timeout_ms)
    except Exception as err:
        raise PageError(f"{what} never showed ({type(err).__name__})") from err


def scroll_height(page) -> int:
    """The tallest content of the page or of any scrolling element in it (pixels)."""
    return page.evaluate(
        """() => Math.max(document.documentElement.scrollHeight, ...Array.from(
            document.querySelectorAll('*'), (el) => {
                const style = getComputedStyle(el);
                const scrolls = /(auto|scroll)/.test(style.overflowY);
                return scrolls && el.scrollHeight > el.clientHeight
                    ? el.scrollHeight + el.getBoundingClientRect().top : 0;
            }))"""
    )


# ----------------------------------------------------------------------- the Snakemake report


def build_report(
    study: Path, out: Path, configfiles: list[str], config: list[str], timeout_s: int = 900
) -> Path:
    """``snakemake --report`` of the study (this checkout's Snakefile) into ``out``."""
    report = out / "report.html"
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(study),
        "--workflow-profile", "none",
        "--report", str(report),
    ]  # fmt: skip
    for configfile in configfiles:
        cmd += ["--configfile", str(Path(configfile).resolve())]
    if config:
        cmd += ["--config", *config]
    print("building the report:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not report.is_file():
        raise SystemExit(f"snakemake --report failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return report


def report_results(page) -> dict:
    """The report's results as ``{path: {name, mime_type, labels, category, data_uri}}``."""
    return page.evaluate(
        """() => Object.fromEntries(Object.entries(results).map(([path, r]) => [path, {
            name: r.name, mime_type: r.mime_type, labels: r.labels, data_uri: r.data_uri}]))"""
    )


def report_categories(page) -> dict[str, list[str]]:
    """``{category: [subcategory, ...]}`` as the report's menu has them."""
    return page.evaluate(
        "() => Object.fromEntries(Object.entries(categories)"
        ".map(([c, subs]) => [c, Object.keys(subs)]))"
    )


def open_report(page, report: Path, timeout_ms: float) -> None:
    goto(page, report.resolve().as_uri(), timeout_ms)
    wait_visible(page.get_by_text("Results", exact=True), "the report's menu", timeout_ms)


def open_category(page, report: Path, category: str, subcategory: str | None, timeout_ms: float):
    """The report's list of one (sub)category, from a freshly loaded report."""
    open_report(page, report, timeout_ms)
    page.get_by_text(category, exact=True).first.click()
    if subcategory is not None and len(report_categories(page)[category]) > 1:
        page.get_by_text(subcategory, exact=True).first.click()
    wait_visible(page.locator("table tbody tr"), f"the report's {category} list", timeout_ms)


def result_rows(page) -> list[dict]:
    """The rows of the results list on screen, in order, for each value of its toggle (a label
    with two values shown one at a time): ``{labels, path, link, href}`` per row. ``link`` is
    ``download`` (an ``<a download>`` with the file as a data URI) or ``view`` (a button that
    shows the result in the report); ``path`` the result it leads to; ``href`` the data URI
    downloaded or shown (the source of the ``<img>``/``<iframe>``; None if nothing showed)."""
    toggles = page.locator("fieldset input[type=radio]")
    states = range(toggles.count()) if toggles.count() else [None]
    rows: list[dict] = []
    for state in states:
        if state is not None:
            page.locator(f"label[for='{toggles.nth(state).get_attribute('id')}']").click()
            page.wait_for_timeout(200)
        for row in page.locator("table tbody tr").all():
            cells = row.locator("td")
            labels = [cells.nth(i).inner_text().strip() for i in range(cells.count() - 1)]
            link = cells.nth(cells.count() - 1).locator("a").first
            if link.get_attribute("download") is not None:
                href = link.get_attribute("href")
                path = page.evaluate(
                    "(uri) => Object.keys(results).find((p) => results[p].data_uri === uri)",
                    href,
                )
                rows.append({"labels": labels, "path": path, "link": "download", "href": href})
            else:
                link.click()
                page.wait_for_timeout(200)
                path = page.evaluate("() => app.state.resultPath")
                rows.append(
                    {"labels": labels, "path": path, "link": "view", "href": shown_result(page)}
                )
    return rows


def data_uri_bytes(uri: str) -> bytes:
    """The payload of a ``data:`` URI (base64 or percent-encoded)."""
    head, _, payload = uri.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def shown_result(page) -> str | None:
    """The data URI the report's main pane shows (an ``<img>`` or ``<iframe>`` with the source
    the app selected), or None."""
    return page.evaluate(
        """() => { const uri = app.state.contentPath;
                   const shown = Array.from(document.querySelectorAll('img, iframe'))
                       .some((el) => el.getAttribute('src') === uri);
                   return uri && shown ? uri : null; }"""
    )


# ------------------------------------------------------------------------------ MLflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracking_store(study: Path) -> tuple[dict, str]:
    """The study's sweep record (``results/tracking/parent.json``) and the store to serve: the
    recorded URI, except that a sqlite store recorded under another folder (a copied study)
    is served from this study's ``results/mlflow.db`` when there is one."""
    parent = study / "results" / "tracking" / "parent.json"
    if not parent.is_file():
        raise SystemExit(
            f"{parent} is missing: the study was not tracked (tracking.enabled: false?); "
            "--no-mlflow takes the report's screenshots only"
        )
    sweep = json.loads(parent.read_text(encoding="utf-8"))
    uri = sweep["tracking_uri"]
    local = (study / "results" / "mlflow.db").resolve()
    if uri.startswith("sqlite:") and local.is_file():
        recorded = Path(uri.removeprefix("sqlite:///"))
        if not recorded.is_file() or recorded.resolve() != local:
            print(f"serving {local} (the study records {uri})", flush=True)
            uri = f"sqlite:///{local}"
    return sweep, uri


def cell_runs(study: Path) -> list[dict]:
    """The study's cell runs (``results/tracking/<model>/<prompt>/<demo>.json``), by path."""
    folder = study / "results" / "tracking"
    files = sorted(p for p in folder.rglob("*.json") if p.parent != folder)  # not the sweep's
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]


@contextlib.contextmanager
def mlflow_ui(uri: str, workdir: Path, timeout_s: float = 180) -> Iterator[str]:
    """The MLflow UI for ``uri``: an ``http(s)`` URI as it is; a sqlite store served by
    ``mlflow server`` on a free 127.0.0.1 port (its own process group, stopped on exit)."""
    if uri.startswith(("http://", "https://")):
        yield uri.rstrip("/")
        return
    if not uri.startswith("sqlite:"):
        raise SystemExit(f"cannot serve the tracking store {uri}: expected sqlite or http(s)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts"
    log = workdir / "mlflow-server.log"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", DO_NOT_TRACK="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", uri, "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    print(f"starting mlflow server on {url} for {uri}", flush=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True,  # its own process group: stopped as a whole by its pid
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"mlflow server exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"mlflow server not healthy after {timeout_s} s (log: {log})")
            time.sleep(0.5)
        yield url
    finally:
        stop_process_group(proc)
        print(f"stopped mlflow server (pid {proc.pid})", flush=True)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group whose leader is ``proc`` (workers included), then SIGKILL
    what is left of it after 20 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        try:
            os.killpg(proc.pid, 0)  # is any process of the group left?
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def run_links(page, experiment_id: str) -> list[str]:
    """The texts of the links to this experiment's run pages on screen."""
    links = page.locator(f"a[href*='experiments/{experiment_id}/runs/']")
    return [text.strip() for text in links.all_inner_texts() if text.strip()]


# ------------------------------------------------------------------------------ screenshots


class Shots:
    """Screenshots into ``out`` with their record (``shots.json``) and the pages that failed."""

    def __init__(self, out: Path, timeout_ms: float):
        self.out = out
        self.timeout_ms = timeout_ms
        self.records: list[dict] = []
        self.failures: list[str] = []

    def take(self, page, name: str, what: str, full: bool = False, **extra) -> None:
        path = self.out / f"{name}.png"
        page.screenshot(path=str(path))
        record = {
            "file": path.name,
            "what": what,
            "url": page.url if not page.url.startswith("data:") else "data:",
            "title": page.title(),
            "text": page.locator("body").inner_text(),
            **extra,
        }
        self.records.append(record)
        print(f"saved {path}: {what}", flush=True)
        if full:
            size = page.viewport_size
            height = min(max(scroll_height(page), size["height"]), MAX_FULL_HEIGHT)
            page.set_viewport_size({"width": size["width"], "height": height})
            page.wait_for_timeout(500)
            full_path = self.out / f"{name}-full.png"
            page.screenshot(path=str(full_path))
            page.set_viewport_size(size)
            self.records.append({**record, "file": full_path.name, "what": f"{what} (whole)"})
            print(f"saved {full_path}: {what} (its whole length)", flush=True)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """One page: a failure is recorded (exit 1 later) and the next page is still taken."""
        try:
            yield
        except Exception as err:  # PageError, or playwright's own: the page misbehaved
            self.failures.append(f"{what}: {err}")
            print(f"FAILED {what}: {err}", file=sys.stderr, flush=True)

    def write(self) -> Path:
        path = self.out / "shots.json"
        record = {"shots": self.records, "failures": self.failures}
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "other"


def mlflow_shots(browser, shots: Shots, url: str, study: Path, sweep: dict) -> None:
    """Two first visits, each in a browser of its own: the UI's front page, its experiment list
    and a click on the study's experiment; then the runs table at the address the study printed
    (``results/tracking/summary.json``: ``runs_url``), its parent rows expanded, and a click on
    a cell's run. Without that address the run page is opened by its own address."""
    timeout = shots.timeout_ms
    name, experiment_id = sweep["experiment_name"], str(sweep["experiment_id"])
    run_link = f"a[href*='experiments/{experiment_id}/runs/']"

    page = fresh_page(browser)
    traffic = track_requests(page)
    experiment = page.get_by_role("link", name=name, exact=True)
    with shots.step("MLflow front page"):
        goto(page, f"{url}/", timeout)
        wait_visible(page.locator("a[href*='#/experiments']"), "the MLflow UI", timeout)
        settle(page, traffic)
        shots.take(page, "mlflow-1-home", "the MLflow UI's front page")
    with shots.step("MLflow experiment list and the first click"):
        goto(page, f"{url}/#/experiments", timeout)
        wait_visible(experiment, f"experiment {name!r} in the list", timeout)
        settle(page, traffic)
        shots.take(page, "mlflow-2-experiments", "the experiment list")
        experiment.first.click()
        page.wait_for_url(re.compile(rf"#/experiments/{experiment_id}\b"), timeout=timeout)
        settle(page, traffic)
        shots.take(
            page,
            "mlflow-3-first-click",
            f"a click on experiment {name!r} in the list: where it lands",
            run_links=run_links(page, experiment_id),
        )
    page.context.close()

    page = fresh_page(browser)
    traffic = track_requests(page)
    printed = printed_runs_url(study)
    cells = cell_runs(study)
    cell = None  # the run reached by a click in the runs table
    if printed is None:
        print("no runs URL in results/tracking/summary.json: no runs-table screenshots")
    else:
        with shots.step(f"MLflow runs table at {printed}"):
            goto(page, on_server(url, printed), timeout)
            wait_visible(page.locator(run_link), "a run in the runs table", timeout)
            settle(page, traffic)
            shots.take(
                page,
                "mlflow-4-runs",
                f"the runs table at the address the study printed ({printed})",
                run_links=run_links(page, experiment_id),
            )
            # the expand buttons of the parent rows' name cells (MLflow 3.17's runs table)
            for button in page.query_selector_all("[role=row] [col-id*='Run Name'] button"):
                button.click()
            settle(page, traffic)
            shots.take(
                page,
                "mlflow-5-runs-expanded",
                "the runs table, parent rows expanded",
                run_links=run_links(page, experiment_id),
            )
            listed = run_links(page, experiment_id)
            cell = next((c for c in cells if c["run_name"] in listed), None)
            if cell is not None:
                page.locator(run_link).filter(has_text=cell["run_name"]).first.click()
    if cells:
        clicked, cell = cell is not None, cell or cells[0]
        with shots.step(f"MLflow run {cell['run_name']!r}"):
            if not clicked:
                goto(page, f"{url}/#/experiments/{experiment_id}/runs/{cell['run_id']}", timeout)
            wait_visible(page.get_by_text(cell["run_name"], exact=True), "the run", timeout)
            settle(page, traffic)
            shots.take(page, "mlflow-6-run", f"run {cell['run_name']!r}", full=True)
    page.context.close()


def printed_runs_url(study: Path) -> str | None:
    """The runs table's address the study's tracking printed (``summary.json``), if any."""
    summary = study / "results" / "tracking" / "summary.json"
    if not summary.is_file():
        return None
    return json.loads(summary.read_text(encoding="utf-8")).get("runs_url")


def on_server(base: str, address: str) -> str:
    """``address`` (a UI address, e.g. on 127.0.0.1:5000) on the server at ``base``."""
    parts = urllib.parse.urlsplit(address)
    path = parts.path or "/"
    return (
        base.rstrip("/")
        + path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def report_shots(browser, shots: Shots, report: Path) -> None:
    page = fresh_page(browser)
    timeout = shots.timeout_ms
    with shots.step("the report's landing page"):
        open_report(page, report, timeout)
        page.wait_for_timeout(1000)  # the rule graph is drawn after load
        shots.take(page, "report-1-landing", "the report's landing page")
    try:
        categories = report_categories(page)
        results = report_results(page)
    except Exception as err:  # the report did not load: recorded above
        print(f"no report results to show ({str(err).splitlines()[0]})", file=sys.stderr)
        return
    for category, subcategories in sorted(categories.items()):
        for subcategory in subcategories:
            where = category if len(subcategories) == 1 else f"{category} / {subcategory}"
            with shots.step(f"the report's {where} list"):
                open_category(page, report, category, subcategory, timeout)
                rows = result_rows(page)
                open_category(page, report, category, subcategory, timeout)  # nothing selected
                shots.take(page, f"report-2-{slug(where)}", f"the report's {where} list", full=True)
            for row in rows:
                mime = results.get(row["path"] or "", {}).get("mime_type", "")
                kind = "figure" if mime.startswith("image/") else RESULT_KINDS.get(mime)
                if row["link"] != "view" or kind is None:
                    continue  # downloads; PDFs (headless Chromium has no PDF viewer to show)
                stem = Path(row["path"]).stem
                with shots.step(f"the report's {kind} {stem}"):
                    open_category(page, report, category, subcategory, timeout)
                    view_result(page, row["path"], timeout)
                    page.wait_for_timeout(500)
                    shots.take(page, f"report-{kind}-{stem}", f"{kind} {stem} in the report")
    page.context.close()


def view_result(page, path: str, timeout_ms: float) -> None:
    """Click the view button of the list row that leads to ``path`` (a list must be on screen)."""
    for state in range(max(page.locator("fieldset input[type=radio]").count(), 1)):
        radios = page.locator("fieldset input[type=radio]")
        if radios.count():
            page.locator(f"label[for='{radios.nth(state).get_attribute('id')}']").click()
        for row in page.locator("table tbody tr").all():
            cells = row.locator("td")
            link = cells.nth(cells.count() - 1).locator("a").first
            if link.get_attribute("download") is not None:
                continue
            link.click()
            if page.evaluate("() => app.state.resultPath") == path:
                deadline = time.monotonic() + timeout_ms / 1000
                while shown_result(page) is None and time.monotonic() < deadline:
                    page.wait_for_timeout(100)
                if shown_result(page) is None:
                    raise PageError(f"the report shows nothing for {path}")
                return
    raise PageError(f"no view button in the report leads to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("study", type=Path, help="the study's working directory (has results/)")
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="output folder")
    parser.add_argument("--report", type=Path, help="an existing report.html (else built)")
    parser.add_argument("--configfile", action="append", default=[], help="the study's config")
    parser.add_argument("--config", nargs="*", default=[], help="KEY=VALUE config overrides")
    parser.add_argument("--mlflow-uri", help="a running MLflow server's address (else served)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser (default {CHROMIUM})")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a page may take")
    parser.add_argument("--no-mlflow", action="store_true", help="the report only")
    parser.add_argument("--no-report", action="store_true", help="MLflow only")
    args = parser.parse_args(argv)

    study = args.study.resolve()
    if not (study / "results").is_dir():
        parser.error(f"{study} has no results/ folder: give a finished study's directory")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shots = Shots(out, timeout_ms=args.timeout * 1000)

    report = None
    if not args.no_report:
        if args.report is not None:
            report = args.report.resolve()
            if not report.is_file():
                parser.error(f"--report {report}: no such file")
        else:
            configfiles = args.configfile
            if not configfiles and not (study / "config" / "config.yaml").is_file():
                parser.error(
                    f"{study} has no config/config.yaml: give the study's --configfile "
                    "(and its --config overrides) to build its report, or --report"
                )
            report = build_report(study, out, configfiles, args.config)
    sweep = uri = None
    if not args.no_mlflow:
        sweep, uri = tracking_store(study)
        uri = args.mlflow_uri or uri

    with tempfile.TemporaryDirectory(prefix="sentscale-shots-") as workdir:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(mlflow_ui(uri, Path(workdir))) if uri else None
            browser = stack.enter_context(chromium(args.chromium))
            if url is not None:
                mlflow_shots(browser, shots, url, study, sweep)
            if report is not None:
                report_shots(browser, shots, report)
    record = shots.write()
    print(f"{len(shots.records)} screenshots in {out} (record: {record.name})")
    for failure in shots.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if shots.failures else 0


if __name__ == "__main__":
    sys.exit(main())
