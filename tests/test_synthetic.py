"""Tests for the synthetic English→German demo task."""

import random
from pathlib import Path

import pytest

from seq2seq.tools.synthetic import (
    SRC_LANG,
    TGT_LANG,
    build_sentence,
    conjugate,
    generate_corpus,
    make_pair,
    noun_phrase,
    number_to_english,
    number_to_german,
)

NUMBERS = [
    (1, "one", "eins"),
    (7, "seven", "sieben"),
    (11, "eleven", "elf"),
    (12, "twelve", "zwölf"),
    (16, "sixteen", "sechzehn"),
    (17, "seventeen", "siebzehn"),
    (21, "twenty-one", "einundzwanzig"),
    (30, "thirty", "dreißig"),
    (42, "forty-two", "zweiundvierzig"),
    (60, "sixty", "sechzig"),
    (70, "seventy", "siebzig"),
    (99, "ninety-nine", "neunundneunzig"),
    (100, "one hundred", "einhundert"),
    (101, "one hundred one", "einhunderteins"),
    (111, "one hundred eleven", "einhundertelf"),
    (121, "one hundred twenty-one", "einhunderteinundzwanzig"),
    (200, "two hundred", "zweihundert"),
    (201, "two hundred one", "zweihunderteins"),
    (777, "seven hundred seventy-seven", "siebenhundertsiebenundsiebzig"),
    (999, "nine hundred ninety-nine", "neunhundertneunundneunzig"),
]


@pytest.mark.parametrize(("n", "english", "german"), NUMBERS)
def test_number_words(n: int, english: str, german: str) -> None:
    assert number_to_english(n) == english
    assert number_to_german(n) == german


def test_german_numbers_are_single_distinct_words() -> None:
    words = [number_to_german(n) for n in range(1, 1000)]
    assert all(" " not in w and "-" not in w for w in words)
    assert len(set(words)) == 999
    assert len({number_to_english(n) for n in range(1, 1000)}) == 999


@pytest.mark.parametrize("n", [0, 1000, -5])
def test_numbers_out_of_range_rejected(n: int) -> None:
    with pytest.raises(ValueError):
        number_to_german(n)
    with pytest.raises(ValueError):
        number_to_english(n)


@pytest.mark.parametrize(
    ("count", "noun", "adjective", "english", "german"),
    [
        (1, "dog", None, "one dog", "einen Hund"),
        (1, "dog", "red", "one red dog", "einen roten Hund"),
        (1, "cat", None, "one cat", "eine Katze"),
        (1, "cat", "red", "one red cat", "eine rote Katze"),
        (1, "house", None, "one house", "ein Haus"),
        (1, "house", "red", "one red house", "ein rotes Haus"),
        (1, "tree", "beautiful", "one beautiful tree", "einen schönen Baum"),
        (21, "dog", "red", "twenty-one red dogs", "einundzwanzig rote Hunde"),
        (2, "house", None, "two houses", "zwei Häuser"),
        (101, "apple", "green", "one hundred one green apples", "einhunderteins grüne Äpfel"),
        (3, "book", "big", "three big books", "drei große Bücher"),
        (5, "bird", None, "five birds", "fünf Vögel"),
    ],
)
def test_noun_phrase_agreement(count: int, noun: str, adjective: str | None, english: str, german: str) -> None:
    assert noun_phrase(count, noun, adjective) == (english, german)


@pytest.mark.parametrize(
    ("subject", "verb", "english", "german"),
    [
        ("i", "see", "see", "sehe"),
        ("you", "buy", "buy", "kaufst"),
        ("he", "see", "sees", "sieht"),
        ("she", "have", "has", "hat"),
        ("we", "have", "have", "haben"),
        ("they", "buy", "buy", "kaufen"),
        ("you", "see", "see", "siehst"),
    ],
)
def test_conjugation(subject: str, verb: str, english: str, german: str) -> None:
    assert conjugate(subject, verb) == (english, german)


def test_simple_template_capitalizes_german() -> None:
    pair = build_sentence("simple", "he", "see", [noun_phrase(1, "cat", "old")])
    assert pair == ("he sees one old cat.", "Er sieht eine alte Katze.")


def test_coordination_template() -> None:
    phrases = [noun_phrase(2, "car", None), noun_phrase(1, "lamp", "blue")]
    pair = build_sentence("coordination", "we", "buy", phrases)
    assert pair == (
        "we buy two cars and one blue lamp.",
        "Wir kaufen zwei Autos und eine blaue Lampe.",
    )


def test_subordinate_template_moves_verb_to_end() -> None:
    pair = build_sentence("subordinate", "she", "have", [noun_phrase(42, "flower", "small")])
    assert pair == (
        "i know that she has forty-two small flowers.",
        "Ich weiß, dass sie zweiundvierzig kleine Blumen hat.",
    )


def test_make_pair_is_deterministic_and_mixes_templates() -> None:
    first = [make_pair(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(7)
    pairs = [make_pair(rng) for _ in range(300)]
    assert any(" and " in en for en, _ in pairs)
    assert any(en.startswith("i know that ") for en, _ in pairs)
    assert any(de.startswith("Ich weiß, dass ") for _, de in pairs)
    for en, de in pairs:
        assert en == en.lower() and en.endswith(".") and de.endswith(".")
        assert de[0].isupper() and "  " not in en + de


def read_split(out: Path, split: str, lang: str) -> list[str]:
    """Read one generated file as a list of lines."""
    return (out / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()


def test_generate_corpus_counts_and_files(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "data"
    counts = generate_corpus(out, n_train=300, n_val=40, n_test=60, seed=3)
    assert counts == {"train": 300, "val": 40, "test": 60}
    assert (SRC_LANG, TGT_LANG) == ("en", "de")
    for split, n in counts.items():
        for lang in (SRC_LANG, TGT_LANG):
            path = out / f"{split}.{lang}"
            assert path.read_bytes().endswith(b"\n") and b"\r" not in path.read_bytes()
            assert len(read_split(out, split, lang)) == n


def test_generate_corpus_splits_are_disjoint(tmp_path: Path) -> None:
    generate_corpus(tmp_path, n_train=500, n_val=50, n_test=80, seed=5)
    train, val, test = (set(read_split(tmp_path, s, SRC_LANG)) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (500, 50, 80)
    assert not train & val and not train & test and not val & test


def test_generate_corpus_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 11), (b, 11), (c, 12)):
        generate_corpus(out, n_train=200, n_val=20, n_test=20, seed=seed)
    for name in ("train.en", "train.de", "val.en", "val.de", "test.en", "test.de"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train.en").read_bytes() != (c / "train.en").read_bytes()


def test_held_out_splits_do_not_depend_on_train_size(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "small", n_train=10, n_val=20, n_test=20, seed=4)
    generate_corpus(tmp_path / "large", n_train=300, n_val=20, n_test=20, seed=4)
    for name in ("val.en", "val.de", "test.en", "test.de"):
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "large" / name).read_bytes()


def test_generate_corpus_pairs_are_aligned(tmp_path: Path) -> None:
    generate_corpus(tmp_path, n_train=100, n_val=10, n_test=10, seed=9)
    rng = random.Random(9)
    expected = dict(make_pair(rng) for _ in range(1000))
    for src, tgt in zip(read_split(tmp_path, "train", "en"), read_split(tmp_path, "train", "de")):
        assert expected[src] == tgt
