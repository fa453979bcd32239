"""Which triplets each optimiser step trains on, and how they become training prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import prompts
from ..errors import ConfigError
from .recipe import epoch_rows


def step_rows(n_rows: int, steps: int, batch_size: int, seed: int, world_size: int = 1) -> list:
    """Row indices of every step (``steps`` arrays of ``batch_size`` rows, an epoch's last one
    shorter): one seeded permutation per epoch, padded to a multiple of ``world_size`` with its
    own first rows as torch's ``DistributedSampler`` pads, cut into consecutive batches; the last
    partial batch is kept, as the transformers Trainer keeps it (``dataloader_drop_last``
    False)."""
    if n_rows < 1:
        raise ConfigError("finetune: no training triplets")
    rng = np.random.default_rng(seed)
    padded = epoch_rows(n_rows, world_size)
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(n_rows)
        order = np.concatenate([order, order[: padded - n_rows]])
        batches.extend(order[i : i + batch_size] for i in range(0, padded, batch_size))
    return batches[:steps]


def rank_rows(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's share of a step's rows: every ``world_size``-th row from ``rank``, the
    rows ``DistributedSampler`` hands that rank (the batch divides by ``world_size``)."""
    return batch[rank::world_size]


def truncate_sentences(
    tokenizer: Any, sentences: Sequence[str], max_length: int, *, clean_up: bool = False
) -> list[str]:
    """Each sentence as the original's ``generate_sentemb_prompt`` (``ft_llm.py`` l.221-239)
    feeds it to the template: tokenised without special tokens, cut to ``max_length`` tokens and
    decoded back, for every sentence (not only long ones).

    ``clean_up``: apply the decode clean-up of the transformers the authors ran (4.30,
    :func:`clean_up_tokenization`). It applied to OPT's GPT-2 tokenizer (``AutoTokenizer``,
    clean-up on by default) and not to LLaMA's (``LlamaTokenizer`` turns it off); transformers
    5 no longer applies it to BPE tokenizers at all, so it is done here by hand."""
    if not sentences:
        return []
    ids = tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    out = [tokenizer.decode(i[:max_length], clean_up_tokenization_spaces=False) for i in ids]
    return [clean_up_tokenization(s) for s in out] if clean_up else out


def clean_up_tokenization(text: str) -> str:
    """transformers 4.30's ``PreTrainedTokenizerBase.clean_up_tokenization``, verbatim: the
    spaces before punctuation and English contractions removed."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def training_prompt(sentence: str, variant: prompts.PromptVariant) -> str:
    """The template filled with an already cut sentence and stripped, with no evaluation-time
    clean-up (no appended '.', no '"' -> "'", no final '?' -> '.'): the original's
    ``template.replace('*sent 0*', s).strip()``."""
    return prompts.build_prompt(sentence, variant, (), preprocess=False).strip()
