"""The authors' demonstration candidates (icl_examples.txt of kongds/scaling_sentemb).

Parity: a line parsed into (sentence, word) and rendered by our ``eol`` prompt must be exactly
the prompt of the authors' batcher (:func:`authors_prompt`, their code verbatim). Three real
lines are copied here; every one of the 300 lines is checked when a mirror of the authors'
repository is at hand (skipped otherwise, e.g. in CI). Other tests write synthetic lines.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import subprocess
import threading
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO_ROOT, TEST_STUDY_CONFIG, job_stats, run_snakemake

from sentscale import demos, prompts
from sentscale.demos import (
    AUTHORS_SHA256,
    AUTHORS_URL,
    ICL_SOURCE,
    IclExamples,
    fetched_path,
    gather_candidates,
    parse_icl_examples,
    parse_select,
    read_icl_examples,
)
from sentscale.demos.icl_examples import AUTHORS_COMMIT, AUTHORS_LINES, LINE_SHAPE
from sentscale.errors import ConfigError, DataError
from sentscale.models import Registry

REGISTRY = Registry.load()
MIRROR = Path("/work/.mirror/kongds+scaling_sentemb/repo")

#: Lines 1, 16 and 161 of the pinned file (a headline, the paper's OPT-125M demo, a definition).
REAL_LINES = [
    'This_sentence_:_"Over_100_dead_as_typhoon_slams_central_Philippines"_means_in_one_word:"Disaster".This_sentence_:_"*sent_0*"_means_in_one_word:"',
    'This_sentence_:_"A_man_is_smoking."_means_in_one_word:"Smoking".This_sentence_:_"*sent_0*"_means_in_one_word:"',
    'This_sentence_:_"meat_from_a_deer."_means_in_one_word:"Venison".This_sentence_:_"*sent_0*"_means_in_one_word:"',
]  # fmt: skip
REAL_PAIRS = [
    ("Over 100 dead as typhoon slams central Philippines", "Disaster"),
    ("A man is smoking.", "Smoking"),
    ("meat from a deer.", "Venison"),
]
#: Sentences that exercise each step of the authors' clean-up (final '.', '"' -> "'", '?').
SENTENCES = [
    "A dog runs in the park",
    "A dog runs in the park.",
    "Is it raining?",
    'He said "hi" to me',
    "snake_case stays as it is",
    "",
]


def authors_prompt(line: str, s: str) -> str:
    """The authors' prompt for sentence ``s`` under template ``line``: evaluation.py at
    8567aa0, line 244 (the line read) and lines 191-201 (the batcher), verbatim."""
    template = line.replace("\n", "")
    template = template.replace("_", " ").replace("*sep+*", "").replace("*cls*", "")
    if len(s) > 0 and s[-1] not in ".?\"'":
        s += "."
    s = s.replace('"', "'")
    if len(s) > 0 and "?" == s[-1]:
        s = s[:-1] + "."
    return template.replace("*sent 0*", s).strip()


def synthetic_line(sentence: str, word: str) -> str:
    """A line in the authors' format (``_`` for spaces)."""
    text = f'This sentence : "{sentence}" means in one word:"{word}".'
    text += 'This sentence : "*sent 0*" means in one word:"'
    return text.replace(" ", "_")


def our_prompt(candidate: demos.Candidate, s: str) -> str:
    """Our prompt for ``s`` with the candidate as the one demonstration, the way the
    embedder builds it (``Embedder.prompt``, without loading a model)."""
    from sentscale.embed import Embedder

    fake = SimpleNamespace(
        variant=prompts.get_variant("eol"), demos=(candidate.demo,), preprocess=True
    )
    return Embedder.prompt(fake, s)


# ------------------------------------------------------------------------------- parity
def test_real_lines_parse_to_their_sentence_and_word():
    cands = parse_icl_examples("\n".join(REAL_LINES) + "\n", "icl_examples.txt")
    assert [(c.sentence, c.word) for c in cands] == REAL_PAIRS
    assert {c.source for c in cands} == {ICL_SOURCE}


@pytest.mark.parametrize("s", SENTENCES)
@pytest.mark.parametrize("line", REAL_LINES)
def test_our_prompt_is_the_authors_prompt(line, s):
    (cand,) = parse_icl_examples(line, "icl_examples.txt")
    expected = authors_prompt(line, s)
    assert prompts.build_prompt(s, "eol", [cand.demo]) == expected
    assert our_prompt(cand, s) == expected


def _mirror_text() -> str:
    return subprocess.run(
        ["git", "--git-dir", str(MIRROR), "show", f"{AUTHORS_COMMIT}:icl_examples.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.skipif(not MIRROR.is_dir(), reason="no mirror of kongds/scaling_sentemb here")
def test_every_line_of_the_pinned_file_renders_exactly_as_the_authors():
    text = _mirror_text()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == AUTHORS_SHA256
    lines = text.splitlines()
    cands = parse_icl_examples(text, "icl_examples.txt")
    assert len(lines) == len(cands) == AUTHORS_LINES
    for line, cand in zip(lines, cands, strict=True):
        for s in SENTENCES:
            assert prompts.build_prompt(s, "eol", [cand.demo]) == authors_prompt(line, s), line
    # every demonstration the paper reports (config/paper.yaml) is one of the pool's
    paper = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text())
    chosen = {(d["sentence"], d["word"]) for d in paper["demos"]["paper"]["per_model"].values()}
    assert chosen <= {(c.sentence, c.word) for c in cands}


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("A man is smoking.\tSmoking", "expected an authors' template line"),
        (synthetic_line("A man.", "Smoking").removesuffix('"'), "expected an authors' template"),
        ('This_sentence_:_"A_"quoted"_man"_means_in_one_word:"Man".', "template line"),
        (synthetic_line("A man riding.", "Horseback riding"), "one word"),
        (synthetic_line("A man.", ""), "an empty word"),
        (synthetic_line("", "Nothing"), "an empty sentence"),
    ],
)
def test_a_malformed_line_names_file_line_and_shape(tmp_path, bad, expected):
    path = tmp_path / "icl.txt"
    path.write_text(synthetic_line("A man is smoking.", "Smoking") + "\n\n" + bad + "\n")
    with pytest.raises(DataError) as err:
        read_icl_examples(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line 3: ") and expected in message
    if "template line" in expected:
        assert LINE_SHAPE in message


def test_blank_lines_are_skipped_but_an_empty_file_is_an_error(tmp_path):
    path = tmp_path / "icl.txt"
    path.write_text("\n" + synthetic_line("A cat.", "Cat") + "\n\n")
    assert [(c.sentence, c.word) for c in read_icl_examples(path)] == [("A cat.", "Cat")]
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no candidates"):
        read_icl_examples(path)


def test_a_pinned_file_must_match_its_pin(tmp_path):
    path = tmp_path / "icl.txt"
    path.write_text(synthetic_line("A cat.", "Cat") + "\n")
    pin = hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(read_icl_examples(path, sha256=pin)) == 1
    with pytest.raises(DataError, match=f"does not match the pin {AUTHORS_SHA256}"):
        read_icl_examples(path, sha256=AUTHORS_SHA256)


# ---------------------------------------------------------------------------- the config
def test_icl_examples_defaults_to_the_pinned_authors_file():
    select = parse_select("s", {"candidates": {"icl_examples": {}}}, [], REGISTRY)
    icl = select.candidates.icl_examples
    assert icl == IclExamples(path=None, url=AUTHORS_URL, sha256=AUTHORS_SHA256)
    assert icl.fetched and icl.file == f"resources/data/icl_examples-{AUTHORS_SHA256[:12]}.txt"
    assert AUTHORS_COMMIT in AUTHORS_URL
    # before the download, the job is sized for the authors' 300 candidates
    assert demos.estimated_candidates(select) == AUTHORS_LINES
    # the URL (where) is no param of the selection; the pin (what) is
    params = select.to_params()["candidates"]["icl_examples"]
    assert params == {"path": None, "url": None, "sha256": AUTHORS_SHA256}
    assert demos.SelectOptions.from_mapping(select.to_params()).candidates.icl_examples.fetched


def test_the_schema_repeats_the_defaults():
    schema = yaml.safe_load((REPO_ROOT / "workflow/schemas/config.schema.yaml").read_text())
    select = schema["properties"]["demos"]["additionalProperties"]["properties"]["select"]
    forms = select["properties"]["candidates"]["properties"]["icl_examples"]["oneOf"]
    assert [f["type"] for f in forms] == ["string", "object"]
    props = forms[1]["properties"]
    assert props["url"]["default"] == AUTHORS_URL
    assert props["sha256"]["default"] == AUTHORS_SHA256


def test_a_local_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("".join(synthetic_line(f"Sentence {i}.", f"W{i}") + "\n" for i in range(4)))
    select = parse_select("s", {"candidates": {"icl_examples": str(path)}}, [], REGISTRY)
    icl = select.candidates.icl_examples
    assert not icl.fetched and icl.file == str(path) and icl.sha256 is None
    assert demos.estimated_candidates(select) == 4
    assert select.to_params()["candidates"]["icl_examples"]["path"] == str(path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("no/such/file.txt", "candidates.icl_examples: no such file no/such/file.txt"),
        ({"url": "file:///etc/passwd"}, "candidates.icl_examples.url: expected an http(s) URL"),
        ({"sha256": "abc"}, "candidates.icl_examples.sha256: expected a sha256"),
        ({"sha": AUTHORS_SHA256}, "unknown key 'sha' (did you mean 'sha256'?)"),
        (["a.txt"], "expected a file path or a mapping {url, sha256}"),
    ],
)
def test_a_bad_icl_examples_value_is_one_config_error(value, expected):
    with pytest.raises(ConfigError) as err:
        parse_select("s", {"candidates": {"icl_examples": value}}, [], REGISTRY)
    assert str(err.value).startswith("demos.s.select: ") and expected in str(err.value)


def test_the_pool_reads_a_fetched_file_after_files_and_checks_its_pin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("A man is smoking.\tSmoking\n")
    body = (
        synthetic_line("A man is smoking.", "Smoking")  # a duplicate of the file's: dropped
        + "\n"
        + synthetic_line("meat from a deer.", "Venison")
        + "\n"
    ).encode()
    pin = hashlib.sha256(body).hexdigest()
    fetched = Path(fetched_path(pin))
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(body)
    spec = {"files": [str(tsv)], "icl_examples": {"sha256": pin}, "dictionary": True}
    select = parse_select("s", {"candidates": spec}, [], REGISTRY)
    # as the selection job gets it: from the rule's params (no URL)
    select = demos.SelectOptions.from_mapping(select.to_params())
    pool, n_pooled = gather_candidates(select)
    assert [c.source for c in pool[:2]] == [f"file:{tsv}", ICL_SOURCE]
    assert (pool[1].sentence, pool[1].word) == ("meat from a deer.", "Venison")
    assert {c.source for c in pool[2:]} == {"dictionary"} and n_pooled == len(pool)
    fetched.write_bytes(body + synthetic_line("An edit.", "Edit").encode())
    with pytest.raises(DataError, match="does not match the pin"):
        gather_candidates(select)


# ------------------------------------------------------------------------- the workflow
def _jobs(log: str, rule: str) -> list[dict[str, str]]:
    """The (dry) run log's jobs of ``rule``: each job's ``key: value`` lines."""
    blocks = re.split(r"\n(?=(?:local)?rule \w+:\n)", log)
    return [
        dict(re.findall(r"^ {4}(\w+): (.*)$", b, re.M))
        for b in blocks
        if re.match(rf"(local)?rule {rule}:\n", b)
    ]


@pytest.mark.integration
def test_paper_dry_run_fetches_once_and_every_search_waits_for_it(tmp_path):
    """config/paper.yaml through the cluster profile: one fetch_file job, and per model one
    select_demo job of the `paper-search` choice that takes the pinned file as input and
    asks for the model's GPUs and five embed runtimes (301 passes x 3000 dev sentences)."""
    paper = REPO_ROOT / "config" / "paper.yaml"
    proc = run_snakemake(
        tmp_path, "--dry-run", "--profile", str(REPO_ROOT / "profiles" / "slurm"), configfile=paper
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    counts = job_stats(log)
    n_models = len(yaml.safe_load(paper.read_text())["models"])
    assert counts["fetch_file"] == 1 and counts["select_demo"] == n_models
    pinned = fetched_path(AUTHORS_SHA256)
    assert [job["output"] for job in _jobs(log, "fetch_file")] == [pinned]
    embed = {}
    for job in _jobs(log, "embed"):
        res = dict(kv.split("=", 1) for kv in job["resources"].split(", "))
        embed[job["wildcards"].split(", ")[0]] = res
    selections = _jobs(log, "select_demo")
    assert len(selections) == n_models
    for job in selections:
        assert pinned in job["input"].split(", ")
        assert "/paper-search/selected.json" in job["output"]
        res = dict(kv.split("=", 1) for kv in job["resources"].split(", "))
        model = job["wildcards"].split(", ")[0]
        assert res["gpu"] == embed[model]["gpu"] and res["mem_mb"] == embed[model]["mem_mb"]
        assert int(res["runtime"]) == 5 * int(embed[model]["runtime"])
    assert {job["wildcards"].split(", ")[0] for job in selections} == set(embed)


@pytest.fixture
def served(tmp_path):
    """(URL, body) of a synthetic icl_examples file served on 127.0.0.1."""
    www = tmp_path / "www"
    www.mkdir()
    body = "".join(synthetic_line(f"Sentence number {i}.", f"Word{i}") + "\n" for i in range(3))
    (www / "icl.txt").write_text(body)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", body.encode()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.integration
def test_the_workflow_fetches_from_the_configured_url(tmp_path, served, data_dir):
    base, body = served
    pin = hashlib.sha256(body).hexdigest()
    workdir = tmp_path / "study"
    workdir.mkdir()

    def study(url: str, sha256: str) -> Path:
        config = yaml.safe_load(TEST_STUDY_CONFIG.read_text())
        config["demos"]["search"] = {
            "select": {"candidates": {"icl_examples": {"url": url, "sha256": sha256}}}
        }
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    target = fetched_path(pin)
    proc = run_snakemake(
        workdir, "--cores", "1", target,
        configfile=study(f"{base}/icl.txt", pin), config={"data_dir": str(data_dir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (workdir / target).read_bytes() == body
    log = (workdir / "results/logs/fetch" / f"{target}.log").read_text()
    assert f"{base}/icl.txt -> {target}" in log and pin in log
    # another URL for the same pin (a mirror): nothing to redo, no selection to rerun
    proc = run_snakemake(
        workdir, "--cores", "1", target,
        configfile=study(f"{base}/mirror/icl.txt", pin), config={"data_dir": str(data_dir)},
    )  # fmt: skip
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    # a wrong pin: one error naming the URL, nothing written
    wrong = hashlib.sha256(b"other").hexdigest()
    proc = run_snakemake(
        workdir, "--cores", "1", fetched_path(wrong),
        configfile=study(f"{base}/icl.txt", wrong), config={"data_dir": str(data_dir)},
    )  # fmt: skip
    assert proc.returncode != 0
    assert f"{base}/icl.txt: sha256 {pin}" in proc.stderr and f"pin {wrong}" in proc.stderr
    assert not (workdir / fetched_path(wrong)).exists()
    assert sorted(p.name for p in (workdir / "resources/data").iterdir()) == [Path(target).name]
