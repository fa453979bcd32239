"""The documentation: README stays a short front door, every relative link resolves, and every
`snakemake` command shown in a ```bash block dry-runs against this checkout's workflow.

Documented commands are run as a reader runs them from the repository root, with three changes:
``-n`` is added (unless the command is a dry run or a lint already), ``../shared/data/...`` is
replaced by the test data (``SENTSCALE_DATA_DIR`` or the default beside the repository), and the
command runs in a temporary working directory (``--directory`` + ``--snakefile``, relative
``--configfile``/``--profile`` made absolute) laid out like a fresh checkout: ``config/`` (the
Snakefile's default configfile), ``profiles/`` (the local profile applies automatically, as in
the repository root) and ``../shared/data/{senteval,nli}`` (what data_dir overrides name); no
``resources/data``, so the configs' default data is planned as a download (rules/fetch.smk) and
a dry run must succeed without it. Cluster
commands (``--profile profiles/slurm``) dry-run too: the Slurm executor plugin plans a dry run
without ``sbatch``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOC_FILES = [README, REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_BYTES = 10_000  # `wc -c README.md`: the front door, the reference lives in docs/
TEST_COMMAND = ".venv/bin/python -m pytest"  # .ci/run runs README's test command verbatim

#: Documented commands a test cannot dry-run, by the option that makes them so.
SKIPPED = {
    "--report": "builds the HTML report of a finished run; there is no dry run of it",
    "--unlock": "releases the lock a killed run left behind; there is nothing to dry-run",
}

FENCE = re.compile(r"^[ \t]*```bash[ \t]*\n(.*?)^[ \t]*```", re.M | re.S)
ANY_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", re.M)
SHARED = "../shared/data/"


def snakemake_commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every `.venv/bin/snakemake ...` line in the file's bash blocks."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        lines = block.group(1).split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            tokens = shlex.split(line, comments=True)
            if any(t == "snakemake" or t.endswith("bin/snakemake") for t in tokens):
                found.append((first_line + start, tokens))
    return found


COMMANDS = [
    pytest.param(tokens, id=f"{path.relative_to(REPO)}:{line}")
    for path in DOC_FILES
    for line, tokens in snakemake_commands(path)
]


def skip_reason(tokens: list[str]) -> str | None:
    return next((why for opt, why in SKIPPED.items() if opt in tokens), None)


def checkout_like_workdir(tmp_path: Path, data_dir: Path) -> Path:
    """An empty working directory with the data where the documented configs look for it."""
    nli = data_dir.parent / "nli"
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "senteval").symlink_to(data_dir)
    (shared / "nli").symlink_to(nli)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    for name in ("config", "profiles"):  # the Snakefile's default configfile; the local profile
        (workdir / name).symlink_to(REPO / name)
    return workdir


def dry_run_argv(tokens: list[str], workdir: Path, data_dir: Path) -> tuple[list[str], dict]:
    """The documented command as a dry run in ``workdir``: (argv, extra environment)."""
    at = next(i for i, t in enumerate(tokens) if t == "snakemake" or t.endswith("bin/snakemake"))
    env = dict(t.split("=", 1) for t in tokens[:at])  # VAR=value prefixes
    args = tokens[at + 1 :]
    assert not {"|", ";", "&&", "||", ">"} & set(args), f"not a plain command: {tokens}"
    assert not {"--snakefile", "-s", "--directory", "-d"} & set(args), tokens
    out = []
    for i, arg in enumerate(args):
        arg = arg.replace(SHARED + "senteval", str(data_dir))
        arg = arg.replace(SHARED + "nli", str(data_dir.parent / "nli"))
        option = args[i - 1] if i else ""
        if option in ("--configfile", "--configfiles", "--profile") and not Path(arg).is_absolute():
            arg = str(REPO / arg)
        out.append(arg)
    if not {"-n", "--dry-run", "--dryrun", "--lint"} & set(out):
        out.insert(0, "-n")
    argv = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    return [*argv, "--directory", str(workdir), *out], env


def test_the_docs_show_the_commands_this_test_runs():
    ids = [p.id for p in COMMANDS]
    assert len(COMMANDS) >= 8, ids
    shown = [tokens for _, tokens in snakemake_commands(README)]
    # a fresh machine: the study fetches its data; people with a copy point data_dir at it
    assert ".venv/bin/snakemake --cores 2".split() in shown
    with_copy = ".venv/bin/snakemake --cores 2 --config data_dir=../shared/data/senteval"
    assert with_copy.split() in shown


@pytest.mark.integration
@pytest.mark.parametrize("tokens", COMMANDS)
def test_documented_snakemake_command_dry_runs(tokens, tmp_path, data_dir):
    reason = skip_reason(tokens)
    if reason:
        pytest.skip(f"{shlex.join(tokens)}: {reason}")
    workdir = checkout_like_workdir(tmp_path, data_dir)
    argv, extra_env = dry_run_argv(tokens, workdir, data_dir)
    env = dict(os.environ, OMP_NUM_THREADS="2", **extra_env)
    proc = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{shlex.join(argv)}\n{log[-6000:]}"
    assert not (workdir / "results").exists(), "a dry run wrote results"
    assert not (workdir / "resources").exists(), "a dry run provisioned models"


def test_readme_is_a_short_front_door():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES})"
    lines = README.read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in lines, "README must show the test command .ci/run runs, on its own line"
    assert "bash scripts/install.sh" in lines
    assert "](docs/rulegraph.svg)" in README.read_text(encoding="utf-8")


def github_anchors(path: Path) -> set[str]:
    """The heading anchors GitHub gives a markdown file."""
    text = ANY_FENCE.sub("", path.read_text(encoding="utf-8"))
    anchors = set()
    for heading in HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_existing_files(path):
    text = ANY_FENCE.sub("", path.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{path.relative_to(REPO)}: broken links: {broken}"


def test_docs_mlflow_servers_bind_localhost():
    """Every `mlflow server`/`mlflow ui` command in the docs serves 127.0.0.1 only."""
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        assert "0.0.0.0" not in text, path
        for line in text.splitlines():
            if re.search(r"mlflow (server|ui)\b", line) and "--host" in line:
                assert "--host 127.0.0.1" in line, f"{path.relative_to(REPO)}: {line}"
