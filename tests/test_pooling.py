"""Mean poolings on tiny random models built in-process (no downloads).

``mean`` is the true mean over a row's real tokens; ``avg-paper`` is the original's ``--avg``
(evaluation.py of kongds/scaling_sentemb: ``(last_layer * attention_mask).mean(1)``), the
masked sum divided by the padded width of the row's batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_embed import ARCHS, build, cosine

from sentscale.embed import Embedder
from sentscale.errors import ConfigError
from sentscale.prompts import POOLINGS, PromptVariant, get_variant

# Distinct lengths (so padding differs per row); "abcd efgh" and "ijkl mnop" are equally long.
SENTENCES = [
    "Short",
    "abcd efgh",
    "A much longer sentence that sets the padded width.",
    "ijkl mnop",
]
EQUAL = (1, 3)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=ARCHS)
def tiny(request):
    return build(request.param)


def encode(model, tokenizer, pooling: str, sentences=SENTENCES, **kwargs) -> np.ndarray:
    variant = PromptVariant(name=pooling, template="{sentence}", pooling=pooling)
    return Embedder(model, tokenizer, variant, progress=False, **kwargs).encode(sentences)


def lengths(tokenizer, sentences=SENTENCES) -> np.ndarray:
    return np.array([len(ids) for ids in tokenizer(sentences)["input_ids"]])


def test_avg_paper_is_masked_sum_over_padded_width(tiny):
    """Each row = (sum of its own tokens' last-layer states) / (longest row of the batch)."""
    model, tokenizer = tiny
    got = encode(model, tokenizer, "avg-paper", batch_size=len(SENTENCES))
    width = lengths(tokenizer).max()
    with torch.inference_mode():
        sums = [
            model.base_model(**tokenizer(s, return_tensors="pt")).last_hidden_state[0].sum(0)
            for s in SENTENCES
        ]
    expected = torch.stack(sums).numpy() / width
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_avg_paper_matches_the_originals_expression_on_opt():
    """The literal evaluation.py lines 218-221 on a left-padded OPT batch (OPT derives its
    positions from the mask, as the original relies on)."""
    model, tokenizer = build("opt")
    tokenizer.padding_side = "left"
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        last_layer = model(**batch, output_hidden_states=True).hidden_states[-1]
        attention_mask = batch["attention_mask"].unsqueeze(-1).expand(last_layer.shape)
        original = (last_layer * attention_mask).mean(1).numpy()
    got = encode(model, tokenizer, "avg-paper", batch_size=len(SENTENCES))
    np.testing.assert_allclose(got, original, rtol=0, atol=1e-5)


def test_avg_paper_differs_from_mean_by_length_over_width(tiny):
    model, tokenizer = tiny
    paper = encode(model, tokenizer, "avg-paper", batch_size=len(SENTENCES))
    mean = encode(model, tokenizer, "mean", batch_size=len(SENTENCES))
    n = lengths(tokenizer)
    scale = n / n.max()
    np.testing.assert_allclose(paper, mean * scale[:, None], rtol=1e-4, atol=1e-6)
    shorter = n < n.max()
    assert shorter.sum() == 3  # the rows this test is about really are padded
    gap = np.abs(paper - mean).max(axis=1)
    assert (gap[shorter] > 1e-3 * np.abs(mean).max()).all()
    # The longest row has no pads: the two poolings agree on it.
    np.testing.assert_allclose(paper[~shorter], mean[~shorter], rtol=0, atol=1e-5)


def test_cosines_and_equal_length_ranking_match_mean(tiny):
    """STS sees cosines only: avg-paper's scale per row changes none of them."""
    model, tokenizer = tiny
    paper = encode(model, tokenizer, "avg-paper", batch_size=len(SENTENCES))
    mean = encode(model, tokenizer, "mean", batch_size=len(SENTENCES))
    i, j = EQUAL
    assert lengths(tokenizer)[i] == lengths(tokenizer)[j]
    np.testing.assert_allclose(
        cosine(paper[:, None], paper[None]), cosine(mean[:, None], mean[None]), atol=1e-5
    )
    # Two equal-length rows get the same factor, so they stay comparable with each other...
    np.testing.assert_allclose(paper[i] / mean[i], paper[j] / mean[j], rtol=1e-3)
    # ...and rank every row by cosine exactly as mean pooling does.
    for q in (i, j):
        ranked = np.argsort(-cosine(paper, paper[q])).tolist()
        assert ranked == np.argsort(-cosine(mean, mean[q])).tolist()


def test_one_row_batches_equal_mean(tiny):
    """No padding, so the padded width is the row's own length."""
    model, tokenizer = tiny
    paper = encode(model, tokenizer, "avg-paper", batch_size=1)
    mean = encode(model, tokenizer, "mean", batch_size=1)
    np.testing.assert_allclose(paper, mean, rtol=0, atol=1e-5)


def test_avg_paper_rows_depend_on_batch_companions():
    """Documented: a row depends on the widest row of its batch (our batching, not SentEval's)."""
    model, tokenizer = build("opt")
    alone = encode(model, tokenizer, "avg-paper", ["Short"])
    together = encode(model, tokenizer, "avg-paper", ["Short", SENTENCES[2]], batch_size=2)
    n = lengths(tokenizer, ["Short", SENTENCES[2]])
    np.testing.assert_allclose(together[0], alone[0] * n[0] / n[1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(together[0], alone[0], atol=1e-3 * np.abs(alone).max())


def test_avg_paper_never_shares_a_prefix():
    """The shared-prefix path reads the last token only; mean poolings need every token."""
    model, tokenizer = build("opt")
    ids = [[1, 5, 6, 7, 8], [1, 5, 6, 7, 9]]
    for pooling in ("mean", "avg-paper"):
        variant = PromptVariant(name=pooling, template="x {sentence}", pooling=pooling)
        assert Embedder(model, tokenizer, variant, progress=False)._shared_prefix_len(ids) == 0
    last = PromptVariant(name="last", template="x {sentence}", pooling="last")
    assert Embedder(model, tokenizer, last, progress=False)._shared_prefix_len(ids) == 4


def test_pooling_names_are_validated_and_in_the_schema():
    assert POOLINGS == ("last", "mean", "avg-paper")
    assert get_variant("avg").pooling == "mean"
    assert get_variant("avg-paper").pooling == "avg-paper"
    assert get_variant("avg-paper").template == "{sentence}"
    with pytest.raises(ConfigError, match="avg-paper"):  # the message lists the allowed names
        get_variant("avg", {"pooling": "avg_paper"})
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    enum = schema["properties"]["prompts"]["additionalProperties"]["properties"]["pooling"]["enum"]
    assert tuple(enum) == POOLINGS
