"""SentencePiece: training the run's models (with one-line errors for settings it refuses) and a small
`Tokenizer`, whose piece ids are the vocabulary."""

from __future__ import annotations

import functools
import io
import itertools
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sentencepiece as spm

from .config import MIN_CHARACTER_COVERAGE, ConfigError, DataConfig
from .errors import CorpusError
from .ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from .text import iter_lines

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

__all__ = ["BOS_ID", "EOS_ID", "PAD_ID", "UNK_ID", "Tokenizer", "train_sentencepiece", "train_tokenizers"]


def train_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    input_sentence_size: int = 2_000_000,
    seed: int = 1234,
) -> bytes:
    """Train a SentencePiece model on `sentences` and return it as bytes. Over `input_sentence_size`
    sentences, it learns from a sample of that many (`sample_sentences`, seeded by `seed`): the same
    sentences and seed give the same model in any process. SentencePiece's own sampling ignored
    `spm.set_random_generator_seed` and differed from process to process."""
    spm.set_random_generator_seed(seed)
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample_sentences(sentences, input_sentence_size, seed)),
        model_writer=out,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=input_sentence_size,  # the sample holds at most that many: read whole, in the order
        shuffle_input_sentence=True,  # SentencePiece shuffles it to (seeded: the same in every process)
        hard_vocab_limit=False,  # tiny corpora get a smaller vocabulary instead of an error
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=2,
        minloglevel=2,
    )
    return out.getvalue()


def sample_sentences(sentences: Iterable[str], size: int, seed: int) -> list[str]:
    """`size` of `sentences` (all of them when there are no more), picked by reservoir sampling with
    `random.Random(seed)`: one pass, memory bounded by `size` sentences, the same picks for the same
    input and seed in any process. `size` 0: all of them."""
    if size <= 0:
        return list(sentences)
    rng, sample = random.Random(seed), []
    for i, sentence in enumerate(sentences):
        if i < size:
            sample.append(sentence)
        elif (j := rng.randrange(i + 1)) < size:
            sample[j] = sentence
    return sample


class Tokenizer:
    """Text <-> piece ids with one SentencePiece model; travels as bytes inside checkpoints."""

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        self._no_piece: dict[str, bool] = {}  # no_piece's answers
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):  # not an assert: `python -O` would load such a model
            raise ValueError(f"special ids differ: pad/unk/bos/eos are {ids}, not {(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str], alpha: float = 0.0) -> list[list[int]]:
        """Piece ids (no BOS/EOS); alpha > 0 samples a segmentation (subword regularisation)."""
        if alpha > 0:
            # One thread; SentencePiece's samples follow spm.set_random_generator_seed within a process but
            # differ between processes (prepared.write_sampled_train keeps an epoch's samples for a resume).
            return self.sp.encode(list(texts), enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1)
        return self.sp.encode(list(texts))

    @functools.cached_property
    def longest_piece(self) -> int:
        """Characters of the longest piece (its word-start mark included)."""
        return max(len(self.sp.id_to_piece(i)) for i in range(len(self.sp)))

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenised text; special ids are skipped."""
        return self.sp.decode([[i for i in seq if i > EOS_ID] for seq in ids])

    def has_words(self, ids: Sequence[int]) -> bool:
        """Whether `ids` hold a piece other than `<unk>` and the bare word-start mark `▁` (a line of characters
        the vocabulary lacks, `🙂` or `東京` for a de-en model, is `▁ <unk>`: nothing to translate)."""
        return any(i != UNK_ID and i != self._bare_mark for i in ids)

    @functools.cached_property
    def _bare_mark(self) -> int:
        return self.sp.piece_to_id("\u2581")  # UNK_ID where the vocabulary has no bare `▁`

    def no_piece(self, chars: Iterable[str]) -> set[str]:
        """Those of `chars` that make no piece: this model's normalisation turns them into nothing or a space (a
        zero-width space, a BOM, controls, other spaces); the plain space aside."""
        chars = set(chars)
        new = [c for c in chars if c not in self._no_piece]
        self._no_piece.update((c, not ids and c != " ") for c, ids in zip(new, self.sp.encode(new)))
        return {c for c in chars if self._no_piece[c]}

    def word_of_pieces(self, words: Sequence[str], ids: Sequence[int]) -> list[int] | None:
        """The word (of `words`, a text's whitespace-separated tokens) each of `ids` (that text's pieces, perhaps
        cut) comes from. SentencePiece segments each token on its own, so the text's pieces are its tokens' one
        after another, and a token that makes none (a zero-width space) has none; None where they are not."""
        each = self.sp.encode(list(words))
        if [i for token in each for i in token][: len(ids)] != list(ids):
            return None
        return [w for w, token in enumerate(each) for _ in token][: len(ids)]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The pieces behind `ids`, for display (attention maps, debugging)."""
        return [self.sp.id_to_piece(i) for i in ids]


def train_tokenizers(train: Path, cfg: DataConfig) -> tuple[bytes, bytes]:
    """SentencePiece model(s) trained on a sample of the cleaned training text (streamed to the trainer)."""
    spm_args = dict(
        vocab_size=cfg.vocab_size,
        model_type=cfg.sp_model_type,
        character_coverage=cfg.character_coverage,
        input_sentence_size=cfg.spm_input_sentence_size,
        seed=cfg.spm_seed,
    )
    src_text, tgt_text = Path(f"{train}.src.txt"), Path(f"{train}.tgt.txt")
    if cfg.joint_vocab:
        lines = itertools.chain(iter_lines(src_text), iter_lines(tgt_text))
        model = _train_side(lines, "joint (source and target)", spm_args)
        return model, model
    src_model = _train_side(iter_lines(src_text), "source", spm_args)
    return src_model, _train_side(iter_lines(tgt_text), "target", spm_args)


def _train_side(lines: Iterator[str], side: str, spm_args: dict) -> bytes:
    """One SentencePiece model; a --vocab-size below what the text's characters need is a ConfigError."""
    try:
        return train_sentencepiece(lines, **spm_args)
    except RuntimeError as err:
        if "sentences_.empty()" in str(err):  # its trainer skips lines over max_sentence_length, 4,192 bytes
            raise CorpusError(f"no line of the {side} training text is under SentencePiece's 4,192-byte limit, so it "
                              "has nothing to learn from: one sentence per line (a line that long is a paragraph "
                              "or a whole file, not a sentence)") from None  # fmt: skip
        if "Vocabulary size is smaller than required_chars" not in str(err):
            raise
        # SentencePiece says "... required_chars. 20 vs 22. ...": the second number is the least that works
        need = re.search(r"required_chars\. *\d+ vs (\d+)", str(err))
        fix = f"use at least --vocab-size {need[1]}" if need else "use a larger --vocab-size"
        if spm_args["character_coverage"] > MIN_CHARACTER_COVERAGE:
            fix += (
                f", or a lower --character-coverage (down to {MIN_CHARACTER_COVERAGE}) to map rare characters to <unk>"
            )
        raise ConfigError(
            f"--vocab-size {spm_args['vocab_size']} is smaller than the {side} training text needs "
            f"(one piece per character plus 4 special pieces); {fix}"
        ) from None
