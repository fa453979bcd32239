"""Contrastive LoRA fine-tuning (sentscale.finetune) on tiny random models built in-process.

The loss against a hand-computed InfoNCE, the adapter's save/reload round trip, the triplet
reader's errors, the recipe, the tracking curves and the workflow's DAG (dry run).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT, job_stats, run_snakemake
from test_embed import build

from sentscale import finetune, study
from sentscale.embed import Embedder
from sentscale.errors import ConfigError, DataError

ANCHOR = ["A man is playing a guitar.", "Two dogs run in a field.", "A woman cuts onions."]
POSITIVE = ["A man plays music.", "Animals are running outside.", "Someone is cooking."]
NEGATIVE = ["Nobody is playing.", "The dogs are asleep.", "A woman is swimming."]

#: A tiny recipe: plain LoRA in float32, no dropout (so the train-mode loss is deterministic).
TINY = {
    "quantization": None,
    "mixed_precision": None,
    "dtype": "float32",
    "lora_r": 4,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "batch_size": 3,
    "micro_batch_size": 3,
    "learning_rate": 1e-2,
    "warmup_steps": 0,
    "max_steps": 4,
    "eval_steps": 2,
    "dev_max_items": 12,
}


def recipe(**overrides):
    return finetune.resolve_recipe({**TINY, **overrides}, "tiny")


def trainer(arch: str = "llama", **overrides) -> finetune.Trainer:
    model, tokenizer = build(arch)
    return finetune.Trainer(model, tokenizer, recipe(**overrides), eval_batch_size=4, name=arch)


def hand_info_nce(a: np.ndarray, p: np.ndarray, n: np.ndarray, tau: float) -> float:
    """Row by row: -log softmax of cos(a_i, p_i)/tau over cos(a_i, every p and n)/tau."""

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    total = 0.0
    for i in range(len(a)):
        logits = [cos(a[i], c) / tau for c in [*p, *n]]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(x - top) for x in logits))
        total += log_z - logits[i]
    return total / len(a)


# ------------------------------------------------------------------------------------ loss


def test_info_nce_equals_hand_computation():
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(4, 6)) for _ in range(3))
    got = finetune.info_nce(*(torch.tensor(x) for x in (a, p, n)), temperature=0.05)
    assert got.item() == pytest.approx(hand_info_nce(a, p, n, 0.05), rel=1e-5)
    # without hard negatives: in-batch positives only
    no_neg = finetune.info_nce(torch.tensor(a), torch.tensor(p), temperature=0.5)
    assert no_neg.item() == pytest.approx(hand_info_nce(a, p, np.empty((0, 6)), 0.5), rel=1e-5)


def test_training_loss_is_info_nce_of_the_embedders_vectors():
    """The loss the trainer backpropagates is InfoNCE over exactly the PromptEOL embeddings
    the evaluation sees (same prompt, tokens, pooling), truncation aside."""
    t = trainer()
    loss = t.loss(ANCHOR, POSITIVE, NEGATIVE)
    assert loss.requires_grad
    t.model.eval()
    with torch.inference_mode():
        vectors = [t.embedder.encode(list(s)) for s in (ANCHOR, POSITIVE, NEGATIVE)]
    assert loss.item() == pytest.approx(hand_info_nce(*vectors, 0.05), rel=1e-4)


# --------------------------------------------------------------------------------- adapter


def _train_steps(t: finetune.Trainer, steps: int = 2) -> None:
    params = [p for p in t.peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(steps):
        t.loss(ANCHOR, POSITIVE, NEGATIVE).backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("arch", ["llama", "opt"])
def test_adapter_saved_and_reloaded_gives_the_same_embeddings(arch, tmp_path):
    t = trainer(arch)
    _train_steps(t)
    t.model.eval()
    sentences = ANCHOR + POSITIVE + ["", "Why?"]
    tuned = t.embedder.encode(sentences)
    t.peft_model.save_pretrained(str(tmp_path / "adapter"))

    base, tokenizer = build(arch)  # the same random base weights (seeded)
    untuned = Embedder(base, tokenizer, progress=False).encode(sentences)
    reloaded_model = finetune.apply_adapter(base, tmp_path / "adapter")
    reloaded = Embedder(reloaded_model, tokenizer, progress=False).encode(sentences)
    np.testing.assert_allclose(reloaded, tuned, rtol=0, atol=1e-6)
    assert np.abs(untuned - tuned).max() > 1e-3  # training changed the embeddings


def test_lora_targets_every_linear_layer_but_the_lm_head():
    t = trainer("llama")
    lora = {name.rsplit(".", 1)[-1] for name, m in t.model.named_modules() if hasattr(m, "lora_A")}
    assert lora == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not hasattr(t.model.lm_head, "lora_A")
    trainable = {n for n, p in t.peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_not_an_adapter_directory_is_a_clear_error(tmp_path):
    model, _ = build("llama")
    with pytest.raises(Exception, match="not a LoRA adapter directory"):
        finetune.apply_adapter(model, tmp_path)


def test_training_loop_keeps_the_best_dev_checkpoint(tmp_path, data_dir):
    """Four steps on three triplets, STS-B dev checkpoints at steps 2 and 4: the saved adapter
    is the best one (ties at two decimals: the later), and reloading it reproduces its dev
    score exactly."""
    t = trainer()
    triplets = finetune.Triplets(ANCHOR, POSITIVE, NEGATIVE, path="mem", sha256="0")
    out = tmp_path / "adapter"
    result = t.train(triplets, data_dir=data_dir, out_adapter=out, record={"model": "tiny"})
    assert [r["step"] for r in result["loss"]] == [1, 2, 3, 4]
    assert [c["step"] for c in result["dev"]] == [2, 4]
    first, last = (round(c["dev_spearman"], 2) for c in result["dev"])
    best = result["dev"][1] if last >= first else result["dev"][0]
    assert (result["best_step"], result["best_dev_spearman"]) == (
        best["step"],
        best["dev_spearman"],
    )
    assert (out / "adapter_config.json").is_file()
    assert finetune.read_adapter_record(out)["step"] == best["step"]
    assert not list(tmp_path.glob(".adapter.*"))  # the staging folder is gone

    base, tokenizer = build("llama")
    again = finetune.Trainer.__new__(finetune.Trainer)  # score the reloaded adapter alike
    again.recipe, again.model = t.recipe, finetune.apply_adapter(base, out)
    again.ranks = finetune.SINGLE_PROCESS
    again.embedder = Embedder(again.model, tokenizer, batch_size=4, name="llama", progress=False)
    assert again.dev_score(data_dir) == pytest.approx(result["best_dev_spearman"], abs=1e-9)


# -------------------------------------------------------------------------------- triplets


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_triplets_are_read_with_simcse_columns(tmp_path):
    path = write(
        tmp_path / "nli.csv",
        'sent0,sent1,hard_neg\nA b.,"C, d.",E f.\n\n  spaced   out ,x,y\n',
    )
    t = finetune.load_triplets(path)
    assert (t.anchor, t.positive, t.negative) == (
        ["A b.", "spaced out"],
        ["C, d.", "x"],
        ["E f.", "y"],
    )
    assert len(t) == 2 and len(t.sha256) == 64


def test_the_shipped_stand_in_reads(repo_root):
    path = repo_root.parent / "shared" / "data" / "nli" / "snli_devtest_triplets.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    assert len(finetune.load_triplets(path)) == 5864


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("sent0,sent1\na,b\n", r"line 1: expected a header with columns sent0,sent1,hard_neg"),
        ("sent0,sent1,hard_neg\na,b,c\nd,e\n", r"line 3: expected 3 comma-separated fields"),
        ("sent0,sent1,hard_neg\na,b,c\nd,,f\n", r"line 3: expected a sentence in column 'sent1'"),
        ("sent0,sent1,hard_neg\n", r"no triplets after the header"),
        ("", r"empty file"),
    ],
)
def test_bad_triplet_files_name_file_and_line(tmp_path, text, match):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=match) as err:
        finetune.load_triplets(path)
    assert str(path) in str(err.value)


def test_missing_triplet_file(tmp_path):
    with pytest.raises(DataError, match="NLI triplet file not found"):
        finetune.load_triplets(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------------- recipe


def test_schema_defaults_are_the_papers_recipe(repo_root):
    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["finetune"]["properties"]
    defaults = {k: v["default"] for k, v in props.items() if k in finetune.RECIPE_DEFAULTS}
    assert defaults == finetune.RECIPE_DEFAULTS
    overridable = props["models"]["additionalProperties"]["propertyNames"]["enum"]
    assert sorted(overridable) == sorted(finetune.RECIPE_DEFAULTS)
    paper = finetune.RECIPE_DEFAULTS
    assert (paper["lora_r"], paper["lora_alpha"], paper["lora_dropout"]) == (64, 16, 0.05)
    assert (paper["temperature"], paper["max_length"], paper["learning_rate"]) == (0.05, 32, 5e-4)
    assert (paper["batch_size"], paper["warmup_steps"], paper["seed"]) == (256, 100, 42)


def test_per_model_overrides_and_errors():
    block = {"batch_size": 256, "models": {"opt-13b": {"batch_size": 200, "micro_batch_size": 50}}}
    assert finetune.resolve_recipe(block, "opt-13b").batch_size == 200
    assert finetune.resolve_recipe(block, "opt-1.3b").batch_size == 256
    with pytest.raises(ConfigError, match="must be a multiple of world_size"):
        finetune.resolve_recipe({"models": {"m": {"batch_size": 201, "world_size": 2}}}, "m")
    with pytest.raises(ConfigError, match=r"finetune.models.m.lora_rank: unknown key"):
        finetune.resolve_recipe({"models": {"m": {"lora_rank": 8}}}, "m")


def test_4bit_on_cpu_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*finetune.quantization: null"):
        finetune.check_quantization("4bit", "cpu")
    finetune.check_quantization(None, "cpu")


def test_step_rows_are_seeded_epochs():
    rows = finetune.step_rows(10, 5, 4, seed=42)
    assert [len(r) for r in rows] == [4, 4, 2, 4, 4]  # an epoch's last partial batch is kept
    assert len(set(np.concatenate(rows[:3]).tolist())) == 10  # one epoch: every row once
    again = finetune.step_rows(10, 5, 4, seed=42)
    assert all((a == b).all() for a, b in zip(rows, again, strict=True))
    two_epochs = finetune.FinetuneRecipe(batch_size=4, micro_batch_size=4, epochs=2)
    assert finetune.planned_steps(10, two_epochs) == 6


# ----------------------------------------------------------------------------------- study


def _config(**finetune_block):
    return {
        "data_dir": "unused",
        "models": ["smollm2-135m"],
        "prompts": {"eol": {}, "avg": {}},
        "demos": {"none": {}},
        "tasks": ["STSBenchmark"],
        "finetune": {"data": "x.csv", **finetune_block},
    }


def test_study_adds_one_cse_cell_per_tuned_model():
    s = study.Study.from_config(
        _config(models={"smollm2-135m": {"max_steps": 5}}), check_data=False
    )
    assert list(s.tuned_cells()) == [study.Cell("smollm2-135m", "eol", "cse")]
    assert study.Cell("smollm2-135m", "eol", "cse") in list(s.cells())
    assert s.finetune["smollm2-135m"].max_steps == 5
    assert s.fixed_demos(study.Cell("smollm2-135m", "eol", "cse")) == ()
    untuned = study.Study.from_config(_config(), check_data=False)
    assert not list(untuned.tuned_cells())


def test_study_finetune_problems_are_reported_together():
    cfg = _config(models={"gemma3-270m": {}, "smollm2-135m": {"batch_size": 0}}, prompt="avg")
    cfg["demos"]["cse"] = {}
    with pytest.raises(ConfigError) as err:
        study.Study.from_config(cfg, check_data=False)
    text = str(err.value)
    assert "'gemma3-270m' is not one of the study's models" in text
    assert "batch_size must be a positive integer" in text
    assert "the name 'cse' is reserved" in text
    assert "finetune.prompt: 'avg' has no template" in text


# -------------------------------------------------------------------------------- tracking


def test_training_curves_are_logged_once(tmp_path):
    from sentscale import track

    client = track.client_for(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("ft", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment)
    training = {
        "loss": [{"step": 1, "loss": 2.0, "lr": 1e-4}, {"step": 2, "loss": 1.5, "lr": 2e-4}],
        "dev": [{"step": 2, "dev_spearman": 61.0}],
        "dev_before": 55.0,
        "best_step": 2,
        "best_dev_spearman": 61.0,
    }
    first = track.log_training_curves(client, run.info.run_id, training)
    again = track.log_training_curves(client, run.info.run_id, training)
    assert first == {"train.loss": 2, "train.lr": 2, "train.dev_spearman": 2}
    assert set(again.values()) == {0}
    history = client.get_metric_history(run.info.run_id, "train.dev_spearman")
    assert sorted((m.step, m.value) for m in history) == [(0, 55.0), (2, 61.0)]
    summary = track.training_metrics(training)
    assert summary["finetune.loss_first"] == 2.0 and summary["finetune.loss_last"] == 1.5


# -------------------------------------------------------------------------------- workflow


@pytest.mark.integration
def test_finetune_cpu_config_dry_run_has_the_finetune_job_and_cse_cells(tmp_path, data_dir):
    cfg = yaml.safe_load((REPO_ROOT / "config" / "finetune-cpu.yaml").read_text())
    triplets = data_dir.parent / "nli" / "snli_devtest_triplets.csv"
    proc = run_snakemake(
        tmp_path,
        "--dry-run",
        configfile=REPO_ROOT / "config" / "finetune-cpu.yaml",
        config={"data_dir": str(data_dir), "finetune": f"{{data: {triplets}}}"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    counts = job_stats(log)
    n_tasks = len(cfg["tasks"])
    assert counts["finetune"] == 1
    assert counts["embed"] == 2  # eol/none and eol/cse
    assert counts["evaluate_sts"] == 2 * n_tasks
    assert counts["track_cell"] == 2
    for task in cfg["tasks"]:
        assert f"results/scores/smollm2-135m/eol/cse/{task}.json" in log
    assert "results/finetune/smollm2-135m/adapter" in log
    assert cfg["finetune"]["quantization"] is None  # plain LoRA on CPU
