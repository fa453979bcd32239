"""SentEval-exact data loading: counts, spot values, quirks, fingerprints and clear errors.

Counts are SentEval's (as reported by SentEval/SimCSE). Corruption tests copy just the files of
one task from the real data into tmp_path, then damage them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sentscale.data import (
    ALL_TASKS,
    EXTRA_TASKS,
    STS_SUBSETS,
    STS_TASKS,
    TRANSFER_TASKS,
    TREC_CLASSES,
    LabelledPairs,
    LabelledSentences,
    SentencePairs,
    check_data_dir,
    fingerprint,
    load_task,
    required_files,
    task_fingerprint,
)
from sentscale.datasets import SPLIT_ITEMS
from sentscale.errors import DataError

# split -> number of scored items, in the split order load_task must produce: the counts the
# fetched-data check (sentscale.datasets) also verifies; ../shared/data/README.md lists them
COUNTS = SPLIT_ITEMS
TOTALS = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186}

KINDS = {
    **{t: "sts" for t in STS_TASKS + EXTRA_TASKS},
    **{t: "classification" for t in ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC")},
    "MRPC": "pair-classification",
}

# Class counts per split (index = label); SentEval puts the "pos" file first with label 1.
CLASS_COUNTS = {
    ("MR", "all"): [5331, 5331],
    ("CR", "all"): [1368, 2407],
    ("SUBJ", "all"): [5000, 5000],
    ("MPQA", "all"): [7294, 3312],
    ("SST2", "train"): [29780, 37569],
    ("SST2", "dev"): [428, 444],
    ("SST2", "test"): [912, 909],
    ("TREC", "train"): [86, 1162, 1250, 1223, 835, 896],
    ("TREC", "test"): [9, 138, 94, 65, 81, 113],
    ("MRPC", "train"): [1323, 2753],
    ("MRPC", "test"): [578, 1147],
}

_cache: dict[tuple[Path, str], object] = {}


@pytest.fixture(scope="session")
def load(data_dir):
    """load_task on the real data, each task read once per session."""

    def _load(task):
        if (data_dir, task) not in _cache:
            _cache[data_dir, task] = load_task(task, data_dir)
        return _cache[data_dir, task]

    return _load


def _copy_task(data_dir: Path, dest: Path, task: str) -> Path:
    """Copy just ``task``'s files (same layout) into ``dest``; return the new data dir."""
    for rel in required_files(task):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, dest / rel)
    return dest


def _edit_lines(path: Path, edit) -> None:
    """Rewrite a file's lines (bytes, line endings kept) with ``edit(list) -> list``."""
    path.write_bytes(b"".join(edit(path.read_bytes().splitlines(keepends=True))))


def _error(task: str, data_dir: Path) -> str:
    with pytest.raises(DataError) as info:
        load_task(task, data_dir)
    return str(info.value)


# ----------------------------------------------------------------------------- API shape


def test_task_lists():
    assert STS_TASKS == (
        "STS12",
        "STS13",
        "STS14",
        "STS15",
        "STS16",
        "STSBenchmark",
        "SICKRelatedness",
    )
    assert TRANSFER_TASKS == ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")
    assert ALL_TASKS == STS_TASKS + TRANSFER_TASKS + ("STSBenchmark-dev",)
    assert set(COUNTS) == set(ALL_TASKS)
    assert TREC_CLASSES == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


def test_required_files_are_relative_posix_paths():
    assert required_files("MR") == (
        "downstream/MR/rt-polarity.pos",
        "downstream/MR/rt-polarity.neg",
    )
    assert required_files("SUBJ") == (
        "downstream/SUBJ/subj.objective",
        "downstream/SUBJ/subj.subjective",
    )
    assert required_files("STSBenchmark-dev") == ("downstream/STS/STSBenchmark/sts-dev.csv",)
    sts12 = required_files("STS12")
    assert len(sts12) == 10
    assert sts12[:2] == (
        "downstream/STS/STS12-en-test/STS.input.MSRpar.txt",
        "downstream/STS/STS12-en-test/STS.gs.MSRpar.txt",
    )
    for task in ALL_TASKS:
        assert all(f.startswith("downstream/") and "\\" not in f for f in required_files(task))


def test_unknown_task_is_a_data_error(tmp_path):
    for call in (lambda: required_files("STS17"), lambda: load_task("STS17", tmp_path)):
        with pytest.raises(DataError, match="unknown task 'STS17'.*STS12"):
            call()


def test_containers_validate_and_freeze():
    pairs = SentencePairs(["a"], ["b"], [1])
    assert pairs.scores.dtype == np.float64 and len(pairs) == 1
    labelled = LabelledSentences(["a", "b"], [0, 1])
    assert labelled.labels.dtype == np.int64
    with pytest.raises(ValueError):
        labelled.labels[0] = 1  # read-only: loaded data cannot be changed by accident
    with pytest.raises(ValueError, match="differ in length"):
        LabelledPairs(["a"], ["b", "c"], [1])


# ----------------------------------------------------------------------------- real data


@pytest.mark.integration
@pytest.mark.parametrize("task", ALL_TASKS)
def test_counts_kind_and_files(task, load, data_dir):
    td = load(task)
    assert td.name == task
    assert td.kind == KINDS[task]
    assert {name: len(split) for name, split in td.splits.items()} == COUNTS[task]
    assert list(td.splits) == list(COUNTS[task])  # SentEval's subset/split order
    assert td.n_items() == sum(COUNTS[task].values())
    assert td.files == tuple(data_dir / f for f in required_files(task))
    split_type = {"sts": SentencePairs, "classification": LabelledSentences}.get(
        td.kind, LabelledPairs
    )
    for split in td.splits.values():
        assert isinstance(split, split_type)


@pytest.mark.integration
@pytest.mark.parametrize("task", list(TOTALS))
def test_sts_year_totals_and_subset_order(task, load):
    td = load(task)
    assert td.n_items() == TOTALS[task]
    assert tuple(td.splits) == STS_SUBSETS[task]


@pytest.mark.integration
@pytest.mark.parametrize(("task", "split"), list(CLASS_COUNTS))
def test_label_balance(task, split, load):
    labels = load(task).splits[split].labels
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == CLASS_COUNTS[task, split]


@pytest.mark.integration
def test_binary_tasks_put_positive_file_first(load):
    for task in ("MR", "CR", "SUBJ", "MPQA"):
        labels = load(task).splits["all"].labels
        n_pos = int(labels.sum())
        assert labels[:n_pos].tolist() == [1] * n_pos
        assert labels[n_pos:].tolist() == [0] * (len(labels) - n_pos)
    subj = load("SUBJ").splits["all"].sentences
    assert subj[0].startswith("the movie begins in the past")  # objective, label 1
    assert subj[5000].startswith("smart and alert , thirteen conversations")  # subjective


@pytest.mark.integration
@pytest.mark.parametrize(
    ("task", "split", "index", "first", "second", "target"),
    [
        (
            "STS12",
            "MSRpar",
            0,
            "the problem likely will mean corrective changes before the shuttle fleet "
            "starts flying again .",
            "he said the problem needs to be corrected before the space shuttle fleet is "
            "cleared to fly again .",
            4.4,
        ),
        (
            "STS15",
            "answers-forums",
            0,
            "you 'll need to check the particular policies of each publisher to see what is "
            "allowed and what is not allowed .",
            "if you need to publish the book and you have found one publisher that allows it .",
            3.0,
        ),
        (
            "STSBenchmark",
            "train",
            0,
            "a plane is taking off .",
            "an air plane is taking off .",
            5.0,
        ),
        (
            "STSBenchmark",
            "test",
            0,
            "a girl is styling her hair .",
            "a girl is brushing her hair .",
            2.5,
        ),
        (
            "SICKRelatedness",
            "train",
            0,
            "A group of kids is playing in a yard and an old man is standing in the background",
            "A group of boys in a yard is playing and a man is standing in the background",
            4.5,
        ),
        (
            "SICKRelatedness",
            "test",
            0,
            "There is no boy playing outdoors and there is no man smiling",
            "A group of kids is playing in a yard and an old man is standing in the background",
            3.3,
        ),
        (
            "MRPC",
            "train",
            0,
            'Amrozi accused his brother , whom he called " the witness " , of deliberately '
            "distorting his evidence .",
            'Referring to him as only " the witness " , Amrozi accused his brother of '
            "deliberately distorting his evidence .",
            1,
        ),
    ],
)
def test_known_pairs(task, split, index, first, second, target, load):
    data = load(task).splits[split]
    assert data.sent1[index] == first
    assert data.sent2[index] == second
    values = data.scores if isinstance(data, SentencePairs) else data.labels
    assert values[index] == target


@pytest.mark.integration
@pytest.mark.parametrize(
    ("task", "split", "index", "sentence", "label"),
    [
        (
            "MR",
            "all",
            0,
            "the rock is destined to be the 21st century 's new `` conan `` and that he 's going "
            "to make a splash even greater than arnold schwarzenegger , jean-claud van damme or "
            "steven segal .",
            1,
        ),
        ("CR", "all", 0, "im a more happier person after discovering the i/p button ! .", 1),
        ("MPQA", "all", 0, "are also being encouraged", 1),
        ("SST2", "train", 0, "hide new secretions from the parental units", 0),
        ("SST2", "test", 0, "uneasy mishmash of styles and genres .", 0),
        ("TREC", "train", 0, "How did serfdom develop in and then leave Russia ?", 1),  # DESC
        ("TREC", "test", 0, "How far is it from Denver to Aspen ?", 5),  # NUM
        # the single latin-1 byte in TREC (0xF0) decodes to 'ð'
        (
            "TREC",
            "train",
            65,
            "Which city has the oldest relationship as a sisterðcity with Los Angeles ?",
            4,
        ),
    ],
)
def test_known_sentences(task, split, index, sentence, label, load):
    data = load(task).splits[split]
    assert data.sentences[index] == sentence
    assert data.labels[index] == label


@pytest.mark.integration
def test_empty_lines_are_kept(load):
    # SentEval keeps CR's 4 and MPQA's 3 empty lines as (empty) samples.
    cr = load("CR").splits["all"].sentences
    assert [i for i, s in enumerate(cr) if s == ""] == [2322, 2406, 3175, 3774]
    mpqa = load("MPQA").splits["all"].sentences
    assert [i for i, s in enumerate(mpqa) if s == ""] == [3311, 9726, 10605]
    assert "" in load("CR").sentences()


@pytest.mark.integration
@pytest.mark.parametrize("task", ALL_TASKS)
def test_text_is_single_space_tokenised(task, load):
    # No '\r' (SICK test is CRLF), no BOM (MRPC), no tabs, edges or double spaces.
    for text in load(task).sentences():
        assert text == " ".join(text.split())
        assert "\r" not in text and "\ufeff" not in text and "\t" not in text


@pytest.mark.integration
def test_mrpc_bom_not_in_data(load, data_dir):
    assert (data_dir / "downstream/MRPC/msr_paraphrase_train.txt").read_bytes()[:3] == (
        b"\xef\xbb\xbf"
    )
    mrpc = load("MRPC")
    for split in mrpc.splits.values():
        assert set(split.labels.tolist()) == {0, 1}
        assert not any("\ufeff" in s for s in split.sent1 + split.sent2)


@pytest.mark.integration
def test_sts_scores_are_finite_and_in_range(load):
    for task in STS_TASKS + EXTRA_TASKS:
        for split in load(task).splits.values():
            assert split.scores.dtype == np.float64
            assert np.isfinite(split.scores).all()
            assert split.scores.min() >= 0 and split.scores.max() <= 5


@pytest.mark.integration
@pytest.mark.parametrize("task", list(STS_SUBSETS))
def test_sts_matches_senteval_reading(task, load, data_dir):
    # SentEval: zip input lines with gs lines, keep pairs whose gs line is not ''.
    folder = data_dir / f"downstream/STS/{task}-en-test"
    for subset, split in load(task).splits.items():
        rows = (folder / f"STS.input.{subset}.txt").read_text(encoding="utf8").splitlines()
        golds = (folder / f"STS.gs.{subset}.txt").read_text(encoding="utf8").splitlines()
        kept = [(r.split("\t"), g) for r, g in zip(rows, golds, strict=True) if g != ""]
        assert split.sent1 == [" ".join(r[0].split()) for r, _ in kept]
        assert split.sent2 == [" ".join(r[1].split()) for r, _ in kept]
        assert split.scores.tolist() == [float(g) for _, g in kept]


@pytest.mark.integration
def test_stsb_dev_is_the_stsb_dev_split(load):
    dev = load("STSBenchmark-dev")
    full = load("STSBenchmark").splits["dev"]
    assert list(dev.splits) == ["dev"]
    assert dev.splits["dev"].sent1 == full.sent1 and dev.splits["dev"].sent2 == full.sent2
    assert np.array_equal(dev.splits["dev"].scores, full.scores)


@pytest.mark.integration
def test_sentences_are_unique_in_first_seen_order(load):
    td = load("STS12")
    sentences = td.sentences()
    assert len(sentences) == len(set(sentences))
    first = td.splits["MSRpar"]
    assert sentences[:2] == [first.sent1[0], first.sent2[0]]
    everything = {s for split in td.splits.values() for s in split.sent1 + split.sent2}
    assert set(sentences) == everything
    mr = load("MR")
    assert mr.sentences() == mr.splits["all"].sentences  # MR has no duplicates


# ----------------------------------------------------------------------------- data dir checks


@pytest.mark.integration
def test_check_data_dir_accepts_real_data(data_dir):
    check_data_dir(data_dir, ALL_TASKS)
    check_data_dir(data_dir, "MR")  # a single name is not iterated letter by letter


def test_check_data_dir_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as info:
        check_data_dir(missing, ["MR"])
    assert str(missing) in str(info.value)
    (tmp_path / "senteval").mkdir()
    with pytest.raises(DataError, match="no downstream/ folder"):
        load_task("MR", tmp_path / "senteval")


@pytest.mark.integration
def test_check_data_dir_lists_every_problem_at_once(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "MR")
    _copy_task(data_dir, tmp_path, "STS13")
    (tmp_path / "downstream/MR/rt-polarity.neg").unlink()
    (tmp_path / "downstream/STS/STS13-en-test/STS.gs.OnWN.txt").unlink()
    with pytest.raises(DataError) as info:
        check_data_dir(tmp_path, ["MR", "STS13", "TREC", "STS99"])
    message = str(info.value)
    assert "unknown task 'STS99'" in message
    for rel in (
        "downstream/MR/rt-polarity.neg",
        "downstream/STS/STS13-en-test/STS.gs.OnWN.txt",
        "downstream/TREC/train_5500.label",
        "downstream/TREC/TREC_10.label",
    ):
        assert str(tmp_path / rel) in message
    assert "rt-polarity.pos" not in message
    # load_task checks before reading anything
    assert "rt-polarity.neg" in _error("MR", tmp_path)


# ----------------------------------------------------------------------------- fingerprints


@pytest.mark.integration
def test_fingerprint_is_stable_and_location_independent(data_dir, tmp_path):
    fp = task_fingerprint("MR", data_dir)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert task_fingerprint("MR", data_dir) == fp
    copy = _copy_task(data_dir, tmp_path / "elsewhere", "MR")
    assert task_fingerprint("MR", copy) == fp
    paths = [copy / rel for rel in required_files("MR")]
    assert fingerprint(paths, root=copy) == fingerprint(paths[::-1], root=copy) == fp
    assert task_fingerprint("CR", data_dir) != fp
    neg = copy / "downstream/MR/rt-polarity.neg"
    neg.write_bytes(neg.read_bytes().replace(b"simplistic", b"Simplistic", 1))
    assert task_fingerprint("MR", copy) != fp


def test_fingerprint_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"xy")
    (tmp_path / "b").write_bytes(b"z")
    base = fingerprint([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / "b").write_bytes(b"yz")  # same concatenated bytes, different files
    assert fingerprint([tmp_path / "a", tmp_path / "b"]) != base
    (tmp_path / "c").write_bytes(b"x")
    assert fingerprint([tmp_path / "c", tmp_path / "b"]) != fingerprint(
        [tmp_path / "a", tmp_path / "b"]
    )
    with pytest.raises(DataError, match="nothing"):
        fingerprint([tmp_path / "nothing"])


# ----------------------------------------------------------------------------- corrupted data


@pytest.mark.integration
def test_sts_gs_file_shorter_than_input(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "STS12")
    _edit_lines(tmp_path / "downstream/STS/STS12-en-test/STS.gs.MSRpar.txt", lambda ls: ls[:-1])
    message = _error("STS12", tmp_path)
    assert "STS.gs.MSRpar.txt has 749 lines" in message
    assert "STS.input.MSRpar.txt has 750" in message
    assert "line 750" in message and "expected one gold-score line per input pair" in message


@pytest.mark.integration
def test_sts_non_numeric_score(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "STS12")
    _edit_lines(
        tmp_path / "downstream/STS/STS12-en-test/STS.gs.MSRvid.txt",
        lambda ls: ls[:2] + [b"high\n"] + ls[3:],
    )
    message = _error("STS12", tmp_path)
    assert "STS.gs.MSRvid.txt, line 3" in message
    assert "expected a numeric similarity score, got 'high'" in message


@pytest.mark.integration
def test_sts_input_wrong_column_count(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "STS16")
    _edit_lines(
        tmp_path / "downstream/STS/STS16-en-test/STS.input.headlines.txt",
        lambda ls: ls[:9] + [ls[9].replace(b"\t", b" ")] + ls[10:],
    )
    message = _error("STS16", tmp_path)
    assert "STS.input.headlines.txt, line 10" in message
    assert "expected 2 tab-separated sentences, got 1 columns" in message


@pytest.mark.integration
def test_stsb_line_cut_short(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "STSBenchmark")
    path = tmp_path / "downstream/STS/STSBenchmark/sts-test.csv"
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\t")  # drop the last line's second sentence
    path.write_bytes(data[:cut])
    message = _error("STSBenchmark", tmp_path)
    assert "sts-test.csv, line 1379" in message
    assert "expected at least 7 tab-separated columns" in message and "got 6" in message


@pytest.mark.integration
def test_stsb_non_numeric_score(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "STSBenchmark-dev")
    _edit_lines(
        tmp_path / "downstream/STS/STSBenchmark/sts-dev.csv",
        lambda ls: [ls[0].replace(b"\t5.000\t", b"\tfive\t")] + ls[1:],
    )
    message = _error("STSBenchmark-dev", tmp_path)
    assert "sts-dev.csv, line 1" in message
    assert "expected a numeric similarity score, got 'five'" in message


@pytest.mark.integration
def test_sick_missing_header_and_short_line(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "SICKRelatedness")
    path = tmp_path / "downstream/SICK/SICK_test_annotated.txt"
    original = path.read_bytes()
    _edit_lines(path, lambda ls: ls[1:])
    message = _error("SICKRelatedness", tmp_path)
    assert "SICK_test_annotated.txt, line 1" in message
    assert "expected a header line starting with 'pair_ID'" in message
    path.write_bytes(original)
    _edit_lines(path, lambda ls: ls[:4] + [b"9999\tonly one sentence\r\n"] + ls[5:])
    message = _error("SICKRelatedness", tmp_path)
    assert "SICK_test_annotated.txt, line 5" in message
    assert "expected at least 4 tab-separated columns" in message and "got 2" in message


@pytest.mark.integration
def test_sst2_bad_label(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "SST2")
    _edit_lines(
        tmp_path / "downstream/SST/binary/sentiment-dev",
        lambda ls: (
            ls[:6] + [ls[6].replace(b"\t1\n", b"\t2\n").replace(b"\t0\n", b"\t2\n")] + ls[7:]
        ),
    )
    message = _error("SST2", tmp_path)
    assert "sentiment-dev, line 7" in message and "expected label 0 or 1, got '2'" in message


@pytest.mark.integration
def test_sst2_invalid_utf8(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "SST2")
    _edit_lines(
        tmp_path / "downstream/SST/binary/sentiment-test",
        lambda ls: ls[:2] + [b"caf\xe9 au lait\t1\n"] + ls[3:],
    )
    message = _error("SST2", tmp_path)
    assert "sentiment-test, line 3" in message and "expected utf-8 text" in message


@pytest.mark.integration
def test_trec_unknown_label(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "TREC")
    _edit_lines(
        tmp_path / "downstream/TREC/TREC_10.label",
        lambda ls: ls[:41] + [b"COLOR:other What colour is the sky ?\n"] + ls[42:],
    )
    message = _error("TREC", tmp_path)
    assert "TREC_10.label, line 42" in message
    assert "expected a coarse label among ABBR, DESC, ENTY, HUM, LOC, NUM" in message
    assert "'COLOR'" in message


@pytest.mark.integration
def test_mrpc_wrong_column_count(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "MRPC")
    _edit_lines(
        tmp_path / "downstream/MRPC/msr_paraphrase_test.txt",
        lambda ls: ls[:-1] + [ls[-1].rsplit(b"\t", 1)[0] + b"\n"],
    )
    message = _error("MRPC", tmp_path)
    assert "msr_paraphrase_test.txt, line 1726" in message
    assert "expected 5 tab-separated columns" in message and "got 4" in message


@pytest.mark.integration
def test_empty_file(data_dir, tmp_path):
    _copy_task(data_dir, tmp_path, "CR")
    (tmp_path / "downstream/CR/custrev.neg").write_bytes(b"")
    message = _error("CR", tmp_path)
    assert "custrev.neg is empty" in message and "expected at least one line" in message


def test_universal_newlines_match_senteval(tmp_path):
    # SentEval iterates io.open(...) lines: '\r\n' and a lone '\r' both end a line.
    folder = tmp_path / "downstream/SST/binary"
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (folder / f"sentiment-{split}").write_bytes(b"a  b \t1\r\nc\t0\rd\t1")
    td = load_task("SST2", tmp_path)
    with open(folder / "sentiment-dev", encoding="utf-8") as fh:
        rows = [line.strip().split("\t") for line in fh]
    expected = [(" ".join(text.split()), int(label)) for text, label in rows]
    got = list(zip(td.splits["dev"].sentences, td.splits["dev"].labels.tolist(), strict=True))
    assert got == expected == [("a b", 1), ("c", 0), ("d", 1)]
