"""The cluster profile, for real: the .test study through a single-node Slurm, the paper grid's
per-size GPU resources in a dry run, and how Snakemake combines the cluster profile with the
workflow profile ``profiles/default/`` it applies automatically (docs/cluster.md).

Every command runs as docs/cluster.md shows it, from the repository root (where Snakemake finds
``profiles/default/``) and without ``--workflow-profile none``; ``--directory`` keeps its outputs
out of the checkout.

The Slurm run needs root and Debian's Slurm packages (CI installs them:
``apt-get install --no-install-recommends munge slurmctld slurmd slurm-client``); without them it
is skipped with the reason. ``scripts/slurm-local.sh`` starts the daemons (session fixture) and
stops them afterwards, unless they were already running.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_STUDY_CONFIG, job_stats

pytestmark = [pytest.mark.integration]

SLURM_SCRIPT = REPO_ROOT / "scripts" / "slurm-local.sh"
CLUSTER_PROFILE = REPO_ROOT / "profiles" / "slurm"
LOCAL_OVERLAY = REPO_ROOT / "profiles" / "slurm-local"
WORKFLOW_PROFILE = "profiles/default"  # found relative to the repository root
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
#: SIGINT after this many seconds (a hung plugin ignores SIGTERM). Generous: on 2 shared cores the
#: run took up to ~30 min under load; jobs stuck on the plugin would otherwise wait forever.
SLURM_RUN_TIMEOUT_S = 2700


def snakemake_cmd(workdir: Path, *args: str, profiles=(), configfile=None, config=None):
    """docs/cluster.md's command (run it with ``cwd=REPO_ROOT``), working in ``workdir``."""
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "workflow" / "Snakefile"),
        "--directory", str(workdir),
    ]  # fmt: skip
    for profile in profiles:
        cmd += ["--profile", str(profile)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if config:
        cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    return cmd + list(args)


def job_blocks(log: str) -> list[dict[str, str]]:
    """Each job announced in a (dry) run's log: rule, local flag, wildcards and resources."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", log):
        head = re.match(r"(local)?rule (\w+):\n", block)
        if not head:
            continue
        job = {"rule": head.group(2), "local": bool(head.group(1))}
        for key in ("wildcards", "resources", "threads"):
            match = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            if match:
                job[key] = match.group(1)
        jobs.append(job)
    return jobs


def parse_pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def profiles_line(*profiles) -> str:
    """What Snakemake prints when it applies these --profiles and then the workflow profile."""
    return f"Using profiles {' and '.join(map(str, profiles))} and workflow specific profile " + (
        f"{WORKFLOW_PROFILE} for setting default command line arguments."
    )


# --- the cluster profile and the automatic workflow profile (no Slurm needed) -----------------


def parsed_settings(argv: list[str]) -> tuple[dict, str]:
    """Snakemake's own parse of ``argv`` from the repository root: (every setting as plain
    data, what it printed about profiles)."""
    from snakemake.cli import parse_args

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        _, args = parse_args(argv)
    return {k: plain(v) for k, v in vars(args).items()}, err.getvalue()


def plain(value):
    """Settings as comparable data (some are objects without __eq__)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(plain(v)) for v in value)
    if type(value).__repr__ is object.__repr__ and hasattr(value, "__dict__"):
        return {"<type>": type(value).__name__, **plain(vars(value))}
    return repr(value)


@pytest.fixture
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)


@pytest.mark.parametrize(
    "profiles", [[CLUSTER_PROFILE], [CLUSTER_PROFILE, LOCAL_OVERLAY]], ids=["slurm", "slurm-local"]
)
def test_the_workflow_profile_changes_no_setting_of_the_cluster_profile(at_repo_root, profiles):
    """Snakemake merges profiles/default/ after every --profile, key by key: the documented
    command (no --workflow-profile none) must give exactly the cluster profile's settings."""
    argv = [a for p in profiles for a in ("--profile", str(p))]
    argv += ["--configfile", "config/paper.yaml"]
    merged, said = parsed_settings(argv)
    alone, _ = parsed_settings([*argv, "--workflow-profile", "none"])
    assert profiles_line(*profiles) in said  # profiles/default really took part
    del merged["workflow_profile"], alone["workflow_profile"]
    changed = {k: (alone[k], merged[k]) for k in merged if merged[k] != alone[k]}
    assert not changed, f"profiles/default overrides the cluster profile: {changed}"
    # what the cluster profile sets, as it reaches Snakemake
    assert merged["executor"] == repr("slurm")
    assert merged["cores"] == repr(None)  # no cap on a job's threads; each job gets --cores all
    assert merged["jobs"] == repr(100 if len(profiles) == 1 else 2)
    assert merged["default_resources"]["mem_mb"] == 'Resource("mem_mb", 4000)'
    assert merged["default_resources"]["runtime"] == 'Resource("runtime", 30)'


def test_local_runs_still_get_the_workflow_profile(at_repo_root):
    """README's local run (`snakemake --cores 2`): profiles/default supplies the rest."""
    merged, said = parsed_settings(["--cores", "2"])
    alone, _ = parsed_settings(["--cores", "2", "--workflow-profile", "none"])
    assert f"Using workflow specific profile {WORKFLOW_PROFILE} " in said
    for key in ("printshellcmds", "rerun_incomplete", "keep_going", "show_failed_logs"):
        assert (merged[key], alone[key]) == ("True", "False"), key
    assert merged["cores"] == "2" and merged["executor"] == repr(None)  # None: local


@pytest.mark.parametrize("how", ["user-config-dir", "SNAKEMAKE_PROFILE"])
def test_profile_slurm_by_name_as_documented(at_repo_root, monkeypatch, tmp_path, how):
    """docs/cluster.md's `--profile slurm`: the profile linked into the user's config directory
    (~/.config/snakemake, i.e. $XDG_CONFIG_HOME/snakemake), or named by SNAKEMAKE_PROFILE, gives
    the very settings of `--profile profiles/slurm`."""
    assert not (REPO_ROOT / "slurm").exists()  # else Snakemake would take ./slurm
    argv = ["--configfile", "config/paper.yaml"]
    by_path, _ = parsed_settings(["--profile", "profiles/slurm", *argv])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no ~/.config/snakemake/slurm
    if how == "user-config-dir":
        (tmp_path / "xdg" / "snakemake").mkdir(parents=True)
        (tmp_path / "xdg" / "snakemake" / "slurm").symlink_to(CLUSTER_PROFILE)
        argv, named = ["--profile", "slurm", *argv], "slurm"
    else:
        monkeypatch.setenv("SNAKEMAKE_PROFILE", str(CLUSTER_PROFILE))
        named = CLUSTER_PROFILE
    by_name, said = parsed_settings(argv)
    assert profiles_line(named) in said
    assert by_name.pop("profile") == plain([str(named)])
    by_path.pop("profile")
    assert by_name == by_path
    assert by_name["executor"] == repr("slurm")


# --- the paper grid through the cluster profile (dry run; no Slurm needed) -------------------


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory, data_dir) -> str:
    workdir = tmp_path_factory.mktemp("paper-slurm-dry-run")
    nli_stand_in = data_dir.parent / "nli" / "snli_devtest_triplets.csv"
    proc = subprocess.run(
        snakemake_cmd(
            workdir,
            "--dry-run",
            profiles=[CLUSTER_PROFILE],
            configfile=REPO_ROOT / "config" / "paper.yaml",
            # the paper's NLI triplets are a download; the SNLI stand-in fills in
            config={"data_dir": str(data_dir), "finetune": f"{{data: {nli_stand_in}}}"},
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert profiles_line(CLUSTER_PROFILE) in log
    return log


def embed_resources(log: str) -> dict[str, dict[str, str]]:
    out = {}
    for job in job_blocks(log):
        if job["rule"] == "embed":
            model = parse_pairs(job["wildcards"])["model"]
            res = parse_pairs(job["resources"])
            assert out.setdefault(model, res) == res  # every cell of a model asks the same
    return out


@pytest.mark.parametrize(
    ("model", "gpus", "params_b", "bytes_per_param"),
    [
        ("opt-125m", 1, 0.125, 4),
        ("opt-6.7b", 1, 6.7, 4),
        ("opt-13b", 1, 13, 4),  # fp32 as the authors ran it: 52 GB on one 80 GB GPU
        ("opt-30b", 2, 30, 4),  # 120 GB: two GPUs
        ("opt-66b", 2, 66, 2),  # fp16 (model_dtype), 132 GB
    ],
)
def test_paper_dry_run_gives_each_size_gpus_memory_and_time_that_fit(
    paper_dry_run, model, gpus, params_b, bytes_per_param
):
    res = embed_resources(paper_dry_run)[model]
    # what the plugin turns into --gpus=N, --cpus-per-gpu, --mem, -t (integer minutes)
    assert int(res["gpu"]) == gpus
    assert int(res["cpus_per_gpu"]) == 8
    assert "gpus" not in res and "time_min" not in res and "gpu_type" not in res  # ignored keys
    weights_gb = bytes_per_param * params_b  # the authors' precision per model
    assert weights_gb * 1.1 <= gpus * 80  # paper.yaml: 80 GB GPUs
    assert (gpus - 1) * 80 < weights_gb * 1.1 + 2  # and no more GPUs than needed
    mem_mb = int(res["mem_mb"])
    assert weights_gb * 1024 < mem_mb < (weights_gb + 32) * 1024  # weights pass through RAM
    assert re.fullmatch(r"\d+", res["runtime"]), res["runtime"]
    assert 30 <= int(res["runtime"]) <= 12 * 60


def test_paper_dry_run_finetunes_on_the_originals_gpu_counts(paper_dry_run):
    """train_llm.sh: torchrun on 2 GPUs up to OPT-2.7B, 4 for 6.7B/7B, 8 for 13B; one Slurm
    job per model with that many GPUs."""
    gpus = {}
    for job in job_blocks(paper_dry_run):
        if job["rule"] == "finetune":
            res = parse_pairs(job["resources"])
            gpus[parse_pairs(job["wildcards"])["model"]] = int(res["gpu"])
            assert re.fullmatch(r"\d+", res["runtime"]) and int(res["mem_mb"]) > 16 * 1024
    assert gpus == {
        "opt-1.3b": 2,
        "opt-2.7b": 2,
        "opt-6.7b": 4,
        "opt-13b": 8,
        "llama-7b": 4,
        "llama-13b": 8,
        "llama-30b": 8,
    }


def test_paper_dry_run_sizes_grow_with_the_model(paper_dry_run):
    res = embed_resources(paper_dry_run)
    assert len(res) == 12  # 8 OPT + 4 LLaMA
    order = ["opt-125m", "opt-1.3b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b"]
    for key in ("mem_mb", "runtime"):
        values = [int(res[m][key]) for m in order]
        assert values == sorted(values), key


def test_paper_dry_run_scoring_jobs_need_no_gpu(paper_dry_run):
    scoring = [
        (job["rule"], parse_pairs(job["resources"]))
        for job in job_blocks(paper_dry_run)
        if job["rule"] in ("evaluate_sts", "evaluate_transfer")
    ]
    assert {rule for rule, _ in scoring} == {"evaluate_sts", "evaluate_transfer"}
    for _, res in scoring:
        assert "gpu" not in res
        assert re.fullmatch(r"\d+", res["runtime"]) and int(res["mem_mb"]) >= 2000
    # the paper's transfer protocol trains with PyTorch: hours, not minutes
    assert {res["runtime"] for rule, res in scoring if rule == "evaluate_transfer"} == {"240"}


# --- the .test study through a real single-node Slurm -----------------------------------------


def _script(action: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SLURM_SCRIPT), action],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def local_slurm():
    """A running single-node Slurm (scripts/slurm-local.sh); stopped at the end of the session
    if this fixture started it."""
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(
            f"single-node Slurm needs root and {', '.join(missing) or 'the packages'}: "
            "apt-get install --no-install-recommends munge slurmctld slurmd slurm-client"
        )
    env = dict(os.environ)
    state = Path(env.setdefault("SLURM_LOCAL_DIR", "/tmp/sentscale-slurm"))
    was_running = _script("status", env).returncode == 0
    started = _script("start", env)
    assert started.returncode == 0, started.stdout + started.stderr
    yield state
    if not was_running:
        stopped = _script("stop", env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert _script("status", env).returncode != 0


IGNORED_KEYS = {"timings"}  # wall-clock numbers differ between any two runs


def comparable(value):
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def assert_same(a, b, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.mark.slow
def test_test_study_runs_through_slurm_like_a_local_run(
    local_slurm, local_test_study, test_study_config, tmp_path
):
    workdir = tmp_path / "slurm-run"
    cmd = snakemake_cmd(
        workdir,
        profiles=[CLUSTER_PROFILE, LOCAL_OVERLAY],
        configfile=TEST_STUDY_CONFIG,
        config=test_study_config,
    )
    started = time.monotonic()
    proc = subprocess.run(
        ["timeout", "-s", "INT", "-k", "60", str(SLURM_RUN_TIMEOUT_S), *cmd],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
        check=False,
    )
    elapsed = time.monotonic() - started
    log = proc.stdout + proc.stderr
    ctld_log = local_slurm / "log" / "slurmctld.log"
    assert proc.returncode == 0, (
        f"rc={proc.returncode} after {elapsed:.0f} s\n{log[-6000:]}\n--- slurmctld.log\n"
        + (ctld_log.read_text()[-3000:] if ctld_log.exists() else "(none)")
    )
    print(f"\n.test study through Slurm: {elapsed:.0f} s")
    assert profiles_line(CLUSTER_PROFILE, LOCAL_OVERLAY) in log  # docs/cluster.md's command

    # every non-local job was one sbatch submission ...
    stats = job_stats(log)
    local_rules = set(re.findall(r"^localrule (\w+):$", log, re.M))
    remote_rules = set(stats) - local_rules
    assert {"embed", "evaluate_sts", "evaluate_transfer"} <= remote_rules, (stats, local_rules)
    assert {"aggregate", "all"} <= local_rules  # localrules stay on the submitting host
    n_remote = sum(stats[r] for r in remote_rules)
    assert n_remote >= 20  # >= 4 cells x (1 embed + 4 scoring jobs)
    submitted = dict(
        re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    )  # snakemake job id -> Slurm job id
    assert len(submitted) == n_remote, (stats, local_rules, submitted)
    assert len(set(submitted.values())) == n_remote

    # ... and Slurm itself ran each of them to completion: slurmctld logged every submission
    # and a zero exit status; squeue (jobs stay for MinJobAge) lists them under the run's name
    ctld = ctld_log.read_text()
    for slurm_id in submitted.values():
        assert f"_slurm_rpc_submit_batch_job: JobId={slurm_id} " in ctld, slurm_id
        assert f"_job_complete: JobId={slurm_id} WEXITSTATUS 0\n" in ctld, slurm_id
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    queue = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%i %T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    states = dict(line.split() for line in queue if line.strip())
    assert set(states) == set(submitted.values())
    assert set(states.values()) == {"COMPLETED"}, states

    # the outputs are the local run's: same files, same scores (timings aside)
    local_scores = sorted(p.relative_to(local_test_study) for p in
                          (local_test_study / "results" / "scores").rglob("*.json"))  # fmt: skip
    slurm_scores = sorted(p.relative_to(workdir) for p in
                          (workdir / "results" / "scores").rglob("*.json"))  # fmt: skip
    assert slurm_scores == local_scores and len(local_scores) == 5 * 4  # 5 cells x 4 tasks
    for rel in local_scores:
        ours = json.loads((workdir / rel).read_text())
        theirs = json.loads((local_test_study / rel).read_text())
        assert isinstance(ours["score"], float | int)
        assert_same(comparable(ours), comparable(theirs), str(rel))
