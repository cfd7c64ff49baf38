"""Synthetic English→German translation task that needs attention and reordering."""

import random
from pathlib import Path
from typing import NamedTuple

SRC_LANG = "en"
TGT_LANG = "de"
SPLITS = ("val", "test", "train")  # held-out splits first: stable when n_train changes
TEMPLATES = ("simple", "coordination", "subordinate")


class Noun(NamedTuple):
    """A noun in both languages with its German gender ("m", "f" or "n")."""

    en: str
    en_plural: str
    de: str
    de_plural: str
    gender: str


NOUNS: dict[str, Noun] = {
    n.en: n
    for n in (
        Noun("dog", "dogs", "Hund", "Hunde", "m"),
        Noun("cat", "cats", "Katze", "Katzen", "f"),
        Noun("house", "houses", "Haus", "Häuser", "n"),
        Noun("apple", "apples", "Apfel", "Äpfel", "m"),
        Noun("book", "books", "Buch", "Bücher", "n"),
        Noun("flower", "flowers", "Blume", "Blumen", "f"),
        Noun("car", "cars", "Auto", "Autos", "n"),
        Noun("bird", "birds", "Vogel", "Vögel", "m"),
        Noun("tree", "trees", "Baum", "Bäume", "m"),
        Noun("lamp", "lamps", "Lampe", "Lampen", "f"),
    )
}

ADJECTIVES: dict[str, str] = {
    "red": "rot",
    "big": "groß",
    "small": "klein",
    "old": "alt",
    "new": "neu",
    "green": "grün",
    "blue": "blau",
    "beautiful": "schön",
}

# English subject -> (German subject, person/number key used for conjugation).
SUBJECTS: dict[str, tuple[str, str]] = {
    "i": ("ich", "1sg"),
    "you": ("du", "2sg"),
    "he": ("er", "3sg"),
    "she": ("sie", "3sg"),
    "we": ("wir", "1pl"),
    "they": ("sie", "3pl"),
}

# English verb -> (English third-person singular, German forms by person key).
PERSONS = ("1sg", "2sg", "3sg", "1pl", "3pl")
VERBS: dict[str, tuple[str, dict[str, str]]] = {
    "see": ("sees", dict(zip(PERSONS, ("sehe", "siehst", "sieht", "sehen", "sehen")))),
    "buy": ("buys", dict(zip(PERSONS, ("kaufe", "kaufst", "kauft", "kaufen", "kaufen")))),
    "have": ("has", dict(zip(PERSONS, ("habe", "hast", "hat", "haben", "haben")))),
}

EN_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
EN_TEENS = (
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

DE_ONES = ("", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
DE_TEENS = ("zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn", "neunzehn")
DE_TENS = ("", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig")

DE_ARTICLE_ENDING = {"m": ("einen", "en"), "f": ("eine", "e"), "n": ("ein", "es")}


def _check_range(n: int) -> None:
    """Reject numbers outside the supported range 1..999."""
    if not 1 <= n <= 999:
        raise ValueError(f"number out of range 1..999: {n}")


def number_to_english(n: int) -> str:
    """Spell 1..999 in English, e.g. 121 -> "one hundred twenty-one"."""
    _check_range(n)
    hundreds, rest = divmod(n, 100)
    words = [f"{EN_ONES[hundreds]} hundred"] if hundreds else []
    tens, ones = divmod(rest, 10)
    if tens == 1:
        words.append(EN_TEENS[ones])
    elif tens:
        words.append(EN_TENS[tens] + (f"-{EN_ONES[ones]}" if ones else ""))
    elif ones:
        words.append(EN_ONES[ones])
    return " ".join(words)


def _german_below_100(n: int) -> str:
    """Spell 0..99 in German with units before tens ("einundzwanzig")."""
    tens, ones = divmod(n, 10)
    if tens == 0:
        return DE_ONES[ones]
    if tens == 1:
        return DE_TEENS[ones]
    if ones == 0:
        return DE_TENS[tens]
    return ("ein" if ones == 1 else DE_ONES[ones]) + "und" + DE_TENS[tens]


def number_to_german(n: int) -> str:
    """Spell 1..999 in German as one compound word, e.g. 121 -> "einhunderteinundzwanzig"."""
    _check_range(n)
    hundreds, rest = divmod(n, 100)
    prefix = ("ein" if hundreds == 1 else DE_ONES[hundreds]) + "hundert" if hundreds else ""
    return prefix + _german_below_100(rest)


def noun_phrase(count: int, noun: str, adjective: str | None = None) -> tuple[str, str]:
    """Build an accusative noun phrase pair, e.g. "one red dog" / "einen roten Hund"."""
    entry = NOUNS[noun]
    adj_en = [adjective] if adjective else []
    stem = ADJECTIVES[adjective] if adjective else None
    if count == 1:
        article, ending = DE_ARTICLE_ENDING[entry.gender]
        de = [article] + ([stem + ending] if stem else []) + [entry.de]
        return " ".join(["one", *adj_en, entry.en]), " ".join(de)
    de = [number_to_german(count)] + ([stem + "e"] if stem else []) + [entry.de_plural]
    return " ".join([number_to_english(count), *adj_en, entry.en_plural]), " ".join(de)


def conjugate(subject: str, verb: str) -> tuple[str, str]:
    """Return the present-tense verb forms (English, German) agreeing with the subject."""
    third_singular, german_forms = VERBS[verb]
    person = SUBJECTS[subject][1]
    return (third_singular if person == "3sg" else verb), german_forms[person]


def _capitalize(text: str) -> str:
    """Upper-case the first character only (German sentence start)."""
    return text[:1].upper() + text[1:]


def build_sentence(template: str, subject: str, verb: str, phrases: list[tuple[str, str]]) -> tuple[str, str]:
    """Render one template from a subject, a verb and one or two noun-phrase pairs."""
    verb_en, verb_de = conjugate(subject, verb)
    subj_de = SUBJECTS[subject][0]
    obj_en = " and ".join(en for en, _ in phrases)
    obj_de = " und ".join(de for _, de in phrases)
    if template in ("simple", "coordination"):
        return f"{subject} {verb_en} {obj_en}.", _capitalize(f"{subj_de} {verb_de} {obj_de}.")
    if template == "subordinate":
        return (f"i know that {subject} {verb_en} {obj_en}.", f"Ich weiß, dass {subj_de} {obj_de} {verb_de}.")
    raise ValueError(f"unknown template: {template}")


def _sample_count(rng: random.Random) -> int:
    """Draw a count, over-sampling 1 and small numbers so every form is well covered."""
    r = rng.random()
    if r < 0.2:
        return 1
    if r < 0.5:
        return rng.randint(2, 99)
    return rng.randint(100, 999)


def _sample_phrase(rng: random.Random) -> tuple[str, str]:
    """Draw a random noun phrase pair with an adjective about half of the time."""
    count = _sample_count(rng)
    adjective = rng.choice(list(ADJECTIVES)) if rng.random() < 0.5 else None
    return noun_phrase(count, rng.choice(list(NOUNS)), adjective)


def make_pair(rng: random.Random) -> tuple[str, str]:
    """Draw one random (English, German) sentence pair."""
    template = rng.choice(TEMPLATES)
    subject = rng.choice(list(SUBJECTS))
    verb = rng.choice(list(VERBS))
    n_phrases = 2 if template == "coordination" else 1
    phrases = [_sample_phrase(rng) for _ in range(n_phrases)]
    return build_sentence(template, subject, verb, phrases)


def _unique_pairs(rng: random.Random, total: int) -> list[tuple[str, str]]:
    """Draw pairs until `total` distinct source sentences are collected."""
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 20 * total + 1000:
            raise RuntimeError(f"only {len(pairs)} of {total} distinct sentences found")
        src, tgt = make_pair(rng)
        if src not in seen:
            seen.add(src)
            pairs.append((src, tgt))
    return pairs


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write one sentence per line as UTF-8 with "\\n" endings."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def generate_corpus(
    out_dir: str | Path, n_train: int = 30000, n_val: int = 500, n_test: int = 1000, seed: int = 1234
) -> dict[str, int]:
    """Write deterministic, source-disjoint train/val/test splits and return their line counts."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(size < 0 for size in sizes.values()):
        raise ValueError(f"split sizes must be non-negative: {sizes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = _unique_pairs(random.Random(seed), sum(sizes.values()))
    start = 0
    for split in SPLITS:
        chunk = pairs[start : start + sizes[split]]
        start += sizes[split]
        _write_lines(out / f"{split}.{SRC_LANG}", [src for src, _ in chunk])
        _write_lines(out / f"{split}.{TGT_LANG}", [tgt for _, tgt in chunk])
    return sizes
