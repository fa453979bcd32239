"""PromptEOL templates (byte-exact), the paper's preprocessing, demonstrations."""

from __future__ import annotations

import pytest

from sentscale.errors import ConfigError
from sentscale.prompts import (
    Demo,
    build_prompt,
    check_template,
    get_variant,
    preprocess_sentence,
    prompt_metadata,
)


def test_templates_byte_exact():
    assert get_variant("eol").template == 'This sentence : "{sentence}" means in one word:"'
    assert get_variant("eol-paper-text").template == (
        'This sentence: "{sentence}" means in one word: "'
    )
    assert get_variant("means").template == 'This sentence : "{sentence}" means'
    assert build_prompt("A man is smoking.", "eol") == (
        'This sentence : "A man is smoking." means in one word:"'
    )


def test_poolings():
    assert get_variant("eol").pooling == "last"
    assert (get_variant("last").template, get_variant("last").pooling) == ("{sentence}", "last")
    assert (get_variant("avg").template, get_variant("avg").pooling) == ("{sentence}", "mean")


def test_one_demo_byte_exact():
    prompt = build_prompt("A dog runs.", "eol", [Demo("A man is smoking.", "Smoking")])
    assert prompt == (
        'This sentence : "A man is smoking." means in one word:"Smoking".'
        'This sentence : "A dog runs." means in one word:"'
    )


def test_demos_concatenate_in_order_and_are_not_preprocessed():
    demos = [("no period", "One"), ('has "quotes"?', "Two")]
    assert build_prompt("x", "means", demos) == (
        'This sentence : "no period" meansOne".'
        'This sentence : "has "quotes"?" meansTwo".'
        'This sentence : "x." means'
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A man is smoking", "A man is smoking."),
        ("A man is smoking.", "A man is smoking."),
        ("Why?", "Why."),
        ("It's 'fine'", "It's 'fine'"),
        ('He said "no"', "He said 'no'"),  # ends in '"': no period added, then quotes swapped
        ('Is it "ok?"', "Is it 'ok?'"),  # the '?' is not final once the quote is swapped
        ('say "hi', "say 'hi."),
        ("", ""),
        ("  spaced  ", "  spaced  ."),
    ],
)
def test_preprocessing_in_the_papers_order(raw, clean):
    assert preprocess_sentence(raw) == clean


def test_empty_sentence_prompt():
    assert build_prompt("", "eol") == 'This sentence : "" means in one word:"'


def test_preprocess_switch_and_raw_variants():
    assert build_prompt('Why "x"?', "eol", preprocess=False) == (
        'This sentence : "Why "x"?" means in one word:"'
    )
    assert build_prompt('Why "x"?', "eol") == 'This sentence : "Why \'x\'." means in one word:"'
    # The paper preprocesses only with a template: raw variants keep the sentence as is.
    assert build_prompt(' Why "x"? ', "last") == ' Why "x"? '
    assert build_prompt(' Why "x"? ', "avg") == ' Why "x"? '
    assert get_variant("last").preprocess is False and get_variant("eol").preprocess is True


def test_prompt_is_stripped_like_the_papers_code():
    raw_pp = get_variant("last", {"preprocess": True})
    assert build_prompt("  Why? ", raw_pp) == "Why? ."
    assert build_prompt(" a", "eol") == 'This sentence : " a." means in one word:"'


@pytest.mark.parametrize(
    "template",
    [
        "no slot",
        "{sentence} and {other}",
        "{sentence} {sentence}",
        "{}",
        "{0}",
        "{sentence",
        "{sentence!r}",
        "{sentence:>5}",
        42,
    ],
)
def test_bad_templates(template):
    with pytest.raises(ConfigError):
        check_template(template)


def test_literal_braces_allowed():
    assert build_prompt("x", get_variant("b", {"template": "{{ {sentence} }}"})) == "{ x. }"


def test_config_extends_and_overrides():
    custom = get_variant("short", {"template": '"{sentence}" in one word:"'})
    assert (custom.pooling, custom.preprocess) == ("last", True)
    assert get_variant("eol", {"pooling": "mean"}).template == get_variant("eol").template
    assert get_variant("eol", {"preprocess": False}).preprocess is False
    with pytest.raises(ConfigError, match="unknown prompt variant"):
        get_variant("nope")
    with pytest.raises(ConfigError, match="pooling"):
        get_variant("eol", {"pooling": "max"})
    with pytest.raises(ConfigError, match="unknown keys"):
        get_variant("eol", {"tmpl": "{sentence}"})
    with pytest.raises(ConfigError, match="slot"):
        get_variant("eol", {"template": "This sentence means"})


def test_records():
    variant = get_variant("eol")
    assert variant.to_dict() == {
        "name": "eol",
        "template": 'This sentence : "{sentence}" means in one word:"',
        "pooling": "last",
        "preprocess": True,
    }
    assert Demo("s", "w").to_dict() == {"sentence": "s", "word": "w"}
    meta = prompt_metadata(variant, [Demo("s", "w")], preprocess=False)
    assert meta["preprocess"] is False and meta["demos"] == [["s", "w"]]
