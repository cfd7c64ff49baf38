"""Every default of the toolkit, in four frozen dataclasses, with their bounds and the checks across fields.

`DataConfig` (corpus preparation and tokenizer), `ModelConfig` (the network), `TrainConfig`
(the optimisation) and `DecodeConfig` (search). Loading them strictly from dicts is config_dict.py's
(unknown keys and wrong types are errors that name the closest valid key), from TOML config_toml.py's;
CLI flags are generated from the fields (`cli/flags.py`).
"""

from __future__ import annotations

import functools
import math
import os
import re
import typing
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError, ConfigKeyError  # noqa: F401 -- defined in errors.py; these old names stay

if TYPE_CHECKING:
    from collections.abc import Collection

# sacreBLEU's BLEU tokenizers (sacrebleu.metrics.bleu._TOKENIZERS): 13a for most languages, zh for
# Chinese, ja-mecab / ko-mecab for Japanese / Korean (need sacrebleu[ja] / sacrebleu[ko]), char, intl, ...
BleuTokenize = Literal["13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "none", "spm", "flores101", "flores200"]
BLEU_TOKENIZERS: tuple[str, ...] = typing.get_args(BleuTokenize)
SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a split's file stem: no path, no hidden file
MIN_CHARACTER_COVERAGE = 0.98  # SentencePiece's trainer refuses a lower --character-coverage


def check(cond: bool, msg: str) -> None:
    """A ConfigError saying `msg` unless `cond`."""
    if not cond:
        raise ConfigError(msg)


def shown(value: Any) -> str:
    """A value for a message: an integer of hundreds of digits by its size (str() of one over 4,300 digits fails)."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return repr(value) if isinstance(value, str) else str(value)


LANGUAGE_CODE = "a language code (1 to 100 printable characters)"  # a corpus file's suffix: `de`, `pt_BR`, `sr@latin`


def check_language_codes(src: Any, tgt: Any) -> None:
    """`--src`/`--tgt` as every model file records them (an exported model refuses any other): before any work."""
    for flag, value in (("--src", src), ("--tgt", tgt)):
        check(is_language_code(value), f"{flag} {value!r} is not {LANGUAGE_CODE}")


def is_language_code(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 100 and value.isprintable()


def _refused(error: type[ConfigError], message: str, where: str, wanted: str | tuple, value: Any) -> ConfigError:
    """`error(message)` carrying the field, what it wants and the value it got (errors.ConfigError)."""
    err = error(message)
    err.field, err.wanted, err.value = where, wanted, value
    return err


def coerce_field(cls: type, name: str, tp: Any, value: Any) -> Any:
    """Check `value` against the field's annotation (ints widen to floats, nothing else)."""
    where = f"{cls.__name__}.{name}"
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise _refused(ConfigError, f"{where} must be one of {choices}, got {value!r}", where, choices, value)
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        check(abs(value) < 2**1023, f"{where} must be a finite number, got an integer over 1e307")
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        message = f"{where} must be {tp.__name__}, got {type(value).__name__} {shown(value)}"
        raise _refused(ConfigKeyError, message, where, tp.__name__, value)
    if tp is int:  # far out of every range; refused here, where no message tries str() (past 4,300 digits: fails)
        check(value.bit_length() <= 14_000, f"{where} is out of range: {shown(value)}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_field_types(obj: Any) -> None:
    """Every field of its annotated type, as `config_dict.from_dict` checks a dict: a config built directly from
    Python (`DecodeConfig(beam_size=2.5)`) is one error naming the field, not a traceback deep in the search."""
    for name, tp in _hints(type(obj)).items():
        value = getattr(obj, name)
        if (widened := coerce_field(type(obj), name, tp, value)) is not value:
            object.__setattr__(obj, name, widened)  # an int given for a float field (frozen: set once, here)


def _check_ranges(obj: Any, bounds: dict[str, tuple[float, float]]) -> None:
    """Every float field finite, and each field of `bounds` in its [low, high]: what a run can ask for is
    bounded before anything is allocated or started (a NaN passes every comparison, so it is named first)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        check(
            not isinstance(value, float) or math.isfinite(value),
            f"{f.name} must be a finite number, got {shown(value)}",
        )
    for name, (low, high) in bounds.items():
        value = getattr(obj, name)
        check(low <= value <= high, f"{name} must be in [{low:,}, {high:,}], got {shown(value)}")


@dataclass(frozen=True)
class DataConfig:
    """Corpus cleaning, filtering and the SentencePiece tokenizer."""

    vocab_size: int = 8000  # per SentencePiece model (a soft limit on tiny corpora)
    joint_vocab: bool = False  # one model for both languages, or one per language
    sp_model_type: Literal["unigram", "bpe"] = "unigram"  # SentencePiece algorithm
    character_coverage: float = 1.0  # share of characters SentencePiece covers (rarer ones: <unk>)
    spm_input_sentence_size: int = 2_000_000  # sentences sampled to train SentencePiece
    spm_seed: int = 1234  # which sentences SentencePiece learns from (tokenizer.sample_sentences), its seed
    min_len: int = 1  # pairs with a side shorter than this (in pieces) are dropped from train
    max_len: int = 250  # pairs with a side longer than this (in pieces) are dropped from train
    max_len_ratio: float = 9.0  # pairs whose piece-length ratio exceeds this are dropped from train
    dedup: bool = False  # drop exact duplicate training pairs
    train_split: str = "train"  # file stem of the training split ({split}.{lang})
    val_split: str = "val"  # file stem of the validation split (model selection, early stopping)
    test_split: str = "test"  # file stem of the test split (reported, never tuned on)

    def __post_init__(self) -> None:
        check_field_types(self)
        check(self.vocab_size >= 16, f"vocab_size must be >= 16, got {self.vocab_size}")
        check(
            MIN_CHARACTER_COVERAGE <= self.character_coverage <= 1,
            f"character_coverage must be in [{MIN_CHARACTER_COVERAGE}, 1] (SentencePiece's range), "
            f"got {self.character_coverage}",
        )
        check(1 <= self.min_len <= self.max_len, "need 1 <= min_len <= max_len")
        check(self.max_len_ratio >= 1, "max_len_ratio must be >= 1")
        check(self.spm_input_sentence_size > 100, "spm_input_sentence_size must be >= 101 (SentencePiece's trainer "
               f"refuses 1-100; a smaller corpus is read whole), got {self.spm_input_sentence_size}")  # fmt: skip
        check(0 <= self.spm_seed < 2**32, f"spm_seed must be in [0, {2**32 - 1}] (SentencePiece's unsigned 32-bit "
                                           f"seed), got {self.spm_seed}")  # fmt: skip
        _check_ranges(self, DATA_BOUNDS)
        for name in ("train_split", "val_split", "test_split"):  # a file stem, never a path: prepared files take it
            split = getattr(self, name)
            check(bool(SPLIT_NAME.fullmatch(split)), f"{name} {shown(split)} is not a split name: letters, digits, "
                   "'_', '-' and '.' (not first), at most 100 (its files are DATA/{split}.{lang}; --data names the "
                   "folder)")  # fmt: skip
        for name, split in (("val_split", self.val_split), ("test_split", self.test_split)):  # not over cache/train
            check(split not in (self.train_split, "train"), f"{name} {split!r} would overwrite the prepared training "
                   f"split (train_split {self.train_split!r}, stored as 'train'): choose another {name}")  # fmt: skip


@dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder; vocabulary sizes come from the tokenizer, not from here."""

    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # recurrent cell of encoder and decoder (rnn: tanh)
    emb_size: int = 256  # word-piece embedding size (both sides)
    enc_hidden: int = 128  # per direction (the encoder is bidirectional)
    enc_layers: int = 1  # stacked encoder RNN layers
    dec_hidden: int = 256  # decoder RNN size
    dec_layers: int = 1  # stacked decoder RNN layers
    attention: Literal["bahdanau", "general", "dot"] = "general"  # score: additive (Bahdanau) or Luong's
    input_feeding: bool = False  # feed the previous attentional vector to the decoder RNN
    tie_embeddings: bool = True  # decoder input embedding == output projection
    dropout: float = 0.2  # on embeddings, between RNN layers, before the output layer
    emb_init_std: float = 0.25  # embeddings start as N(0, std^2) (torch's N(0, 1) before 2026-12-05)

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("emb_size", "enc_hidden", "enc_layers", "dec_hidden", "dec_layers"):
            check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check_ranges(self, MODEL_BOUNDS)
        check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        check(0 < self.emb_init_std <= 10, f"emb_init_std must be in (0, 10], got {self.emb_init_std}")
        check(
            self.attention != "dot" or 2 * self.enc_hidden == self.dec_hidden,
            "attention='dot' needs dec_hidden == 2 * enc_hidden "
            f"(got {self.dec_hidden} and 2*{self.enc_hidden}); use 'general' or 'bahdanau'",
        )

    def decode_row_bytes(self, src_len: int, vocab: int) -> int:
        """Bytes one searched row (hypothesis) of this network holds, for the search's memory check:
        its copy of the encoder memory (states, attention keys, mask; twice while rows are selected),
        its decoder state (old and new), one step's attention work and float32 logits and log-probs."""
        keys = 2 * self.enc_hidden if self.attention == "dot" else self.dec_hidden
        memory = 2 * src_len * (4 * (2 * self.enc_hidden + keys) + 1)
        state = 2 * 4 * (self.dec_layers * self.dec_hidden * (2 if self.cell == "lstm" else 1) + self.emb_size)
        attend = 4 * src_len * (2 * self.dec_hidden if self.attention == "bahdanau" else 2)  # (S, Hd) tanh terms
        return memory + state + attend + 4 * 2 * vocab


DECODING_ONEDNN_CACHE = 16  # translate and serve: decoder steps repeat shapes (at 4, beam 5 is 13 % slower)
TRAINING_ONEDNN_CACHE = 4  # training's batch shapes never repeat: keep the last few (docs/speed.md)
BUCKETED_ONEDNN_CACHE = 1024  # ... unless they come from shape buckets: then keep every one (about 40 per shape)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: batching, optimiser, schedule, validation and stopping; and the process
    settings (`threads`, `tf32`, `onednn_cache`, `malloc_mmap_kib`) that `train()` applies once, first."""

    seed: int = 1234  # model initialisation, batch order, dropout, subword sampling (not the tokenizer)
    max_tokens: int = 3000  # target tokens (incl. padding) per batch
    max_steps: int = 0  # stop after this many updates (0: no limit)
    max_epochs: int = 100  # stop after this many passes over the training data
    max_minutes: float = 0.0  # stop after this many training minutes: preprocessing not counted (0: no limit)
    lr: float = 1e-3  # Adam learning rate (peak, after warm-up)
    warmup_steps: int = 0  # linear learning-rate warm-up
    lr_schedule: Literal["plateau", "anneal"] = "plateau"  # see lr_decay/lr_patience, anneal_fraction
    anneal_fraction: float = 0.4  # "anneal": linear decay to min_lr over this last part of the budget
    lr_decay: float = 0.5  # "plateau": multiply the lr by this when validation stops improving
    lr_patience: int = 2  # "plateau": validations without improvement before a decay
    min_lr: float = 1e-5  # the lr never decays below this
    patience: int = 8  # early stopping: validations without improvement (0: never)
    adam_beta1: float = 0.9  # Adam's decay of its gradient average
    adam_beta2: float = 0.999  # Adam's decay of its squared-gradient average (~1 / (1 - beta2) updates of memory)
    clip_norm: float = 1.0  # global gradient-norm clipping (0: off)
    label_smoothing: float = 0.1  # share of the target probability spread over the vocabulary
    teacher_forcing: float = 1.0  # probability of feeding the reference token
    subword_alpha: float = 0.0  # > 0: resample each epoch's SentencePiece segmentation (subword regularisation)
    tbptt: int = 0  # truncated BPTT chunk length over the target (0: full BPTT)
    valid_every: int = 500  # updates between validations (and checkpoints)
    valid_bleu_sentences: int = 1000  # validation sentences translated for BLEU (0: none)
    best_metric: Literal["bleu", "loss"] = "bleu"  # picks best.pt and stops early (the loss without validation BLEU)
    bleu_tokenize: BleuTokenize = "13a"  # validation BLEU's sacreBLEU tokenizer (zh, ja-mecab, ...: docs/training.md)
    log_every: int = 50  # updates between training-loss records (metrics.jsonl, train.log)
    max_nan_steps: int = 10  # consecutive non-finite losses: the run diverged (stops, exit status 3)
    loss_growth: float = 1e4  # a training loss over this x the run's first one: diverged too (0: off)
    threads: int = 0  # torch intra-op threads (0: torch's default)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where native/supported (docs/hardware.md)
    tf32: bool = False  # GPU: let cuBLAS/cuDNN use TF32 for fp32 work (off: fp32 is fp32; docs/hardware.md)
    onednn_cache: int = -1  # entries in oneDNN's and torch's primitive caches (< 0: 1,024 with shape buckets, else 4)
    shape_buckets: Literal["auto", "on", "off"] = "auto"  # pad batches to a few fixed shapes (auto: bf16 on AMX CPUs)
    malloc_mmap_kib: int = 262144  # glibc: smaller blocks reused from the heap, not faulted in again (0: off)
    keep_checkpoints: int = 0  # also keep the last K validated checkpoints as stepNNNNNNN.pt
    tensorboard: bool = False  # also write metrics.jsonl's records as TensorBoard events (RUN/tensorboard; extra)

    @property
    def bucket_tokens(self) -> int:
        """The budget bucketed batches are padded by (`batches.collate`); 0: shape buckets off (or undecided)."""
        return self.max_tokens if self.shape_buckets == "on" else 0

    def __post_init__(self) -> None:
        check_field_types(self)
        check(self.max_tokens >= 1, "max_tokens must be >= 1")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 < self.lr_decay <= 1, "lr_decay must be in (0, 1]")
        check(0 < self.anneal_fraction <= 1, f"anneal_fraction must be in (0, 1], got {self.anneal_fraction}")
        check(
            self.lr_schedule != "anneal" or bool(self.max_steps or self.max_minutes),
            "lr_schedule='anneal' decays toward the end of the budget: set max_steps and/or max_minutes",
        )
        check(0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)")
        check(0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "adam_beta1/adam_beta2 must be in [0, 1)")
        check(0 <= self.teacher_forcing <= 1, "teacher_forcing must be in [0, 1]")
        check(0 <= self.subword_alpha <= 1, "subword_alpha must be in [0, 1]")
        check(self.tbptt >= 0, f"tbptt must be >= 0, got {self.tbptt}")
        check(self.valid_every >= 1 and self.log_every >= 1, "valid_every/log_every must be >= 1")
        check(self.max_steps >= 0 and self.max_minutes >= 0, "max_steps/max_minutes must be >= 0")
        check(self.threads >= 0, f"threads must be >= 0 (0: torch's default), got {self.threads}")
        check(self.onednn_cache <= 1024, f"onednn_cache must be <= 1024 (torch's default), got {self.onednn_cache}")
        check(
            self.loss_growth == 0 or self.loss_growth > 1, f"loss_growth must be > 1 (0: off), got {self.loss_growth}"
        )
        _check_ranges(self, TRAIN_BOUNDS)
        check(self.min_lr <= self.lr, f"min_lr {self.min_lr:g} is above lr {self.lr:g}: no update would run at lr")


@dataclass(frozen=True)
class DecodeConfig:
    """Search settings used by `Translator.translate` and `seq2seq translate`."""

    beam_size: int = 5  # 1: greedy search
    batch_size: int = 0  # sentences per batch, 0: the engine's (DECODE_BATCH), halved to fit; never changes output
    length_penalty: float = 1.0  # hypothesis score = log-prob / length**length_penalty
    max_len_a: float = 2.0  # output length limit, its EOS included: int(a * (source pieces + its EOS) + b) pieces
    max_len_b: int = 10  # (see max_len_a)
    max_src_len: int = 400  # longer inputs are truncated to this many pieces (bounded cost)
    n_best: int = 1  # hypotheses printed per sentence (index<TAB>score<TAB>text when > 1)
    stopping: Literal["bound", "beam"] = "bound"  # beam search: docs/decoding.md (beam: stop at beam_size finished)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where native/supported (docs/hardware.md)
    memory_budget_gb: float = 0.0  # refuse a search estimated to need more memory (0: half the machine's RAM)

    def __post_init__(self) -> None:
        check_field_types(self)
        for name, (low, high) in DECODE_BOUNDS.items():
            value = getattr(self, name)
            check(
                not isinstance(value, float) or math.isfinite(value),
                f"{name} must be a finite number, got {shown(value)}",
            )
            check(value >= low, f"{name} must be >= {low}, got {shown(value)}")
            check(value <= high, f"{name} must be <= {high} (docs/decoding.md), got {shown(value)}")
        n_best, beam = self.n_best, self.beam_size
        check(1 <= n_best <= beam, f"n_best must be in [1, beam_size {beam}], got {n_best}")

    def check_vocab(self, vocab: int) -> None:
        """A beam wider than the target vocabulary (`vocab` pieces) is a ConfigError naming both."""
        check(self.beam_size <= vocab, f"beam_size {self.beam_size} is larger than the model's target vocabulary "
                                        f"({vocab} pieces): use a beam of at most {vocab}")  # fmt: skip

    def memory_budget(self) -> int:
        """Bytes a search may need at its peak (search_budget.check_search): `memory_budget_gb`, or with 0
        `half_memory()`."""
        return int(self.memory_budget_gb * 1e9) if self.memory_budget_gb > 0 else half_memory()


def half_memory() -> int:
    """Half of this machine's physical memory (8 GB where the system does not say): what one search,
    model, evaluation or experiment may hold unless told otherwise."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def refuse_ignored_decode(
    values: dict[str, Any],
    scores_shown: bool = True,
    flags: Collection[str] = (),
    unshown: str = "this output prints none (no --n-best > 1, no --nbest-format moses)",
) -> None:
    """Decode settings given (flags, a [decode] table) that the search would ignore: one ConfigError.
    `scores_shown` False: the output is each sentence's best text alone (`translate` without --n-best > 1 or
    --nbest-format moses), where a length_penalty with greedy search, given as a flag (`flags`: the fields
    given so; a [decode] table shared with `serve`, which prints scores, may hold one), changes nothing printed
    (`unshown` says how to show the scores: a `serve` request's reply asks for them otherwise)."""
    greedy = values.get("beam_size", DecodeConfig.beam_size) == 1
    if greedy and "stopping" in values:
        raise ConfigError("stopping applies to beam search; with beam_size 1 (greedy search) it would be ignored")
    if greedy and not scores_shown and "length_penalty" in flags and values.get("n_best", 1) == 1:
        raise ConfigError(
            f"length_penalty with beam_size 1 (greedy search) changes only the hypotheses' scores, and {unshown}: "
            "leave it out"
        )


def refuse_ignored_train(cfg: TrainConfig, given: Collection[str], device_type: str = "cpu") -> None:
    """Training settings `given` (those asked for off their defaults) that the run `cfg` on a `device_type`
    device would ignore: a ConfigError."""
    applies = {  # field: (applies to cfg, when it applies)
        "tf32": (
            device_type == "cuda" and cfg.precision == "fp32",
            "with --precision fp32 on a CUDA GPU (auto "
            "trains in bf16 or fp16 there, which TF32 does not change; a CPU's fp32 is always fp32)",
        ),
        "onednn_cache": (device_type == "cpu", "on a CPU (oneDNN's kernels; a GPU's are cuDNN's and cuBLAS's)"),
        "anneal_fraction": (cfg.lr_schedule == "anneal", "with lr_schedule 'anneal'"),
        "lr_decay": (cfg.lr_schedule == "plateau", "with lr_schedule 'plateau'"),
        "lr_patience": (cfg.lr_schedule == "plateau", "with lr_schedule 'plateau'"),
        "bleu_tokenize": (cfg.valid_bleu_sentences > 0, "with validation BLEU (valid_bleu_sentences > 0)"),
    }
    for name, (used, when) in applies.items():
        if name in given and not used:
            raise ConfigError(f"{name} {getattr(cfg, name)!r} would be ignored: it applies only {when}; leave it out")


# Sentences per search batch with batch_size 0, by engine (search_budget.check_search halves it until the search fits
# the memory budget): torch pays a per-step overhead that larger batches amortise (beam 5, 1,000 sentences, whole
# process: 5.5 s at 64, 4.6-4.8 s at 256; docs/decoding.md), ONNX Runtime does not (the same time, twice the memory).
DECODE_BATCH = {"torch": 256, "onnx": 64}

# The range of each DecodeConfig number (all must also be finite). Beyond these, searches overflow
# (a * length + b in float32, length ** length_penalty in float64) or cannot be sane; the memory a
# legal combination needs is checked against `memory_budget_gb` by the search (docs/decoding.md).
DECODE_BOUNDS: dict[str, tuple[float, float]] = {
    "beam_size": (1, 1000),
    "batch_size": (0, 100_000),
    "length_penalty": (-10.0, 10.0),
    "max_len_a": (0.0, 100.0),
    "max_len_b": (1, 100_000),
    "max_src_len": (1, 100_000),
    "n_best": (1, 1000),  # and <= beam_size
    "memory_budget_gb": (0.0, 1e6),
}


# The range of the other configs' numbers (and every float finite): far beyond any real run, so that a typo
# (--enc-hidden 10000000, --max-tokens 10**12, --threads 1000000) is one line, not an allocator error or a hang.
DATA_BOUNDS: dict[str, tuple[float, float]] = {
    "vocab_size": (16, 1_000_000),
    "spm_input_sentence_size": (101, 1_000_000_000),
    "min_len": (1, 100_000),
    "max_len": (1, 100_000),
    "max_len_ratio": (1.0, 1e6),
}
MODEL_BOUNDS: dict[str, tuple[float, float]] = {
    "emb_size": (1, 8192),
    "enc_hidden": (1, 8192),
    "dec_hidden": (1, 8192),
    "enc_layers": (1, 32),
    "dec_layers": (1, 32),
}
TRAIN_BOUNDS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**63 - 1),  # torch.manual_seed's range
    "max_tokens": (1, 1_000_000),
    "max_steps": (0, 10**12),
    "max_epochs": (1, 10**6),
    "max_minutes": (0.0, 1e7),
    "warmup_steps": (0, 10**12),
    "lr_patience": (0, 10**6),
    "min_lr": (0.0, 1e3),
    "patience": (0, 10**6),
    "clip_norm": (0.0, 1e9),
    "tbptt": (0, 100_000),
    "valid_every": (1, 10**12),
    "log_every": (1, 10**12),
    "valid_bleu_sentences": (0, 10**8),
    "max_nan_steps": (1, 10**6),
    "threads": (0, 1024),
    "onednn_cache": (-1, 1024),  # -1: the default for the batches (shape buckets or not)
    "malloc_mmap_kib": (0, 2**31 // 1024 - 1),  # mallopt takes the bytes as a C int
    "keep_checkpoints": (0, 10**6),
}

SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "decode": DecodeConfig,
}
