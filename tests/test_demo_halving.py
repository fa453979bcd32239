"""``selection: halving``, the token ids shared across candidates, and the search benchmark."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from test_demos import _tiny_llama, fake_factory

from sentscale import demos, evaluation, prompts
from sentscale.demos import Candidate, halving
from sentscale.embed import Embedder
from sentscale.errors import ConfigError
from sentscale.models import Registry

REGISTRY = Registry.load()
VARIANT = prompts.get_variant("eol")
CANDS = [
    Candidate("A man is smoking.", "Smoking", "f"),
    Candidate("a large wild cat with a mane, found in africa.", "Lion", "f"),
    Candidate("Two dogs play in the snow.", "Playing", "f"),
    Candidate("to move swiftly on foot.", "Run", "f"),
    Candidate('A woman said "hello" twice .', "Greeting", "f"),  # a quote: build_prompt keeps it
]


def _select(**spec):
    return demos.parse_select(
        "s", {"candidates": {"dictionary": True}, **spec}, ["smollm2-135m"], REGISTRY
    )


# ----------------------------------------------------------------------------- config


def test_halving_options_default_validate_and_keep_exhaustive_params():
    select = _select(selection="halving", halving={"pairs": [50, 200, None], "keep": 0.5})
    assert select.halving == demos.Halving(pairs=(50, 200, None), keep=0.5, min_keep=3)
    assert demos.SelectOptions.from_mapping(select.to_params()) == select
    # exhaustive params are what they were before halving existed (no selection job reruns)
    assert set(_select().to_params()) == {"candidates", "dev_max_items", "max_candidates", "seed"}
    assert _select().selection == "exhaustive"
    # job resources: the 44 dictionary candidates, then 22 and 11 over 50, 200 and 1500 pairs
    n = demos.estimated_candidates(select)
    assert demos.estimated_full_passes(_select()) == n == 44
    assert demos.estimated_full_passes(select) == pytest.approx((44 * 50 + 22 * 200) / 1500 + 11)
    with pytest.raises(ConfigError) as err:
        _select(
            selection="halve",
            dev_max_items=100,
            halving={"pairs": [80, 100, None], "keep": 1.0, "min_keep": 0, "pair": 1},
        )
    message = str(err.value)
    for expected in (
        "selection must be one of ['exhaustive', 'halving']",
        "unknown key 'pair' (did you mean 'pairs'?)",
        "smaller than the full dev set (dev_max_items: 100)",
        "keep: the fraction promoted must be in (0, 1), got 1.0",
        "min_keep must be a positive integer, got 0",
    ):
        assert expected in message
    for pairs, expected in (
        ([100, 300], "the last round must be null"),
        ([300, 100, None], "subset sizes must increase"),
        ([1, None], "an integer >= 2"),
        ([], "expected a list"),
    ):
        with pytest.raises(ConfigError, match=expected):
            _select(selection="halving", halving={"pairs": pairs})


def test_the_schema_accepts_halving_and_refuses_a_bad_fraction(repo_root):
    import jsonschema
    import yaml

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    select = schema["properties"]["demos"]["additionalProperties"]["properties"]["select"]
    good = {
        "candidates": {"dictionary": True},
        "selection": "halving",
        "halving": {"pairs": [100, 300, None], "keep": 0.25, "min_keep": 3},
    }
    jsonschema.validate(good, select)
    for bad in ({"keep": 1}, {"pairs": [100, 300]}, {"min_keep": 0}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "halving": {**good["halving"], **bad}}, select)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "selection": "random"}, select)


# ----------------------------------------------------------------------------- rounds


def test_nested_subsets_are_seeded_nested_and_sorted():
    first = halving.nested_subsets(1500, [100, 300], seed=1111)
    assert [len(s) for s in first] == [100, 300]
    assert set(first[0]) < set(first[1]) and all(np.all(np.diff(s) > 0) for s in first)
    again = halving.nested_subsets(1500, [100, 300], seed=1111)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], halving.nested_subsets(1500, [100], seed=7)[0])
    with pytest.raises(ConfigError, match="subset rounds of \\[1500\\] pairs"):
        halving.nested_subsets(1500, [100, 1500], seed=1)
    h = demos.Halving(keep=0.25, min_keep=3)
    assert [halving.promoted(n, h) for n in (50, 13, 8, 2)] == [13, 4, 3, 2]


def test_halving_keeps_the_lexical_candidates_and_scores_finalists_as_exhaustive(data_dir):
    """Fake encoders: 'Lexical' demos track STS gold, the rest are noise. Halving must keep the
    lexical ones, and its finalists' scores must be exhaustive's numbers, bit for bit."""
    cands = [Candidate(f"noise {i}.", f"Noise{i}", "f") for i in range(10)]
    cands[3] = Candidate("A lexical demo.", "Lexical", "f")
    cands[8] = Candidate("Another lexical demo.", "Lexical", "f")
    select = _select(
        selection="halving",
        dev_max_items=400,
        halving={"pairs": [40, 120, None], "keep": 0.3, "min_keep": 2},
    )
    calls: list = []
    rows, base, rounds = demos.search_candidates(
        fake_factory(calls), cands, data_dir=data_dir, select=select
    )
    assert [(r["pairs"], r["candidates"], r["promoted"]) for r in rounds] == [
        (40, 10, 3),
        (120, 3, 2),
        (400, 2, 0),
    ]
    assert len(calls) == 1 + 10 + 3 + 2  # baseline, then the rounds
    finalists = [r["candidate"] for r in rows if r["round"] == 3]
    assert finalists == [3, 8]
    ex_rows, ex_base = demos.score_candidates(
        fake_factory([]), cands, data_dir=data_dir, dev_max_items=400, seed=select.seed
    )
    assert base == {**ex_base, "encode_s": base["encode_s"]}
    for i in finalists:
        assert rows[i]["dev_spearman"] == ex_rows[i]["dev_spearman"] == rows[i]["round_spearman"]
    assert all(math.isnan(r["dev_spearman"]) for r in rows if r["round"] < 3)
    assert demos.select_best(rows)["candidate"] == demos.select_best(ex_rows)["candidate"] == 3
    # a subset round's score is evaluate()'s STS-B dev score of those very pairs
    (subset, _) = halving.nested_subsets(400, [40, 120], select.seed)
    dev = demos.load_dev(data_dir, 400, select.seed)
    task = halving.subset_task(dev, subset)
    encode = fake_factory([])((cands[5].demo,))
    assert rows[5]["round"] == 1 and rows[5]["round_pairs"] == 40
    assert rows[5]["round_spearman"] == halving.score_subset(encode, task)
    assert len(task.splits["dev"]) == 40


def test_halving_ranking_tsv_columns_and_order(tmp_path, data_dir):
    cands = [Candidate(f"noise {i}.", f"Noise{i}", "f") for i in range(6)]
    cands[4] = Candidate("A lexical demo.", "Lexical", "f")
    select = _select(selection="halving", dev_max_items=200, halving={"pairs": [50, None]})
    rows, _, _ = demos.search_candidates(fake_factory([]), cands, data_dir=data_dir, select=select)
    demos.write_ranking(tmp_path / "ranking.tsv", rows)
    table = demos.read_ranking(tmp_path / "ranking.tsv")
    assert list(table.columns) == demos.RANKING_COLUMNS + demos.HALVING_COLUMNS
    assert list(table["round"]) == [2, 2, 2, 1, 1, 1]  # finalists first
    assert table["candidate"].iloc[0] == 4 and table["round_pairs"].iloc[-1] == 50
    assert table["dev_spearman"].isna().sum() == 3
    finalists = table[table["round"] == 2]["round_spearman"].to_numpy()
    assert list(finalists) == sorted(finalists, reverse=True)


# ----------------------------------------------------------------------------- token ids


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b", "gemma3-270m"])
def test_shared_token_ids_equal_whole_prompt_tokenisation(name, data_dir, models_dir):
    """Every STS-B dev sentence, several demonstrations: the ids DemoTokens hands out are the
    tokenizer's ids of the whole prompt. Byte-level BPE reuses; Gemma's whole-string BPE
    (no pre-tokenizer cut) must fall back to whole prompts."""
    from transformers import AutoTokenizer

    path = models_dir / name
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"{name} is not provisioned")
    tokenizer = AutoTokenizer.from_pretrained(path)
    sentences = evaluation.sentences_to_encode(demos.load_dev(data_dir, None, 1111))
    shared = demos.DemoTokens()

    class Stub:  # what DemoTokens reads of an Embedder
        def __init__(self, demo_list):
            self.demos, self.variant, self.preprocess = demo_list, VARIANT, True
            self.tokenizer = tokenizer
            self._tokenize = lambda p: Embedder._tokenize(self, p)
            self.name = name

    for cand in CANDS:
        stub = Stub((cand.demo,))
        prompt_list = [prompts.build_prompt(s, VARIANT, stub.demos) for s in sentences]
        assert shared(stub, sentences, prompt_list) == stub._tokenize(prompt_list)
    n = len(CANDS) * len(sentences)
    if name == "gemma3-270m":
        assert (shared.reused, shared.tokenised) == (0, n)
    else:
        assert (shared.reused, shared.tokenised) == (n, 0)


def test_exhaustive_search_is_bit_identical_to_plain_evaluate(tmp_path, data_dir):
    """Tiny random Llama, 150 dev pairs: the search (shared token ids, meter) gives exactly the
    scores of a plain per-candidate evaluate() with a fresh Embedder, and the same ranking TSV
    bytes; halving's finalists get the same numbers."""
    model, tok = _tiny_llama()
    cands = CANDS[:4]
    factory = demos.embedder_factory(
        model, tok, VARIANT, name="tiny", tokens=demos.DemoTokens(), meter=(meter := {})
    )
    select = _select(dev_max_items=150)
    rows, base, _ = demos.search_candidates(factory, cands, data_dir=data_dir, select=select)
    plain = []
    for i, cand in enumerate(cands):
        encoder = Embedder(model, tok, VARIANT, (cand.demo,), name="tiny", progress=False)
        result = evaluation.evaluate(
            encoder.encode, ["STSBenchmark-dev"], data_dir, max_items=150, seed=select.seed
        )["STSBenchmark-dev"]
        plain.append({**rows[i], "dev_spearman": float(result["score"])})
        assert rows[i]["dev_spearman"] == float(result["score"])
    demos.write_ranking(tmp_path / "a.tsv", rows)
    demos.write_ranking(tmp_path / "b.tsv", plain)
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    n_sentences = len(evaluation.sentences_to_encode(demos.load_dev(data_dir, 150, 1111)))
    assert meter["prompts"] == 5 * n_sentences  # baseline + 4 candidates
    assert meter["prompt_tokens"] > meter["forward_tokens"] > 0  # the prefix ran once a pass
    halved = _select(selection="halving", dev_max_items=150, halving={"pairs": [60, None]})
    h_rows, _, _ = demos.search_candidates(factory, cands, data_dir=data_dir, select=halved)
    for row in h_rows:
        if row["round"] == 2:
            assert row["dev_spearman"] == rows[row["candidate"]]["dev_spearman"]


# ----------------------------------------------------------------------------- benchmark


@pytest.mark.integration
def test_demo_search_benchmark_on_smollm2(tmp_path, repo_root, data_dir, models_dir):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable, str(repo_root / "benchmarks" / "demo_search.py"),
            "--models", "smollm2-135m", "--data-dir", str(data_dir),
            "--models-dir", str(models_dir), "--dev-max-items", "60", "--max-candidates", "6",
            "--self-labelled", "0", "--pairs", "20", "null", "--keep", "0.3", "--min-keep", "2",
            "--json", str(out),
        ],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    ex, ha = result["exhaustive"], result["halving"]
    assert result["n_candidates"] == 6 and result["dev_pairs"] == 60
    assert [r["candidates"] for r in ha["rounds"]] == [6, 2]
    assert ha["prompt_tokens"] < ex["prompt_tokens"] and ha["prompts"] < ex["prompts"]
    assert ex["token_ids"]["reused"] == 6 * ex["rounds"][0]["sentences"]
    full = {r["candidate"]: r["dev_spearman"] for r in ex["rows"]}
    assert ha["winner"]["dev_spearman"] == full[ha["winner"]["candidate"]]
    assert ex["winner"]["dev_spearman"] == max(full.values())
    assert result["difference"] == pytest.approx(max(full.values()) - ha["winner"]["dev_spearman"])
    assert "| smollm2-135m | halving / exhaustive |" in proc.stdout


def test_benchmark_simulation_replays_halving_on_saved_cosines(tmp_path, repo_root):
    """Candidate i's cosines are gold plus noise shrinking with i: the last is the exhaustive
    winner by a wide margin, so every seed's halving must pick it, at the cost the rounds
    imply (20 x 50 + 5 x 150 + 3 x 400 pair scorings of 20 x 400)."""
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 400)
    cos = np.stack([gold + rng.normal(0, 8 - 0.4 * i, 400) for i in range(20)])
    np.savez(tmp_path / "cos.npz", cos=cos, gold=gold)
    proc = subprocess.run(
        [
            sys.executable, str(repo_root / "benchmarks" / "demo_search.py"),
            "--simulate", str(tmp_path / "cos.npz"), "--seeds", "5",
            "--pairs", "50", "150", "null", "--keep", "0.25", "--min-keep", "3",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["within_0.2"] == 1.0 and out["candidates"] == 20
    assert out["pair_scorings_ratio"] == pytest.approx((20 * 50 + 5 * 150 + 3 * 400) / 8000)
