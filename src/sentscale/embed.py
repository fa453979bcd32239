"""The PromptEOL embedder: a sentence's embedding is the last layer's hidden state at the last
prompt token (``pooling="last"``) or the mean over its real tokens (``pooling="mean"``).

``pooling="avg-paper"`` is the original's ``--avg`` (``evaluation.py`` of kongds/scaling_sentemb,
``(last_layer * attention_mask).mean(1)``): the sum over a row's real tokens divided by the
padded width of the batch the row is embedded in, not by its own length. A row is therefore
``mean * len(row) / width``: cosines between rows (STS) equal ``mean``'s, transfer features do
not. The width depends on which rows share a batch, so avg-paper rows depend on our batching
(prompts deduplicated, sorted by token length, ``embed.batch_size`` rows, ``embed.max_tokens``),
while the original's batches are SentEval's (sorted by sentence length, 16 rows in its test
mode): its transfer features are reproduced in kind, not row for row.

Only the transformer body runs (``model.base_model``, e.g. ``OPTModel``/``LlamaModel``), never
the LM head: its ``last_hidden_state`` is what the paper's code reads as
``hidden_states[-1]`` (final norm included) without computing vocabulary logits or keeping
every layer's states.

Batches are left-padded, so the last prompt token sits at index -1 of every row. Position ids
are passed explicitly as ``cumsum(mask) - 1``: Llama-style models otherwise number the pads too
(rotary attention makes that nearly, but not bit-, invariant) and OPT derives the same values
itself.

Shared prefix (``share_prefix=True``, ``pooling="last"`` only): every templated prompt starts
with the same tokens (``This sentence : "``, plus all in-context demonstrations, ~20 tokens
with one demo). The first batch runs whole prompts and keeps the keys/values of those tokens;
every later batch runs only the rest of each prompt on a copy of them. Causal attention makes
this the same computation done once (the prefix's states never depend on what follows); such
batches are right-padded, with positions continuing after the prefix, and read each row's last
real token. It saves ~15 % of the tokens zero-shot and ~half with one demonstration.

A prompt longer than the model's positions (:func:`max_positions`) is refused before any
forward pass, never truncated: cutting the end drops the last token, whose state *is* the
embedding; cutting the start drops the template's opening and the demonstrations. The paper's
code checks nothing (``evaluation.py`` of kongds/scaling_sentemb at 8567aa0 tokenizes with
``truncation=max_length is not None`` and SentEval never passes ``max_length``): learned
positions (OPT) crash, rotary ones (Llama, Qwen) silently run past their range.
Sentence-transformers baselines truncate the end at their ``max_seq_length``, as in the paper;
:class:`SentenceTransformerEncoder` counts and logs how many.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from sentscale.errors import ConfigError, EmbeddingError, ModelError
from sentscale.models import ModelSpec
from sentscale.prompts import Demo, PromptVariant, as_demos, build_prompt, get_variant
from sentscale.prompts import prompt_metadata as _prompt_metadata

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: at or above: transformers' tokenizer.model_max_length for "no limit" (1e30)
_NO_LIMIT = 10**18

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """What evaluation needs: sentences in, one float32 row per sentence out, in input order."""

    metadata: dict[str, Any]

    def encode(self, sentences: list[str]) -> np.ndarray: ...


class PromptIds(Protocol):
    """Supplies the token ids of an :class:`Embedder`'s prompts instead of tokenising each whole
    prompt (``sentences[i]`` is the sentence of ``prompts[i]``). It must return exactly the ids
    :meth:`Embedder._tokenize` would (e.g. :class:`sentscale.demos.tokens.DemoTokens`, which
    reuses the sentences' ids across demonstrations where that provably changes nothing)."""

    def __call__(
        self, embedder: Embedder, sentences: list[str], prompts: list[str]
    ) -> list[list[int]]: ...


def check_batch_size(batch_size: Any, max_tokens: Any = None) -> None:
    """ConfigError unless ``batch_size`` (and ``max_tokens``, if given) is an integer >= 1."""
    for key, value in (("batch_size", batch_size), ("max_tokens", max_tokens)):
        if value is None and key == "max_tokens":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"embed.{key} must be an integer >= 1, got {value!r}")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"embed.dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def max_positions(config: Any, tokenizer: Any) -> tuple[int | None, str]:
    """(limit, where it comes from): the smallest of config ``max_position_embeddings`` (OPT,
    Llama, Qwen, Gemma, GPT-NeoX), ``n_positions`` (GPT-2) and the tokenizer's
    ``model_max_length`` unless it is the "no limit" sentinel. ``(None, "")``: none known."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    known = [
        (value, where)
        for obj, key, where in (
            (config, "max_position_embeddings", "config.max_position_embeddings"),
            (config, "n_positions", "config.n_positions"),
            (tokenizer, "model_max_length", "tokenizer.model_max_length"),
        )
        for value in [getattr(obj, key, None)]
        if type(value) is int and 0 < value < _NO_LIMIT
    ]
    return min(known) if known else (None, "")


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Embedder:
    """Embeds sentences with a causal LM and a prompt variant.

    ``model``: a ``...ForCausalLM`` or its base model. ``dtype``/``device``: if given, the model
    is cast/moved in place; ``None`` keeps it as loaded. ``batch_size`` caps rows per forward
    pass, ``max_tokens`` (optional) caps rows x padded length. ``preprocess`` switches the
    paper's sentence clean-up (see :mod:`sentscale.prompts`). ``share_prefix`` computes the
    prompts' common leading tokens once (see the module docstring). ``prompt_ids``: where the
    token ids come from (:class:`PromptIds`; None: the tokenizer, on each whole prompt).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        variant: PromptVariant | str = "eol",
        demos: Iterable[Demo | Sequence[str]] = (),
        *,
        preprocess: bool = True,
        batch_size: int = 16,
        max_tokens: int | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        name: str | None = None,
        progress: bool = True,
        share_prefix: bool = True,
        prompt_ids: PromptIds | None = None,
    ) -> None:
        check_batch_size(batch_size, max_tokens)
        self.variant = get_variant(variant) if isinstance(variant, str) else variant
        self.demos = as_demos(demos)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.progress = progress
        self.share_prefix = share_prefix
        self.prompt_ids = prompt_ids
        if dtype is not None:
            model.to(resolve_dtype(dtype))
        if device is not None:
            model.to(resolve_device(device))
        model.eval()
        self.body = model.base_model  # the transformer without the LM head
        self.name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self.forward_rows = 0  # rows embedded so far (deduplication makes this < inputs)
        # Tokens of those rows' prompts, and the tokens the model actually ran (the shared
        # prefix counted once per encode call): what a demonstration search reports as cost.
        self.prompt_tokens = 0
        self.forward_tokens = 0
        self.max_positions, self.max_positions_source = max_positions(model.config, tokenizer)
        self.longest_prompt_tokens: int | None = None  # over every prompt embedded so far

    @property
    def dtype(self) -> torch.dtype:
        return next(self.body.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.body.parameters()).device

    @property
    def dim(self) -> int:
        # The input embedding width, not config.hidden_size: OPT-350m projects 1024 -> 512 out.
        return self.body.get_input_embeddings().embedding_dim

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "kind": "causal-lm",
            **_prompt_metadata(self.variant, self.demos, self.preprocess),
            "dtype": str(self.dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
            "max_tokens": self.max_tokens,
            "share_prefix": self.share_prefix,
            "add_bos": self._adds_bos(),
            "max_positions": self.max_positions,
            "longest_prompt_tokens": self.longest_prompt_tokens,
        }

    def prompt(self, sentence: str) -> str:
        return build_prompt(sentence, self.variant, self.demos, self.preprocess)

    def encode(self, sentences: list[str]) -> np.ndarray:
        """One float32 row per sentence, in input order. Equal prompts are embedded once."""
        prompts = [self.prompt(s) for s in sentences]
        unique = list(dict.fromkeys(prompts))
        first: dict[str, int] = {}  # a prompt's first sentence index, for error messages
        for i, p in enumerate(prompts):
            first.setdefault(p, i)
        if self.prompt_ids is None:
            token_ids = self._tokenize(unique)
        else:
            token_ids = self.prompt_ids(self, [sentences[first[p]] for p in unique], unique)
        self._check_positions(
            token_ids,
            lambda j: (
                f"sentence {first[unique[j]]} of {len(sentences)}: "
                f"{_cut(sentences[first[unique[j]]])!r}"
            ),
        )
        log.info(
            "%s: longest prompt %s tokens (model maximum %s)",
            self.name, self.longest_prompt_tokens, self.max_positions,
        )  # fmt: skip
        # Longest first: the first batch is the largest, so an out-of-memory shows up at once.
        order = sorted(range(len(unique)), key=lambda i: -len(token_ids[i]))
        batches = self._batches([len(token_ids[i]) for i in order])
        prefix_len = self._shared_prefix_len(token_ids) if len(batches) > 1 else 0
        prefix_cache = None  # the prefix's keys/values, from the first batch
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for batch_index, (start, stop) in enumerate(
                tqdm(batches, desc=self.name, unit="batch", disable=not self.progress)
            ):
                rows = order[start:stop]
                skipped = prefix_len if prefix_cache is not None else 0
                self.forward_tokens += sum(len(token_ids[i]) - skipped for i in rows)
                if prefix_len:
                    emb, prefix_cache = self._embed_batch_shared(
                        [token_ids[i] for i in rows], prefix_len, prefix_cache
                    )
                else:
                    emb = self._embed_batch([token_ids[i] for i in rows])
                finite = torch.isfinite(emb).all(dim=1)
                if not bool(finite.all()):
                    bad = unique[rows[int((~finite).nonzero()[0])]]
                    raise EmbeddingError(
                        f"model {self.name!r}: non-finite (NaN/inf) embedding in batch "
                        f"{batch_index} of {len(batches)} (dtype "
                        f"{str(self.dtype).removeprefix('torch.')}; expected finite values); "
                        f"first offending sentence: {sentences[first[bad]]!r}"
                    )
                out[rows] = emb.float().cpu().numpy()
                self.forward_rows += len(rows)
                self.prompt_tokens += sum(len(token_ids[i]) for i in rows)
        index = {p: i for i, p in enumerate(unique)}
        return out[[index[p] for p in prompts]]

    def embed_prompts(self, prompts: Sequence[str], *, grad: bool = False) -> torch.Tensor:
        """Pooled embeddings of already-built prompts (:meth:`prompt`), as one left-padded batch
        on the model's device, one row per prompt in input order (no deduplication, no shared
        prefix, no finiteness check, unlike :meth:`encode`).

        ``grad=True`` keeps the autograd graph (training: the fine-tuning loss backpropagates
        through these rows); ``grad=False`` runs under ``torch.inference_mode``.
        """
        token_ids = self._tokenize(list(prompts))
        self._check_positions(
            token_ids, lambda j: f"prompt {j} of {len(prompts)}: {_cut(prompts[j])!r}"
        )
        if grad:
            return self._embed_batch(token_ids)
        with torch.inference_mode():
            return self._embed_batch(token_ids)

    def _adds_bos(self) -> bool:
        bos = self.tokenizer.bos_token_id
        ids = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        return bos is not None and len(ids) > 0 and ids[0] == bos

    def _tokenize(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of every prompt, with the tokenizer's own special tokens (BOS or not)."""
        if not prompts:
            return []
        ids = self.tokenizer(prompts, add_special_tokens=True, padding=False)["input_ids"]
        # An empty raw sentence with a tokenizer that adds no BOS has no token to pool; give it
        # one (BOS, else EOS) so it still gets a deterministic embedding.
        fallback = self.tokenizer.bos_token_id
        if fallback is None:
            fallback = self.tokenizer.eos_token_id
        for i, seq in enumerate(ids):
            if not seq:
                if fallback is None:
                    raise ValueError(f"{self.name}: prompt {prompts[i]!r} has no tokens")
                ids[i] = [fallback]
        return ids

    def _check_positions(self, token_ids: list[list[int]], describe) -> None:
        """ModelError if a prompt has more tokens than the model has positions (module
        docstring); ``describe(j)`` names prompt ``j`` for the message."""
        if not token_ids:
            return
        lengths = [len(ids) for ids in token_ids]
        longest = max(range(len(lengths)), key=lengths.__getitem__)
        limit = self.max_positions
        if limit is None or lengths[longest] <= limit:
            self.longest_prompt_tokens = max(self.longest_prompt_tokens or 0, lengths[longest])
            return
        raise ModelError(
            f"model {self.name!r}: {sum(n > limit for n in lengths)} of {len(lengths)} prompts "
            f"are longer than the model's positions; the longest is {lengths[longest]} tokens, "
            f"for {describe(longest)}; expected at most {limit} tokens "
            f"({self.max_positions_source}). Not truncated: either end would cut the prompt "
            "(its template, demonstrations, or the last token, whose state is the embedding); "
            "the paper's code (evaluation.py of kongds/scaling_sentemb) neither checks nor "
            "truncates. Shorten the sentence, use fewer demonstrations or a model with more "
            "positions"
        )

    def _batches(self, lengths_desc: list[int]) -> list[tuple[int, int]]:
        """(start, stop) slices of the length-sorted prompts, within batch_size and max_tokens."""
        batches, start = [], 0
        while start < len(lengths_desc):
            rows = self.batch_size
            if self.max_tokens is not None:  # the first row is the batch's longest
                rows = max(1, min(rows, self.max_tokens // lengths_desc[start]))
            batches.append((start, min(start + rows, len(lengths_desc))))
            start += rows
        return batches

    def _shared_prefix_len(self, token_ids: list[list[int]]) -> int:
        """How many leading tokens all prompts share and can be computed once (0: none)."""
        if not self.share_prefix or self.variant.pooling != "last" or len(token_ids) < 2:
            return 0
        # Every prompt keeps at least one token of its own (the one whose state is read).
        shared = min(len(os.path.commonprefix(token_ids)), min(map(len, token_ids)) - 1)
        window = getattr(self.body.config, "sliding_window", None)
        if isinstance(window, int) and window <= max(map(len, token_ids)):
            return 0  # a sliding-window cache keeps only the last `window` keys
        return max(shared, 0)

    def _embed_batch_shared(
        self, sequences: list[list[int]], prefix_len: int, cache: Any
    ) -> tuple[torch.Tensor, Any]:
        """Last-token states of prompts that all start with the same ``prefix_len`` tokens.

        Without ``cache`` (the first batch) whole prompts run and the prefix's keys/values are
        returned; with it, only the tokens after the prefix run, on a copy of ``cache``. Rows
        are right-padded (pads after a row's last token never reach it: causal attention).
        """
        device = self.device
        offset = 0 if cache is None else prefix_len
        sequences = [s[offset:] for s in sequences]
        lengths = torch.tensor([len(s) for s in sequences])
        width = int(lengths.max())
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)
        input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences])
        mask = (torch.arange(width) < lengths[:, None]).long()
        position_ids = (offset + torch.arange(width)).expand(len(sequences), -1)
        kwargs: dict[str, Any] = {}
        if cache is not None:
            kwargs["cache"] = copy.deepcopy(cache)
            kwargs["cache"].batch_repeat_interleave(len(sequences))
            mask = torch.cat([mask.new_ones(len(sequences), prefix_len), mask], dim=1)
        out = self.body(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=position_ids.to(device),
            use_cache=True,
            **kwargs,
        )
        rows = torch.arange(len(sequences), device=device)
        hidden = out.last_hidden_state[rows, (lengths - 1).to(device)]
        if cache is None:
            cache = out.cache
            if cache is not None:  # keep the prefix of one row (the same in every row)
                cache.crop(prefix_len - width)
                cache.batch_select_indices(torch.tensor([0], device=device))
        return hidden, cache

    def _embed_batch(self, sequences: list[list[int]]) -> torch.Tensor:
        width = max(len(s) for s in sequences)
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)
        # Left padding: the pad value never matters because the attention mask hides it.
        input_ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in sequences])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        device = self.device
        hidden = self.body(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=position_ids.to(device),
            use_cache=False,
        ).last_hidden_state
        if self.variant.pooling == "last":
            return hidden[:, -1, :]
        real = mask.to(device).unsqueeze(-1).bool()
        # where(), not multiply: a pad position's state may be non-finite and 0 * nan = nan.
        summed = torch.where(real, hidden.float(), 0.0).sum(dim=1)
        if self.variant.pooling == "avg-paper":
            return summed / width  # the original's .mean(1) over the padded batch
        if self.variant.pooling != "mean":  # PromptVariant validates; a new name must land here
            raise ConfigError(f"model {self.name!r}: unknown pooling {self.variant.pooling!r}")
        return summed / real.sum(dim=1)


class SentenceTransformerEncoder:
    """A sentence-transformers model used as-is (a baseline row: no prompt, no preprocessing)."""

    def __init__(self, model: Any, name: str, *, batch_size: int = 16, progress: bool = True):
        check_batch_size(batch_size)
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.progress = progress
        self.metadata = {
            "model": name,
            "kind": "sentence-transformers",
            "batch_size": batch_size,
            "max_seq_length": getattr(model, "max_seq_length", None),
            "truncated_sentences": 0,  # counted by encode
        }

    def encode(self, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.empty((0, self.model.get_embedding_dimension()), dtype=np.float32)
        self._count_truncated(sentences)
        emb = self.model.encode(
            list(sentences),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=self.progress,
        )
        emb = np.asarray(emb, dtype=np.float32)
        finite = np.isfinite(emb).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            # the batch in sentence-transformers' order (it batches the longest inputs first)
            rank = int(
                np.flatnonzero(np.argsort([-len(s) for s in sentences], kind="stable") == row)[0]
            )
            raise EmbeddingError(
                f"model {self.name!r}: non-finite (NaN/inf) embedding in batch "
                f"{rank // self.batch_size} of {-(-len(sentences) // self.batch_size)} "
                f"(expected finite values); first offending sentence: {sentences[row]!r}"
            )
        return emb

    def _count_truncated(self, sentences: list[str]) -> None:
        """Count and log the sentences sentence-transformers cuts at ``max_seq_length``."""
        limit, tokenizer = self.metadata["max_seq_length"], getattr(self.model, "tokenizer", None)
        if limit is None or tokenizer is None:
            return
        ids = tokenizer(list(sentences), add_special_tokens=True)["input_ids"]
        truncated = sum(len(seq) > limit for seq in ids)
        self.metadata["truncated_sentences"] += truncated
        if truncated:
            log.warning(
                "%s truncates %d of %d sentences to its max_seq_length of %d tokens "
                "(sentence-transformers keeps the first tokens)",
                self.name, truncated, len(sentences), limit,
            )  # fmt: skip


def _cut(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def load_encoder(
    spec: ModelSpec,
    *,
    models_dir: str | Path,
    prompt: PromptVariant | str | None = "eol",
    demos: Iterable[Demo | Sequence[str]] = (),
    preprocess: bool = True,
    dtype: str = "float32",
    batch_size: int = 16,
    max_tokens: int | None = None,
    device: str = "auto",
    quantization: str | None = None,
    progress: bool = True,
    share_prefix: bool = True,
    adapter: str | Path | None = None,
) -> Encoder:
    """An encoder for a registry entry ``spec``: an :class:`Embedder` for a causal LM
    (``prompt=None`` means ``"eol"``), a :class:`SentenceTransformerEncoder` for a
    sentence-transformers baseline (prompt, demos, preprocessing and dtype do not apply).
    ``adapter``: a LoRA adapter directory (:mod:`sentscale.finetune`) applied to the causal LM,
    same pooling."""
    from sentscale import models  # imported late: loading pulls in the heavy model stack

    check_batch_size(batch_size, max_tokens)  # before the (slow) model load
    name = spec.name
    if spec.kind == "sentence-transformers":
        st = models.load_sentence_transformer(spec, models_dir, device)
        return SentenceTransformerEncoder(st, name, batch_size=batch_size, progress=progress)
    model, tokenizer = models.load_causal_lm(
        spec, models_dir=models_dir, dtype=dtype, device=device, quantization=quantization
    )
    if adapter is not None:
        from sentscale.adapters import apply_adapter

        model = apply_adapter(model, adapter)
    return Embedder(
        model,
        tokenizer,
        prompt or "eol",
        demos,
        preprocess=preprocess,
        batch_size=batch_size,
        max_tokens=max_tokens,
        name=name,
        progress=progress,
        share_prefix=share_prefix,
    )
