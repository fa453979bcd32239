"""Shared-prefix embedding (``Embedder(share_prefix=True)``): the prompts' common leading
tokens run once, later batches reuse their keys/values. It must give the embeddings of the
plain path (cos >= 0.9999 in float32) and compute fewer tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_embed import ARCHS, SENTENCES, build, char_tokenizer, cosine
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from sentscale.embed import Embedder
from sentscale.prompts import build_prompt

DEMOS = {"zero-shot": (), "one demo": [("A man is smoking.", "Smoking")]}


def run(model, tokenizer, sentences, **kwargs) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Embeddings and the (rows, width) of every forward pass of the body."""
    shapes = []
    hook = model.base_model.register_forward_hook(
        lambda module, args, kw, out: shapes.append(tuple(kw["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        emb = Embedder(model, tokenizer, kwargs.pop("variant", "eol"), progress=False, **kwargs)
        return emb.encode(sentences), shapes
    finally:
        hook.remove()


def gemma3_wide_window() -> tuple[torch.nn.Module, object]:
    """Tiny Gemma3 whose sliding window (200) exceeds every prompt: sharing is on and runs
    through the sliding-window cache layers."""
    torch.manual_seed(0)
    tokenizer = char_tokenizer(add_bos=True)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, head_dim=16, sliding_window=200,
        layer_types=["sliding_attention", "full_attention"],
    )  # fmt: skip
    return Gemma3ForCausalLM(config).eval(), tokenizer


MODELS = [*ARCHS, "gemma3-wide-window"]


@pytest.fixture(scope="module", params=MODELS)
def tiny(request):
    return gemma3_wide_window() if request.param == "gemma3-wide-window" else build(request.param)


@pytest.mark.parametrize("demos", DEMOS.values(), ids=DEMOS.keys())
def test_shared_prefix_gives_the_plain_embeddings(tiny, demos):
    model, tokenizer = tiny
    sentences = [*SENTENCES, "A man is smoking.", "Why?"]
    plain, plain_shapes = run(model, tokenizer, sentences, demos=demos, share_prefix=False)
    shared, shapes = run(model, tokenizer, sentences, demos=demos, batch_size=3)
    assert cosine(shared, plain).min() >= 0.9999
    np.testing.assert_allclose(shared, plain, rtol=0, atol=1e-4 * np.abs(plain).max())
    assert sum(r for r, _ in shapes) == sum(r for r, _ in plain_shapes)  # same rows, once
    window = getattr(model.config, "sliding_window", None)
    if window is not None and window <= 8:  # the tiny Gemma3 of test_embed: sharing is off
        return
    # The first batch runs whole prompts, later ones only what follows the shared prefix
    # (at least the demonstrations and `This sentence : "`).
    lengths = [len(tokenizer(build_prompt(s, "eol", demos))["input_ids"]) for s in sentences]
    prefix = len(tokenizer(build_prompt("", "eol", demos))["input_ids"]) - len(
        '" means in one word:"'
    )
    assert shapes[0][1] == max(lengths)
    assert len(shapes) > 1 and all(w <= max(lengths) - prefix for _, w in shapes[1:])


def test_shared_prefix_is_the_full_models_last_hidden_state(tiny):
    """Pinned to the paper's recipe for every sentence, also with sharing on."""
    model, tokenizer = tiny
    demos = DEMOS["one demo"]
    emb, _ = run(model, tokenizer, SENTENCES, demos=demos, batch_size=2)
    with torch.inference_mode():
        for i, s in enumerate(SENTENCES):
            ids = tokenizer(build_prompt(s, "eol", demos), return_tensors="pt")
            expected = model(**ids, output_hidden_states=True).hidden_states[-1][0, -1]
            np.testing.assert_allclose(emb[i], expected.numpy(), atol=1e-5)


def test_sharing_applies_only_where_it_is_exact():
    model, tokenizer = build("llama")
    ids = [[1, 5, 6, 7, 8], [1, 5, 6, 9], [1, 5, 6]]
    enc = Embedder(model, tokenizer, "eol", progress=False)
    assert enc._shared_prefix_len(ids) == 2  # each prompt keeps a token of its own
    assert enc._shared_prefix_len([[1, 5], [2, 5]]) == 0
    assert Embedder(model, tokenizer, "avg", progress=False)._shared_prefix_len(ids) == 0
    assert Embedder(model, tokenizer, share_prefix=False)._shared_prefix_len(ids) == 0
    gemma, gemma_tok = build("gemma3")  # sliding window 4: the cache would drop prefix keys
    assert Embedder(gemma, gemma_tok, progress=False)._shared_prefix_len(ids) == 0
    assert Embedder(model, tokenizer).metadata["share_prefix"] is True


def test_bfloat16_shared_prefix_agrees_with_float32():
    import copy

    model, tokenizer = build("llama")
    demos = DEMOS["one demo"]
    fp32, _ = run(model, tokenizer, SENTENCES, demos=demos, share_prefix=False)
    bf16, _ = run(copy.deepcopy(model), tokenizer, SENTENCES, demos=demos, dtype="bfloat16",
                  batch_size=2)  # fmt: skip
    assert cosine(fp32, bf16).min() >= 0.999


@pytest.mark.integration
def test_shared_prefix_on_real_sentences(models_dir, data_dir):
    """smollm2-135m on 48 STS-B test sentences, zero-shot and with the paper's demo."""
    if not (models_dir / "smollm2-135m" / "config.json").is_file():
        pytest.skip(f"smollm2-135m not provisioned in {models_dir}")
    from sentscale.data import load_task
    from sentscale.models import Registry, load_causal_lm

    sentences = list(load_task("STSBenchmark", data_dir).splits["test"].texts())[:48]
    model, tokenizer = load_causal_lm(
        Registry.load()["smollm2-135m"], models_dir=models_dir, device="cpu"
    )
    for demos in DEMOS.values():
        plain, plain_shapes = run(model, tokenizer, sentences, demos=demos, share_prefix=False)
        shared, shapes = run(model, tokenizer, sentences, demos=demos, batch_size=16)
        assert cosine(shared, plain).min() >= 0.9999
        assert sum(r * w for r, w in shapes) < sum(r * w for r, w in plain_shapes)
