"""PromptEOL prompt templates, the paper's evaluation-time preprocessing, in-context demos.

A template is a plain string with exactly one ``{sentence}`` slot. Each named variant pairs a
template with a pooling: ``"last"`` (hidden state of the last prompt token, PromptEOL),
``"mean"`` (mean over the real tokens of the last layer) or ``"avg-paper"`` (the original
``--avg`` arithmetic: the masked sum divided by the padded width of the batch, so a row depends
on which rows share its batch; see :mod:`sentscale.embed`).

Preprocessing (``preprocess=True``) reproduces the batcher of the PromptEOL evaluation code
(``evaluation.py`` of kongds/scaling_sentemb), in its order:

1. append ``.`` unless the sentence is empty or ends in one of ``.?"'``;
2. replace every ``"`` with ``'`` (so the sentence cannot close the prompt's quotes);
3. a final ``?`` becomes ``.``;
4. substitute into the template and ``.strip()`` the whole prompt.

The paper applies it only when a template is in use, so by default variants whose template is
the bare ``{sentence}`` (``last``, ``avg``) do not preprocess (``PromptVariant.preprocess``,
which config may set either way). ``build_prompt(preprocess=False)`` switches it off for any
variant; the effective setting is recorded by :func:`prompt_metadata`.

Demonstrations are ``(sentence, word)`` pairs written already clean in the paper, so their text
is used verbatim (no preprocessing). Each demo contributes
``template.format(sentence=demo_sentence) + word + '".'`` and the demos are concatenated in
order in front of the prompt for the target sentence, with no separator.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sentscale.errors import ConfigError

SENTENCE_SLOT = "sentence"
# "mean" is the true mean over a row's real tokens; "avg-paper" is evaluation.py's `--avg`
# ((last_layer * mask).mean(1): divided by the batch's padded width), kept for parity runs.
POOLINGS = ("last", "mean", "avg-paper")


@dataclass(frozen=True)
class PromptVariant:
    """A named template and pooling.

    ``preprocess``: whether the paper's sentence clean-up applies to this variant; by default
    only when the sentence is wrapped in a prompt (as in the paper), so never for the bare
    ``{sentence}`` of ``last``/``avg``. Config may set it either way.
    """

    name: str
    template: str
    pooling: str = "last"
    preprocess: bool | None = None

    def __post_init__(self) -> None:
        check_template(self.template, where=f"prompt variant {self.name!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"prompt variant {self.name!r}: pooling must be one of {POOLINGS}, "
                f"got {self.pooling!r}"
            )
        if self.preprocess is None:
            object.__setattr__(self, "preprocess", self.template.strip() != "{sentence}")
        elif not isinstance(self.preprocess, bool):
            raise ConfigError(
                f"prompt variant {self.name!r}: preprocess must be true or false, "
                f"got {self.preprocess!r}"
            )

    @property
    def takes_demos(self) -> bool:
        """Demonstrations are filled templates; a bare ``{sentence}`` has nothing to fill."""
        return self.template.strip() != "{sentence}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template,
            "pooling": self.pooling,
            "preprocess": self.preprocess,
        }


class Demo(NamedTuple):
    """An in-context demonstration: a sentence and the one word that summarises it."""

    sentence: str
    word: str

    def to_dict(self) -> dict[str, str]:
        return {"sentence": self.sentence, "word": self.word}


DEFAULT_VARIANTS: dict[str, dict[str, str]] = {
    # The exact string of the paper's code (space before ':', none after 'word:').
    "eol": {"template": 'This sentence : "{sentence}" means in one word:"', "pooling": "last"},
    # The string as printed in the paper's text.
    "eol-paper-text": {
        "template": 'This sentence: "{sentence}" means in one word: "',
        "pooling": "last",
    },
    "means": {"template": 'This sentence : "{sentence}" means', "pooling": "last"},
    "last": {"template": "{sentence}", "pooling": "last"},
    "avg": {"template": "{sentence}", "pooling": "mean"},
    # The original's `--avg` arithmetic (batch-dependent rows; see sentscale.embed).
    "avg-paper": {"template": "{sentence}", "pooling": "avg-paper"},
}


def check_template(template: Any, *, where: str = "template") -> str:
    """Return ``template`` if it has exactly the format field ``{sentence}``; else ConfigError."""
    if not isinstance(template, str):
        raise ConfigError(f"{where}: template must be a string, got {type(template).__name__}")
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:  # unbalanced braces
        raise ConfigError(f"{where}: malformed template {template!r}: {exc}") from None
    fields = [
        f + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
        for f, spec, conv in parsed
        if f is not None
    ]
    if fields != [SENTENCE_SLOT]:
        raise ConfigError(
            f"{where}: template must contain the slot {{sentence}} exactly once and no other "
            f"format field (literal braces as {{{{ }}}}); found fields {fields} in {template!r}"
        )
    return template


VARIANT_KEYS = ("template", "pooling", "preprocess")


def get_variant(name: str, extra: Mapping[str, Any] | None = None) -> PromptVariant:
    """The variant ``name``: a built-in, overridden or extended by its config entry ``extra``.

    ``extra`` holds any of ``template``, ``pooling``, ``preprocess``; for a built-in name the
    keys it lacks come from the built-in, a new name needs at least ``template``.
    """
    extra = dict(extra or {})
    unknown = sorted(set(extra) - set(VARIANT_KEYS))
    if unknown:
        raise ConfigError(
            f"prompt variant {name!r}: unknown keys {unknown}; expected some of {VARIANT_KEYS}"
        )
    if name not in DEFAULT_VARIANTS and "template" not in extra:
        raise ConfigError(
            f"unknown prompt variant {name!r}: give it a 'template' or use a built-in "
            f"({', '.join(DEFAULT_VARIANTS)})"
        )
    spec = {"pooling": "last", **DEFAULT_VARIANTS.get(name, {}), **extra}
    return PromptVariant(name=name, **spec)


def preprocess_sentence(sentence: str) -> str:
    """The PromptEOL batcher's sentence clean-up, steps 1-3 in the code's order."""
    s = sentence
    if len(s) > 0 and s[-1] not in ".?\"'":
        s += "."
    s = s.replace('"', "'")
    if len(s) > 0 and s[-1] == "?":
        s = s[:-1] + "."
    return s


def as_demos(demos: Iterable[Demo | Sequence[str]]) -> tuple[Demo, ...]:
    """Accept ``Demo`` objects or ``(sentence, word)`` pairs (e.g. from YAML lists)."""
    out = []
    for d in demos:
        if isinstance(d, Demo):
            out.append(d)
        elif isinstance(d, Mapping):
            out.append(Demo(sentence=d["sentence"], word=d["word"]))
        elif isinstance(d, Sequence) and not isinstance(d, str) and len(d) == 2:
            out.append(Demo(sentence=d[0], word=d[1]))
        else:
            raise ConfigError(f"demonstration must be (sentence, word), got {d!r}")
    return tuple(out)


def demo_prefix(variant: PromptVariant, demos: Iterable[Demo | Sequence[str]]) -> str:
    """The in-context prefix: each demo's filled template, its word, then ``".``."""
    return "".join(
        variant.template.format(sentence=d.sentence) + d.word + '".' for d in as_demos(demos)
    )


def build_prompt(
    sentence: str,
    variant: PromptVariant | str,
    demos: Iterable[Demo | Sequence[str]] = (),
    preprocess: bool = True,
) -> str:
    """The full prompt for one sentence (demos first, then the filled template)."""
    if isinstance(variant, str):
        variant = get_variant(variant)
    prefix = demo_prefix(variant, demos)
    if preprocess and variant.preprocess:
        # The paper's code strips the assembled prompt (demos are part of its template).
        return (prefix + variant.template.format(sentence=preprocess_sentence(sentence))).strip()
    return prefix + variant.template.format(sentence=sentence)


def prompt_metadata(
    variant: PromptVariant, demos: Iterable[Demo | Sequence[str]] = (), preprocess: bool = True
) -> dict[str, Any]:
    """What determines the prompt text, for run records."""
    return {
        "prompt": variant.name,
        "template": variant.template,
        "pooling": variant.pooling,
        "demos": [[d.sentence, d.word] for d in as_demos(demos)],
        "preprocess": bool(preprocess and variant.preprocess),
    }
