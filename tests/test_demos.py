"""Demonstration candidates and their selection on STS-B dev (sentscale.demos)."""

from __future__ import annotations

import builtins
import copy
import hashlib
import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import yaml

from sentscale import demos, prompts
from sentscale.context import JobContext
from sentscale.demos import Candidate
from sentscale.errors import ConfigError, DataError, ModelError
from sentscale.models import Registry
from sentscale.study import Study

REGISTRY = Registry.load()
SIZES = {"smollm2-135m": 134_515_008, "qwen2.5-coder-0.5b": 630_167_424}

# ----------------------------------------------------------------------------- selection rule


def rows(*scores):
    return [
        {"candidate": i, "sentence": f"s{i}.", "word": f"W{i}", "dev_spearman": s}
        for i, s in enumerate(scores)
    ]


def test_select_best_is_the_argmax():
    assert demos.select_best(rows(10.0, 52.5, 31.0, 52.4))["candidate"] == 1


def test_select_best_ties_go_to_the_first_candidate():
    assert demos.select_best(rows(40.0, 55.0, 12.0, 55.0, 55.0))["candidate"] == 1
    # pool order is the tie-break, not the order rows happen to come in
    shuffled = list(reversed(rows(40.0, 55.0, 12.0, 55.0, 55.0)))
    assert demos.select_best(shuffled)["candidate"] == 1


def test_nan_never_wins_and_ranks_last():
    ranking = demos.rank(rows(math.nan, 20.0, -5.0, 20.0))
    assert [r["candidate"] for r in ranking] == [1, 3, 2, 0]
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4]
    assert demos.select_best(rows(math.nan, -5.0))["candidate"] == 1
    with pytest.raises(ValueError, match="no candidate has a finite dev score"):
        demos.select_best(rows(math.nan, math.nan))


# ----------------------------------------------------------------------------- candidate files


def test_candidate_file_reads_comments_header_and_pairs(tmp_path):
    path = tmp_path / "cands.tsv"
    path.write_text("# my candidates\nsentence\tword\nA dog barks.\tBarking\n\nof cats.\tFeline\n")
    got = demos.read_candidates(path)
    assert [(c.sentence, c.word) for c in got] == [
        ("A dog barks.", "Barking"),
        ("of cats.", "Feline"),
    ]
    assert {c.source for c in got} == {f"file:{path}"}


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("A dog barks.\tBarking\textra", "expected 2 tab-separated columns"),
        ("A dog barks. Barking", "expected 2 tab-separated columns"),
        ("A dog barks.\t", "expected an empty word"),
        ("A dog barks.\ttwo words", "expected one word"),
        ('A "dog" barks.\tBarking', "no double quote"),
    ],
)
def test_candidate_file_bad_line_names_file_and_line(tmp_path, bad_line, expected):
    path = tmp_path / "cands.tsv"
    path.write_text(f"# comment\nA man is smoking.\tSmoking\n\n{bad_line}\nof cats.\tFeline\n")
    with pytest.raises(DataError) as err:
        demos.read_candidates(path)
    message = str(err.value)
    assert f"{path}, line 4:" in message and expected in message


def test_candidate_file_without_candidates_or_not_utf8(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("# nothing\n\n")
    with pytest.raises(DataError, match="no candidates"):
        demos.read_candidates(empty)
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("ok.\tOk\ncaf\xe9.\tCafe\n".encode("latin-1"))
    with pytest.raises(DataError, match="line 2: expected utf-8"):
        demos.read_candidates(latin)


def test_shipped_dictionary_candidates_are_valid_and_distinct():
    cands = demos.dictionary_candidates()
    assert 30 <= len(cands) <= 60
    assert len({(c.sentence, c.word) for c in cands}) == len(cands)
    assert all(c.source == "dictionary" and " " not in c.word for c in cands)


def test_pool_drops_duplicates_and_caps_with_a_seed():
    a = [Candidate(f"s{i}.", f"W{i}", "a") for i in range(6)]
    b = [Candidate("s1.", "W1", "b"), Candidate("t.", "T", "b")]
    pool, n = demos.pool_candidates([a, b], None, 1)
    assert n == 7 and pool[1].source == "a" and pool[-1].word == "T"
    capped, n = demos.pool_candidates([a, b], 3, 1)
    assert n == 7 and len(capped) == 3
    assert capped == demos.pool_candidates([a, b], 3, 1)[0]  # seeded
    order = [pool.index(c) for c in capped]
    assert order == sorted(order)  # pool order kept


# ----------------------------------------------------------------------------- config


def test_parse_select_fills_defaults_and_collects_problems(tmp_path):
    spec = demos.parse_select(
        "sel", {"candidates": {"self_labelled": {"n": 4}}}, ["smollm2-135m"], REGISTRY
    )
    labelled = spec.candidates.self_labelled
    assert labelled.labeller == "self" and labelled.n == 4 and labelled.seed == 1111
    assert labelled.prime == (prompts.Demo("A man is smoking.", "Smoking"),)
    assert spec.dev_max_items is None and spec.max_candidates is None
    assert spec.candidates.files == () and spec.candidates.dictionary is False
    assert demos.labeller_for(spec, "gemma3-270m") == "gemma3-270m"
    # the params form (what jobs get) round-trips, keys sorted at every level
    as_dict = spec.to_dict()
    assert list(as_dict) == sorted(as_dict) and demos.SelectOptions.from_mapping(as_dict) == spec
    assert as_dict["candidates"]["self_labelled"]["prime"] == [
        {"sentence": "A man is smoking.", "word": "Smoking"}
    ]

    with pytest.raises(ConfigError) as err:
        demos.parse_select(
            "sel",
            {
                "candidates": {
                    "self_labelled": {"labeller": "minilm-l6"},
                    "files": [str(tmp_path / "missing.tsv")],
                },
                "dev_max_items": 0,
                "bogus": 1,
            },
            ["smollm2-135m"],
            REGISTRY,
        )
    message = str(err.value)
    assert message.startswith("demos.sel.select:")
    for part in ("bogus", "dev_max_items", "minilm-l6", "missing.tsv"):
        assert part in message
    with pytest.raises(ConfigError, match="no source"):
        demos.parse_select("sel", {"candidates": {}}, ["smollm2-135m"], REGISTRY)


def test_test_study_has_one_selection_cell(repo_root, data_dir):
    cfg = yaml.safe_load((repo_root / ".test" / "config" / "config.yaml").read_text())
    cfg["data_dir"] = str(data_dir)
    study = Study.from_config(cfg)
    cells = list(study.selection_cells())
    assert [(c.model, c.prompt, c.demo) for c in cells] == [("smollm2-135m", "eol", "selected")]
    assert study.fixed_demos(cells[0]) == ()
    bad = copy.deepcopy(cfg)
    bad["demos"]["selected"]["select"]["candidates"]["self_labelled"]["labeller"] = "opt-7b"
    with pytest.raises(ConfigError, match=r"demos.selected.select:.*opt-7b"):
        Study.from_config(bad)


# ----------------------------------------------------------------------------- scoring (no model)


def _bucket_vector(text: str, dim: int = 256) -> np.ndarray:
    vec = np.zeros(dim)
    for token in text.lower().split():
        vec[int(hashlib.md5(token.encode()).hexdigest(), 16) % dim] += 1.0
    return vec + 1e-3


def fake_factory(calls: list):
    """Demo word 'Lexical' -> bag-of-words vectors (lexical overlap tracks STS gold, rho ~0.6);
    any other word -> random vectors (rho ~0). Records the demos of every encoder built."""

    def make(demo_list):
        calls.append(tuple(demo_list))
        word = demo_list[0].word if demo_list else None

        def encode(sentences):
            if word == "Lexical":
                return np.stack([_bucket_vector(s) for s in sentences])
            seed = int(hashlib.md5(f"{word}".encode()).hexdigest(), 16) % 2**32
            rng = np.random.default_rng(seed)
            return rng.normal(size=(len(sentences), 16))

        return encode

    return make


def test_score_candidates_picks_the_argmax_on_a_constructed_case(data_dir):
    cands = [
        Candidate("A noisy demo.", "Noise", "file:x"),
        Candidate("A lexical demo.", "Lexical", "file:x"),
        Candidate("Another noisy demo.", "Static", "file:x"),
        Candidate("The same lexical demo again.", "Lexical", "file:x"),  # ties with #1
    ]
    calls: list = []
    ranking, base = demos.score_candidates(
        fake_factory(calls), cands, data_dir=data_dir, dev_max_items=200, seed=1
    )
    assert calls[0] == () and len(calls) == 1 + len(cands)  # baseline, then one per candidate
    assert [r["candidate"] for r in ranking] == [0, 1, 2, 3]
    assert all(r["n_pairs"] == 200 for r in ranking) and base["n_pairs"] == 200
    scores = [r["dev_spearman"] for r in ranking]
    assert scores[1] == scores[3] > 40 > max(abs(scores[0]), abs(scores[2]))
    best = demos.select_best(ranking)
    assert best["candidate"] == 1 == int(np.argmax(scores))


class ReadRecorder:
    """Record every file opened under ``root`` (builtins.open, Path.open/read_bytes/read_text)."""

    def __init__(self, monkeypatch, root: Path):
        self.root = root.resolve()
        self.paths: set[Path] = set()
        for owner, name in (
            (builtins, "open"),
            (Path, "open"),
            (Path, "read_bytes"),
            (Path, "read_text"),
        ):
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, original):
        def wrapped(first, *args, **kwargs):
            try:
                path = Path(first).resolve()
            except TypeError:  # a file descriptor
                path = None
            if path is not None and path.is_relative_to(self.root):
                self.paths.add(path)
            return original(first, *args, **kwargs)

        return wrapped

    def names(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.paths}


def test_selection_and_labelling_never_read_test_data(monkeypatch, data_dir):
    recorder = ReadRecorder(monkeypatch, data_dir)
    cands = [Candidate("A lexical demo.", "Lexical", "f"), Candidate("x y z.", "Noise", "f")]
    ranking, _ = demos.score_candidates(
        fake_factory([]), cands, data_dir=data_dir, dev_max_items=50, seed=1
    )
    assert demos.select_best(ranking)["candidate"] == 0
    assert recorder.names() == {"downstream/STS/STSBenchmark/sts-dev.csv"}

    recorder.paths.clear()
    sentences = demos.stsb_train_sentences(data_dir)
    assert len(sentences) > 5000
    assert recorder.names() == {"downstream/STS/STSBenchmark/sts-train.csv"}


def test_the_guard_refuses_any_other_file(data_dir):
    test_file = data_dir / "downstream/STS/STSBenchmark/sts-test.csv"
    with pytest.raises(DataError, match="test data must never inform the choice"):
        demos.check_selection_files([test_file], data_dir, demos.SELECTION_FILES)
    assert all("test" not in f for f in demos.SELECTION_FILES + demos.LABELLING_FILES)


# ----------------------------------------------------------------------------- self-labelling


@pytest.mark.parametrize(
    ("generated", "word"),
    [
        ('Smoking".', "Smoking"),
        (' horseback-riding"', "horseback-riding"),
        ('Music."\n', "Music"),
        ('Playing guitar".This', None),  # two words
        ("A man is playing a", None),  # no closing quote: cut off
        ('"', None),  # empty answer
        ('2013".', None),  # no letter
    ],
)
def test_extract_word(generated, word):
    assert demos.extract_word(generated) == word


def test_sample_sentences_is_seeded_and_filtered():
    sentences = [f"word {i} of a sentence" for i in range(50)] + ["too short", 'has "quote" in it']
    first = demos.sample_sentences(sentences, 7)
    assert first == demos.sample_sentences(sentences, 7) != demos.sample_sentences(sentences, 8)
    assert sorted(first) == sorted(sentences[:50])


def _tiny_llama():
    import torch
    from tokenizers import Tokenizer
    from tokenizers import models as tok_models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *chars])}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(tok_models.BPE(vocab=vocab, merges=[], unk_token="<unk>")),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, pad_token_id=0, bos_token_id=1,
        eos_token_id=2,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval(), tok


def test_self_label_on_a_tiny_model_is_deterministic():
    model, tok = _tiny_llama()
    sentences = ["a dog runs in the park .", "two men play chess .", "the sun is hot ."]
    first = demos.generate_labels(model, tok, sentences, max_new_tokens=5)
    assert first == demos.generate_labels(model, tok, sentences, max_new_tokens=5)
    assert len(first) == 3 and all(isinstance(g, str) for g in first)
    cands, attempts = demos.self_label(model, tok, sentences, n=3, labeller="tiny")
    assert len(attempts) == 3 and [a["sentence"] for a in attempts] == sentences
    for cand in cands:
        assert cand.source == "self-labelled:tiny" and len(cand.word.split()) == 1


# ----------------------------------------------------------------------------- real model


@pytest.mark.integration
def test_smollm2_labels_one_word_per_sentence_deterministically(models_dir):
    from sentscale import models

    model, tok = models.load_causal_lm(
        REGISTRY["smollm2-135m"], models_dir=models_dir, device="cpu"
    )
    # STS-B train sentences smollm2 answers with one word (checked by hand)
    sentences = ["the man tased the food .", "parents received letters informing them ."]
    runs = [
        demos.self_label(model, tok, sentences, n=2, labeller="smollm2-135m", prime=[
            prompts.Demo("A man is smoking.", "Smoking")
        ])
        for _ in range(2)
    ]  # fmt: skip
    (cands, attempts), (again, _) = runs
    assert cands == again
    assert [c.sentence for c in cands] == sentences
    assert all(len(c.word.split()) == 1 and '"' not in c.word for c in cands)
    assert all(a["word"] is not None for a in attempts)


@pytest.mark.integration
def test_select_demo_end_to_end_on_smollm2(tmp_path, data_dir, models_dir):
    """Three candidates, 50 STS-B dev pairs: the chosen demo is the top of the written ranking,
    which is sorted by dev score, and the record states what it cost."""
    cand_file = tmp_path / "cands.tsv"
    cand_file.write_text(
        "A man is smoking.\tSmoking\n"
        "a baby in a highchair holds a ketchup packet .\tHolds\n"
        "a large wild cat with a mane, found in africa.\tLion\n"
    )
    select = demos.parse_select(
        "selected",
        {"candidates": {"files": [str(cand_file)]}, "dev_max_items": 50},
        ["smollm2-135m"],
        REGISTRY,
    )
    cell = {
        "model": "smollm2-135m",
        "prompt": prompts.get_variant("eol").to_dict(),
        "choice": "selected",
        "select": select.to_dict(),
        "labeller": None,
        "embed": {"dtype": "float32", "batch_size": 32, "device": "cpu"},
        "registry": {},
    }
    out = tmp_path / "results"
    record = demos.select_demo_job(
        JobContext.from_params(cell, threads=2),
        cell,
        data_dir=data_dir,
        models_dir=models_dir,
        out_selected=out / "selected.json",
        out_ranking=out / "ranking.tsv",
    )
    ranking = demos.read_ranking(out / "ranking.tsv")
    assert len(ranking) == 3 and list(ranking["rank"]) == [1, 2, 3]
    assert list(ranking["dev_spearman"]) == sorted(ranking["dev_spearman"], reverse=True)
    top = ranking.iloc[int(np.argmax(ranking["dev_spearman"].to_numpy()))]
    saved = json.loads((out / "selected.json").read_text())
    assert saved == json.loads(json.dumps(record, default=str))
    assert (saved["demo"]["sentence"], saved["demo"]["word"]) == (top["sentence"], top["word"])
    assert saved["dev_spearman"] == pytest.approx(top["dev_spearman"], abs=1e-4)
    assert saved["dev_pairs"] == 50 and saved["n_candidates"] == 3
    assert saved["dev_gain"] == pytest.approx(saved["dev_spearman"] - saved["no_demo_dev_spearman"])
    assert saved["cost"]["passes"] == 4 and saved["cost"]["sentences_embedded"] > 4 * 90
    assert saved["data_files"] == ["downstream/STS/STSBenchmark/sts-dev.csv"]
    assert demos.read_selected(out / "selected.json") == (
        prompts.Demo(top["sentence"], top["word"]),
    )


# ----------------------------------------------------------------------------- reports


def _fake_selection(root: Path, model: str, scores: list[float], none: float) -> tuple[Path, Path]:
    rows_ = [
        {"candidate": i, "sentence": f"s{i}.", "word": f"W{i}", "source": "f", "dev_spearman": v}
        for i, v in enumerate(scores)
    ]
    folder = root / model / "eol" / "selected"
    demos.write_ranking(folder / "ranking.tsv", rows_)
    best = demos.select_best(rows_)
    record = {
        "model": model,
        "prompt": "eol",
        "choice": "selected",
        "demo": {"sentence": best["sentence"], "word": best["word"]},
        "source": "f",
        "dev_spearman": best["dev_spearman"],
        "no_demo_dev_spearman": none,
        "dev_gain": best["dev_spearman"] - none,
        "dev_scores": {"min": min(scores), "max": max(scores)},
        "n_candidates": len(scores),
        "dev_pairs": 100,
        "cost": {"load_s": 1.0, "score_s": 9.0},
    }
    (folder / "selected.json").write_text(json.dumps(record))
    return folder / "selected.json", folder / "ranking.tsv"


def _score_file(root: Path, model: str, demo: str, task: str, score: float) -> Path:
    path = root / "scores" / model / "eol" / demo / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    cell = {"model": model, "prompt": "eol", "demo": demo}
    path.write_text(json.dumps({"cell": cell, "task": task, "score": score}))
    return path


def test_reports_ranking_plot_and_summary(tmp_path):
    small = _fake_selection(tmp_path, "smollm2-135m", [50.0, 61.5, 55.0], none=58.0)
    large = _fake_selection(tmp_path, "qwen2.5-coder-0.5b", [70.0, 69.0], none=72.5)
    ranking = demos.read_ranking(small[1])
    assert list(ranking["candidate"]) == [1, 2, 0] and list(ranking["rank"]) == [1, 2, 3]

    merged = tmp_path / "merged.tsv"
    demos.merge_rankings([small[1]], ["selected"], merged)
    assert list(demos.read_ranking(merged)["choice"]) == ["selected"] * 3

    png = tmp_path / "plot.png"
    demos.plot_dev_scores([large[0], small[0]], [large[1], small[1]], png, sizes=SIZES)
    assert png.read_bytes()[:4] == b"\x89PNG"

    scores = [
        _score_file(tmp_path, "smollm2-135m", "selected", "STSBenchmark", 60.0),
        _score_file(tmp_path, "smollm2-135m", "none", "STSBenchmark", 57.5),
        _score_file(tmp_path, "qwen2.5-coder-0.5b", "selected", "STSBenchmark", 71.0),
    ]
    rows_ = demos.summary_rows(
        [large[0], small[0]], scores, no_demo="none", tasks=["STSBenchmark"], sizes=SIZES
    )
    assert [r["model"] for r in rows_] == ["smollm2-135m", "qwen2.5-coder-0.5b"]  # by size
    assert rows_[0]["word"] == "W1" and rows_[0]["dev_gain"] == pytest.approx(3.5)
    assert rows_[0]["STSBenchmark gain"] == pytest.approx(2.5)
    # a model without a size is an error, never a silent 0 that sorts it first
    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b"):
        demos.summary_rows(
            [large[0]], scores, no_demo="none", tasks=["STSBenchmark"], sizes={"x": 1}
        )
    assert rows_[1]["dev_gain"] == pytest.approx(-2.5) and rows_[1]["STSBenchmark gain"] is None
    demos.write_summary(rows_, csv=tmp_path / "s.csv", markdown=tmp_path / "s.md")
    md = (tmp_path / "s.md").read_text()
    assert "s1. -> W1" in md and "+3.50" in md and "+2.50" in md and "n/a" in md
