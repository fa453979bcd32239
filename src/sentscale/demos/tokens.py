"""Token ids of a demonstration search's prompts, reused across candidates.

Every candidate embeds the same dev sentences; only the demonstration in front changes. A
one-demo prompt is ``D + R``: the demo text ``D`` (:func:`sentscale.prompts.demo_prefix`) and
the sentence's zero-demo prompt ``R``. :class:`DemoTokens` tokenises each ``R`` once (without
special tokens) and each ``D`` once (with them: BOS), and gives ``ids(D) + ids(R)``, but only
where that is provably what tokenising the whole prompt gives:

* text: the prompt must be exactly ``D + R`` (checked per sentence; the paper's ``.strip()``
  of the whole prompt could otherwise move a space);
* tokenizer: a fast tokenizer whose pre-tokenizer splits ``D + H`` exactly between ``D`` and
  ``H``, ``H`` being the text every ``R`` starts with (``This sentence : "``), whose normalizer
  (if any) maps ``D + H`` to ``norm(D) + norm(H)``, and for which
  ``ids(D + H) == ids(D) + ids(H)`` (no prefix space, no end-of-sequence token added). The
  byte-level BPE of GPT-2/Llama-3/Qwen-style tokenizers cuts text into regex pieces left to
  right and runs BPE on each piece alone, so a cut at ``len(D)`` that is already decided
  within the shared head ``H`` makes the ids after it those of ``R`` alone.

Anything else (e.g. Gemma's SentencePiece-style BPE, which runs on the whole string without a
pre-tokenizer split, or a tokenizer without a fast backend) falls back to tokenising each whole
prompt, as without this class. ``tests/test_demo_halving.py`` checks the ids are identical on
all STS-B dev sentences for real tokenizers. The saving is the tokenizer's time per candidate
(0.3-0.9 s of ~3000 prompts on the 2-core machine), small next to the forward passes.
"""

from __future__ import annotations

import os
from typing import Any

from .. import prompts


class DemoTokens:
    """The :class:`sentscale.embed.PromptIds` of every Embedder of one search (one tokenizer,
    prompt variant and preprocessing; only the demonstrations differ)."""

    def __init__(self) -> None:
        self._rest: dict[str, list[int]] = {}  # zero-demo prompt -> ids, no special tokens
        self._demo: dict[tuple[str, str], list[int] | None] = {}  # (D, H) -> ids(D), or None
        self.reused = 0  # prompts whose ids were assembled
        self.tokenised = 0  # prompts tokenised whole (no demo, unsafe tokenizer or text)

    def __call__(self, embedder: Any, sentences: list[str], prompt_list: list[str]):
        demos = embedder.demos
        if not demos or not prompt_list:
            self.tokenised += len(prompt_list)
            return embedder._tokenize(prompt_list)
        demo = prompts.demo_prefix(embedder.variant, demos)
        rests = [
            prompts.build_prompt(s, embedder.variant, (), embedder.preprocess) for s in sentences
        ]
        fits = [p == demo + r and bool(r) for p, r in zip(prompt_list, rests, strict=True)]
        head = os.path.commonprefix([r for r, ok in zip(rests, fits, strict=True) if ok])
        demo_ids = self._demo_ids(embedder.tokenizer, demo, head) if head else None
        if demo_ids is None:
            self.tokenised += len(prompt_list)
            return embedder._tokenize(prompt_list)
        missing = [r for r, ok in zip(rests, fits, strict=True) if ok and r not in self._rest]
        if missing:
            missing = list(dict.fromkeys(missing))
            ids = embedder.tokenizer(missing, add_special_tokens=False, padding=False)["input_ids"]
            self._rest.update(zip(missing, ids, strict=True))
        whole = [p for p, ok in zip(prompt_list, fits, strict=True) if not ok]
        whole_ids = iter(embedder._tokenize(whole) if whole else [])
        out = [
            demo_ids + self._rest[r] if ok else next(whole_ids)
            for r, ok in zip(rests, fits, strict=True)
        ]
        self.reused += len(out) - len(whole)
        self.tokenised += len(whole)
        return out

    def _demo_ids(self, tokenizer: Any, demo: str, head: str) -> list[int] | None:
        key = (demo, head)
        if key not in self._demo:
            self._demo[key] = _demo_ids_if_separable(tokenizer, demo, head)
        return self._demo[key]


def _demo_ids_if_separable(tokenizer: Any, demo: str, head: str) -> list[int] | None:
    """ids(demo) with special tokens if ``demo + head + x`` tokenises as ids(demo) + ids(head
    + x) for every x (module docstring); else None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:  # a slow tokenizer, or BPE over the whole string: no cut to rely on
        return None
    text = demo + head
    normalizer = backend.normalizer
    if normalizer is not None:
        if normalizer.normalize_str(text) != normalizer.normalize_str(
            demo
        ) + normalizer.normalize_str(head):
            return None
        text, cut = normalizer.normalize_str(text), len(normalizer.normalize_str(demo))
    else:
        cut = len(demo)
    if cut not in {end for _, (_, end) in pre.pre_tokenize_str(text)}:
        return None
    demo_ids = tokenizer(demo, add_special_tokens=True)["input_ids"]
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    if tokenizer(demo + head, add_special_tokens=True)["input_ids"] != demo_ids + head_ids:
        return None
    return list(demo_ids)
