"""The offline demo: synthetic English->German corpus -> SentencePiece -> training -> beam search -> BLEU."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..atomic import unwritable_folder, write_text_atomic
from ..config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from ..errors import ConfigError, CorpusError, OutputError
from ..metrics import Scores, score
from ..prepared import Prepared
from ..text import read_lines
from ..train import RunOptions, RunSpec, train
from ..translation.torch_engine import Translator
from .synthetic import SRC_LANG, TGT_LANG, generate_corpus

log = logging.getLogger("seq2seq")

# The demo's recipe: a small model that learns the synthetic task within a few CPU minutes.
DEMO_DATA = DataConfig(vocab_size=1000)
DEMO_MODEL = ModelConfig(emb_size=128, enc_hidden=128, dec_hidden=256, dropout=0.1)
DEMO_TRAIN = TrainConfig(max_tokens=4000, lr=2e-3, valid_every=250, valid_bleu_sentences=500, patience=0)
MAX_SEED = 2**32 - 1  # --seed seeds data, model, training and the tokenizer (DataConfig.spm_seed: 32 bits)
DEMO_AGAIN = "`seq2seq demo` again, which starts over (the demo has no --resume)"  # what an interrupt's warning says


def _check_out(out: Path) -> None:
    """`out` is new, empty or an earlier demo's (its corpus/ and a run prepared from it): the demo writes its run
    over it. Anything else (another run's folder, other files) is refused before anything is written."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write the demo into {out}: it is a file")
    _check_writable(out)
    if not out.exists() or not any(out.iterdir()):
        return
    corpus = out / "corpus"
    try:
        earlier = Prepared.load(out).manifest.get("data_dir") == str(corpus.resolve())
    except CorpusError:  # not prepared (yet), or damaged: an earlier demo is one whose corpus/ is there
        earlier = corpus.is_dir() and not (out / "last.pt").exists()
    if not earlier:
        raise OutputError(
            f"{out} holds files of something other than an earlier demo (a run folder?); the demo would replace "
            "them: give it another --out"
        )


def _check_writable(out: Path) -> None:
    """The demo may write in `out`, or create it: the nearest folder of it or above it that exists is a folder this
    process may write in. A read-only file system or another user's folder is refused before any work, as train,
    export and the others refuse theirs (an OutputError), not as an OSError once the corpus is written."""
    why = unwritable_folder(next(p for p in (out, *out.parents) if p.exists()))  # `.` or `/` at the latest
    if why:
        raise OutputError(f"cannot write the demo into {out}: {why}")


def run_demo(
    out: str | Path = "checkpoints/demo", max_minutes: float = 2.5, seed: int = 1234, progress: bool = True
) -> Scores:
    """Run the whole pipeline in `out`, print example translations and the held-out BLEU. An interrupted
    demo (Ctrl-C, SIGTERM: training stops at the next update) raises KeyboardInterrupt."""
    start, out = time.monotonic(), Path(out)
    if not max_minutes > 0:  # the demo's only stop rule (it has no step cap): 0 would train forever
        raise ConfigError(f"--max-minutes must be > 0 for the demo (its only stop), got {max_minutes:g}")
    if not 0 <= seed <= MAX_SEED:  # not DataConfig's "spm_seed must be ...": the demo has no --spm-seed
        raise ConfigError(f"--seed must be in [0, {MAX_SEED}] for the demo (it seeds SentencePiece too, whose seed is "
                          f"unsigned 32-bit), got {seed}")  # fmt: skip
    _check_out(out)
    train_cfg = TrainConfig(**{**DEMO_TRAIN.__dict__, "max_minutes": max_minutes, "seed": seed})
    data_cfg = DataConfig(**{**DEMO_DATA.__dict__, "spm_seed": seed})  # the demo's seed seeds its tokenizer too
    corpus = out / "corpus"
    counts = generate_corpus(corpus, seed=seed)
    log.info("synthetic corpus in %s: %s", corpus, counts)
    spec = RunSpec(corpus, SRC_LANG, TGT_LANG, out)
    options = RunOptions(overwrite=True, progress=progress, continue_with=DEMO_AGAIN)
    if train(spec, data_cfg, DEMO_MODEL, train_cfg, options).interrupted:
        raise KeyboardInterrupt  # not on to translating with whatever best.pt there is
    translator = Translator.from_checkpoint(out / "best.pt")
    src, ref = read_lines(corpus / f"test.{SRC_LANG}"), read_lines(corpus / f"test.{TGT_LANG}")
    hyps = translator.translate(src, DecodeConfig(beam_size=5), progress=progress)
    write_text_atomic(out / f"test.hyp.{TGT_LANG}", "".join(h + "\n" for h in hyps))
    result = score(hyps, ref)
    print("\nExample translations (held-out test set, beam 5):")
    for s, h, r in list(zip(src, hyps, ref))[:5]:
        print(f"  src: {s}\n  hyp: {h}\n  ref: {r}\n")
    print(f"Held-out test set ({len(src)} sentences), beam 5:\n{result}")
    print(f"Demo finished in {time.monotonic() - start:.0f} s; checkpoint {out / 'best.pt'}")
    return result
