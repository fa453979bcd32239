"""The PromptEOL+CSE fine-tune against the authors' ft_llm.py (issue 14, docs/paper-parity.md):
the full-batch loss through gradient caching and across processes (gloo on 127.0.0.1), the
gradient scale and clipping of the original's all-gather + DDP, training prompts, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_embed import build
from test_finetune import TINY as TINY_RECIPE

from sentscale import finetune, prompts
from sentscale.models import load_tokenizer

ANCHOR = [
    "A man is playing a guitar.",
    "Two dogs run in a field.",
    "A woman cuts onions.",
    "Kids are at the beach.",
    "The cat sleeps on a sofa.",
    "Someone rides a bike uphill.",
]
POSITIVE = [
    "A man plays music.",
    "Animals are running outside.",
    "Someone is cooking.",
    "Children play near the sea.",
    "A pet is resting.",
    "A person is cycling.",
]
NEGATIVE = [
    "Nobody is playing.",
    "The dogs are asleep.",
    "A woman is swimming.",
    "The kids are at school.",
    "The cat is hunting.",
    "A person is driving a car.",
]

#: test_finetune's tiny recipe (plain fp32 LoRA, no dropout) over a batch of the six triplets.
TINY = {**TINY_RECIPE, "batch_size": 6, "micro_batch_size": 6, "max_steps": 2}


def trainer(ranks=finetune.SINGLE_PROCESS, **overrides) -> finetune.Trainer:
    model, tokenizer = build("llama")
    recipe = finetune.resolve_recipe({**TINY, **overrides}, "tiny")
    return finetune.Trainer(model, tokenizer, recipe, eval_batch_size=4, name="tiny", ranks=ranks)


def lora_grads(t: finetune.Trainer) -> dict[str, torch.Tensor]:
    return {
        n: p.grad.detach().clone()
        for n, p in t.peft_model.named_parameters()
        if p.requires_grad and p.grad is not None
    }


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ----------------------------------------------------------------------- gradient caching


@pytest.mark.parametrize("micro", [1, 2, 4, 6])
def test_cached_gradients_equal_the_plain_full_batch_gradients(micro):
    """(a) Six triplets in micro-batches of 1/2/4/6 (4: uneven chunks): the loss and every
    LoRA gradient equal one plain forward/backward over the whole batch (fp32, <= 1e-5)."""
    t = trainer(micro_batch_size=micro)
    plain = t.loss(ANCHOR, POSITIVE, NEGATIVE)
    plain.backward()
    expected = lora_grads(t)
    t.peft_model.zero_grad(set_to_none=True)
    cached = t.gradients(ANCHOR, POSITIVE, NEGATIVE)
    assert cached == pytest.approx(plain.item(), abs=1e-6)
    assert max_abs_diff(lora_grads(t), expected) <= 1e-5
    assert max(float(g.abs().max()) for g in expected.values()) > 1e-3  # not all zero


def test_per_micro_batch_losses_are_not_the_full_batch_loss():
    """The old recipe (InfoNCE per micro-batch of 2, accumulated) gives other gradients: the
    test above can fail."""
    t = trainer()
    t.loss(ANCHOR, POSITIVE, NEGATIVE).backward()
    full = lora_grads(t)
    t.peft_model.zero_grad(set_to_none=True)
    for i in range(0, 6, 2):
        (t.loss(ANCHOR[i : i + 2], POSITIVE[i : i + 2], NEGATIVE[i : i + 2]) / 3).backward()
    assert max_abs_diff(lora_grads(t), full) > 1e-3


def test_dropout_masks_are_replayed_in_the_second_pass():
    """With LoRA dropout, the cached gradients are those of the very embeddings the first pass
    drew: equal to a sequential forward of the same chunks from the same random state."""
    t = trainer(micro_batch_size=2, lora_dropout=0.3)
    torch.manual_seed(7)
    loss = t.gradients(ANCHOR, POSITIVE, NEGATIVE)
    cached = lora_grads(t)
    t.peft_model.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    parts = [
        t.embed([*ANCHOR[i : i + 2], *POSITIVE[i : i + 2], *NEGATIVE[i : i + 2]]).view(3, 2, -1)
        for i in range(0, 6, 2)
    ]
    rows = torch.cat(parts, dim=1)
    manual = finetune.info_nce(rows[0], rows[1], rows[2], 0.05)
    manual.backward()
    assert loss == pytest.approx(manual.item(), abs=1e-6)
    assert max_abs_diff(cached, lora_grads(t)) <= 1e-5
    # without the replay the second pass would draw new masks: a fresh draw differs
    t.peft_model.zero_grad(set_to_none=True)
    t.gradients(ANCHOR, POSITIVE, NEGATIVE)  # random state moved on: other masks
    assert max_abs_diff(cached, lora_grads(t)) > 1e-4


# ------------------------------------------------------------------ processes (gloo, CPU)


def _rank_worker(ranks, out_dir, max_grad_norm):
    """One rank of the 2-process run: its share of the batch, then two optimiser steps."""
    torch.set_num_threads(1)
    t = trainer(ranks, world_size=2, max_grad_norm=max_grad_norm)
    rows = finetune.rank_rows(np.arange(6), ranks.rank, ranks.world_size)
    pick = lambda texts: [texts[i] for i in rows]  # noqa: E731
    loss = t.gradients(pick(ANCHOR), pick(POSITIVE), pick(NEGATIVE))
    grads = lora_grads(t)
    t.peft_model.zero_grad(set_to_none=True)
    log = _two_steps(t, rows)
    params = {n: p.detach() for n, p in t.peft_model.named_parameters() if p.requires_grad}
    torch.save(
        {"loss": loss, "grads": grads, "log": log, "params": params}, out_dir / f"{ranks.rank}.pt"
    )


def _two_steps(t, rows):
    cut = {
        "anchor": dict(enumerate(ANCHOR)),
        "positive": dict(enumerate(POSITIVE)),
        "negative": dict(enumerate(NEGATIVE)),
    }
    optimizer, scheduler = t._optimizer(2)
    # Adam's eps (1e-8) breaks its scale invariance for gradient components near 1e-8 (the
    # zero-initialised LoRA B makes many); the equivalence below is stated up to eps.
    optimizer.param_groups[0]["eps"] = 1e-30
    return [t._step(s, 2, rows, cut, optimizer, scheduler) for s in (1, 2)]


#: max_grad_norm of the 2-process run: between its two steps' gradient norms (~0.36, ~0.65),
#: so clipping acts on the second step only.
CLIP = 0.5


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """A real 2-process torch.distributed run (gloo on 127.0.0.1, sentscale's launcher)."""
    out = tmp_path_factory.mktemp("ranks")
    finetune.launch(_rank_worker, 2, args=(out, CLIP), backend="gloo")
    return [torch.load(out / f"{r}.pt") for r in (0, 1)]


def test_two_processes_see_the_full_batch_loss_and_gradients(two_processes):
    """(b) Each rank embeds 3 of the 6 triplets; all-gathered, the loss is the one-process
    full-batch loss, and the ranks' averaged gradients are 1/2 of its gradients (DDP's mean of
    the original's per-rank gradients)."""
    t = trainer()
    single_loss = t.gradients(ANCHOR, POSITIVE, NEGATIVE)
    single = lora_grads(t)
    for rank in two_processes:
        assert rank["loss"] == pytest.approx(single_loss, abs=1e-6)
    assert max_abs_diff(two_processes[0]["grads"], two_processes[1]["grads"]) == 0.0
    doubled = {k: 2 * g for k, g in two_processes[0]["grads"].items()}
    assert max_abs_diff(doubled, single) <= 1e-5


def test_gradient_scale_and_clipping_behave_as_the_original(two_processes):
    """(c) The original's gradient on N GPUs is the full-batch gradient / N, clipped at 1.0
    (all-gather keeps only the local slice's graph; DDP averages). The logged pre-clip norm
    shows the 1/2; one process reproduces the run exactly with max_grad_norm 2 x CLIP (Adam is
    scale-invariant up to eps, set to 1e-30 here), while CLIP itself on one process is another
    run."""
    t = trainer(max_grad_norm=2 * CLIP)
    log = _two_steps(t, np.arange(6))
    params = {n: p.detach() for n, p in t.peft_model.named_parameters() if p.requires_grad}
    ranked = two_processes[0]
    for one, two in zip(log, ranked["log"], strict=True):
        assert two["grad_norm"] == pytest.approx(one["grad_norm"] / 2, rel=1e-4)
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    # clipping acted on the second step only
    assert ranked["log"][0]["grad_norm"] < CLIP < ranked["log"][1]["grad_norm"]
    assert max_abs_diff(ranked["params"], params) <= 1e-6
    t1 = trainer(max_grad_norm=CLIP)
    _two_steps(t1, np.arange(6))
    other = {n: p.detach() for n, p in t1.peft_model.named_parameters() if p.requires_grad}
    assert max_abs_diff(other, params) > 1e-6


# ------------------------------------------------------------------------ batches, prompts


def test_steps_keep_the_last_partial_batch_and_pad_like_distributed_sampler():
    assert finetune.planned_steps(275_601, finetune.FinetuneRecipe()) == 1077
    eight = finetune.FinetuneRecipe(batch_size=200, micro_batch_size=25, world_size=8)
    assert finetune.planned_steps(275_601, eight) == 1379
    rows = finetune.step_rows(10, 3, 4, seed=42)
    assert [len(r) for r in rows] == [4, 4, 2]
    assert sorted(np.concatenate(rows).tolist()) == list(range(10))  # one epoch, each row once
    padded = finetune.step_rows(9, 3, 4, seed=1, world_size=2)  # 9 rows -> 10: one repeated
    assert [len(r) for r in padded] == [4, 4, 2]
    flat = np.concatenate(padded)
    assert flat[-1] == flat[0] and len(set(flat.tolist())) == 9
    np.testing.assert_array_equal(
        np.concatenate(finetune.step_rows(10, 3, 4, seed=42)), np.concatenate(rows)
    )
    assert finetune.rank_rows(np.arange(6), 1, 2).tolist() == [1, 3, 5]


def test_checkpoints_are_the_original_save_steps():
    assert finetune.evaluated_steps(1077, 50) == set(range(50, 1051, 50))
    assert finetune.evaluated_steps(3, 50) == {3}


def test_batch_must_divide_by_world_size():
    with pytest.raises(Exception, match=r"batch_size \(6\) must be a multiple of world_size \(4\)"):
        finetune.resolve_recipe({**TINY, "world_size": 4}, "m")
    # micro-batches need not divide the batch: memory only
    assert finetune.resolve_recipe({**TINY, "micro_batch_size": 4}, "m").micro_batch_size == 4


def test_mixed_precision_on_cpu_is_a_config_error():
    with pytest.raises(Exception, match="mixed_precision 'fp16' needs a CUDA GPU"):
        finetune.check_mixed_precision("fp16", "cpu")
    finetune.check_mixed_precision(None, "cpu")


TRICKY = [
    'He said "stop" to me',  # quotes, no final punctuation
    "Is the man playing a guitar?",  # a final question mark
    "a dog runs",  # no punctuation at all
    "The quick brown fox jumps over the lazy dog while the farmer's children, who had been "
    "playing in the muddy field since early morning, watched from a distance and laughed.",
]


def test_training_prompts_are_the_originals(models_dir):
    """ft_llm.py l.221-239: every sentence tokenised without special tokens, cut to 32 tokens,
    decoded, put in the template and stripped; no evaluation clean-up (no '.' added, quotes
    kept, '?' kept)."""
    tokenizer = load_tokenizer(models_dir / "smollm2-135m")
    cut = finetune.truncate_sentences(tokenizer, TRICKY, 32)
    variant = prompts.get_variant("eol")
    got = [finetune.training_prompt(s, variant) for s in cut]
    template = 'This_sentence_:_"*sent_0*"_means_in_one_word:"'.replace("_", " ")
    for sentence, prompt in zip(TRICKY, got, strict=True):
        ids = tokenizer(sentence, add_special_tokens=False, truncation=True, max_length=32)
        s = tokenizer.decode(ids["input_ids"], clean_up_tokenization_spaces=False)
        assert prompt == template.replace("*sent 0*", s).strip()
    assert got[0] == 'This sentence : "He said "stop" to me" means in one word:"'
    assert got[1].endswith('guitar?" means in one word:"') and got[2].count('runs"') == 1
    long_ids = tokenizer(TRICKY[3], add_special_tokens=False)["input_ids"]
    assert (
        len(long_ids) > 32 and len(tokenizer(cut[3], add_special_tokens=False)["input_ids"]) <= 33
    )
    assert not cut[3].endswith("laughed.")
    # the evaluation prompt of the same sentence differs (it adds '.' and swaps the quotes)
    assert prompts.build_prompt(TRICKY[0], variant) != got[0]


def test_opt_sentences_get_the_decode_clean_up_of_transformers_4_30(models_dir):
    """The authors' transformers (4.30) cleaned decoded text for OPT's GPT-2 tokenizer (not
    for LlamaTokenizer); transformers 5 skips it for BPE, so it is applied by hand."""
    assert finetune.clean_up_tokenization("the dog 's ball , is n't it ?") == (
        "the dog's ball, isn't it?"
    )
    tokenizer = load_tokenizer(models_dir / "smollm2-135m")
    spaced = ["A man , who is tall , is n't here ."]
    assert finetune.truncate_sentences(tokenizer, spaced, 32) == spaced  # round trip as is
    assert finetune.truncate_sentences(tokenizer, spaced, 32, clean_up=True) == [
        "A man, who is tall, isn't here."
    ]


# ------------------------------------------------------------- the job, in one and two processes


@pytest.mark.integration
def test_the_finetune_job_trains_in_two_processes_as_in_one(tmp_path, data_dir, models_dir):
    """The workflow's job on smollm2-135m with world_size 2 (two gloo processes spawned by the
    job itself) and world_size 1: the same full-batch loss at every step, rank 0's outputs
    only, its log lines in the job's log."""
    from sentscale.context import JobContext

    stand_in = data_dir.parent / "nli" / "snli_devtest_triplets.csv"
    triplets = tmp_path / "triplets.csv"
    triplets.write_text("".join(stand_in.read_text().splitlines(keepends=True)[:9]))  # 8 rows
    recipe = {
        **TINY,
        "batch_size": 4,
        "micro_batch_size": 1,
        "max_steps": 2,
        "eval_steps": 2,
        "dev_max_items": 16,
    }
    runs = {}
    for world in (1, 2):
        out = tmp_path / f"world{world}"
        job = {
            "model": "smollm2-135m",
            "prompt": prompts.get_variant("eol").to_dict(),
            "recipe": {**recipe, "world_size": world},
            "embed": {"device": "cpu", "batch_size": 16, "preprocess": True},
            "dev_seed": 1111,
            "registry": {},
        }
        runs[world] = finetune.finetune_job(
            JobContext(threads=1),
            job,
            triplets_path=triplets,
            data_dir=data_dir,
            models_dir=models_dir,
            out_adapter=out / "adapter",
            out_log=out / "train.json",
            log_file=out / "finetune.log",
        )
        assert (out / "adapter" / "adapter_config.json").is_file()
        assert not list(out.glob(".adapter.*"))  # no staging folder left by any rank
    one, two = runs[1], runs[2]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert [r["step"] for r in two["loss"]] == [1, 2] and [c["step"] for c in two["dev"]] == [2]
    # step 1: the same weights, the same full-batch loss; after it, Adam's eps (1e-8) acts on
    # the 2-process gradient (halved, as the original's DDP mean) on near-zero components, so
    # the weights differ in the last digits
    assert two["loss"][0]["loss"] == pytest.approx(one["loss"][0]["loss"], abs=2e-6)
    assert two["loss"][1]["loss"] == pytest.approx(one["loss"][1]["loss"], abs=1e-4)
    for a, b in zip(one["loss"], two["loss"], strict=True):
        assert b["grad_norm"] == pytest.approx(a["grad_norm"] / 2, rel=1e-3)
    assert two["dev_before"] == pytest.approx(one["dev_before"], abs=1e-9)
    assert "step 2/2: loss" in (tmp_path / "world2" / "finetune.log").read_text()
