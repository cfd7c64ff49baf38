"""The `seq2seq` command line: every subcommand's flags (defaults from the config dataclasses, flags.py)
and the body that runs it (commands.py)."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import BLEU_TOKENIZERS, DataConfig, DecodeConfig, ModelConfig, TrainConfig
from ..errors import EXIT_DIVERGED
from .commands import (
    cmd_attention,
    cmd_average,
    cmd_benchmark,
    cmd_demo,
    cmd_download,
    cmd_evaluate,
    cmd_export,
    cmd_gradflow,
    cmd_hardware,
    cmd_memory_span,
    cmd_plot,
    cmd_preprocess,
    cmd_push,
    cmd_serve,
    cmd_train,
    cmd_translate,
)
from .flags import DefaultsHelp, Parser, add_flags

METRICS = ("bleu", "chrf", "ter")  # seq2seq.metrics.METRICS (not imported here: sacrebleu is slow to import)
TRAIN_EPILOG = (
    "exit status: 0 trained; 2 a bad input or setting (one line naming it), or the run folder in use by another "
    f"seq2seq process (its PID named); {EXIT_DIVERGED} the loss diverged (--max-nan-steps non-finite losses in a "
    "row, or a loss over --loss-growth times the first one): the line says which checkpoint, if any, is kept"
)


def _corpus_flags(p: argparse.ArgumentParser, out_help: str, tables: str) -> None:
    p.add_argument("--data", required=True, help="folder of {split}.{lang} text files")
    p.add_argument("--src", required=True, help="source language suffix, e.g. de")
    p.add_argument("--tgt", required=True, help="target language suffix, e.g. en")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--config", help=f"TOML file with {tables} (flags override it; other tables are refused)")


def _add_inspection_commands(sub: Any) -> None:
    """Subcommands that draw pictures of runs and models (need the `plot` extra: matplotlib)."""
    p = sub.add_parser("plot", help="training-curve PNGs (loss, BLEU, lr, gradient norm) from RUN/metrics.jsonl")
    p.add_argument("--run", required=True, help="run folder written by `seq2seq train`")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("attention", help="translate one sentence and draw its attention map as a PNG")
    p.add_argument("--checkpoint", required=True, help="a .pt checkpoint from seq2seq train, or hf://ORG/NAME "
                   "(docs/hub.md)")  # fmt: skip
    p.add_argument("--sentence", required=True, help="the source sentence to translate")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--beam-size", type=int, help=f"1: greedy (default: {DecodeConfig.beam_size}, as translate)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (default: cpu)")
    p.set_defaults(func=cmd_attention)

    p = sub.add_parser("gradflow", help="plot ||dL/dh_t|| over time steps t: trained checkpoints or fresh models")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", nargs="+", help="trained model(s), compared on the sentences of --input "
                       "(this or --cell is required)")  # fmt: skip
    which.add_argument("--cell", choices=("lstm", "gru", "rnn", "all"),
                       help="fresh random models of this cell type (this or --checkpoint is required)")  # fmt: skip
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--input", help="source sentences, one per line (required with --checkpoint)")
    p.add_argument("--references", help="with --checkpoint: reference translations (default: the model's greedy ones)")
    p.add_argument("--loss", choices=("last", "all"), default="last", help="L: final output's loss (default) or all")
    p.add_argument("--length", type=int, help="with --cell: sequence length (default: 100)")
    p.add_argument("--batch-size", type=int, help="with --cell: random sequences (default: 16)")
    p.add_argument("--seed", type=int, help="with --cell: seed of the fresh models and sequences (default: 1234)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (default: cpu)")
    p.set_defaults(func=cmd_gradflow)

    from ..science.span_settings import CELLS, DEFAULT_DELAYS, DEFAULT_TASKS, QUICK_DELAYS, TASKS, SpanSettings

    delays = f"{' '.join(map(str, DEFAULT_DELAYS))}; quick: {' '.join(map(str, QUICK_DELAYS))}"
    p = sub.add_parser("memory-span", help="over how many steps RNN, GRU and LSTM carry information (docs/science.md)")
    p.add_argument(
        "--out", default="checkpoints/memory_span", help="folder for memory_span.{json,csv,png}, gradient_flow.png"
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke run (< 1 minute)")
    p.add_argument("--task", nargs="+", choices=TASKS, default=list(DEFAULT_TASKS),
                   help="recall (K symbols, D blanks, recall); copy (Arjovsky et al. 2016); adding "
                   "(Hochreiter & Schmidhuber 1997) (default: recall adding)")  # fmt: skip
    p.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS), help="cells to compare (default: all)")
    p.add_argument("--delays", nargs="+", type=int, help=f"delays D, tried in increasing order (default: {delays})")
    p.add_argument("--workers", type=int, help="parallel processes (default: CPU cores, at most 2)")
    p.add_argument("--seed", type=int, default=1234, help="random seed of tasks and models (default: 1234)")
    p.add_argument("--overwrite", action="store_true", help="replace the result an --out folder holds")
    add_flags(p, SpanSettings)
    p.set_defaults(func=cmd_memory_span)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="seq2seq", description="LSTM encoder-decoder translation with attention.",
                                     formatter_class=DefaultsHelp)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"seq2seq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)  # defaults

    p = sub.add_parser("download", help="write a Hub or local dataset as {split}.{lang} text files plus manifest.json")
    p.add_argument("--dataset", required=True, help="Hub name, dataset folder, or json/jsonl/csv/tsv/parquet file(s)")
    p.add_argument("--subset", help="dataset configuration, e.g. de-en for wmt14 (default: the dataset's default)")
    p.add_argument("--src", required=True, help="source language code, e.g. de")
    p.add_argument("--tgt", required=True, help="target language code, e.g. en")
    p.add_argument("--out", required=True, help="folder for {split}.{lang} files")
    p.add_argument("--src-column", help="column holding source text (default: detected from the schema)")
    p.add_argument("--tgt-column", help="column holding target text (default: detected from the schema)")
    p.add_argument("--revision", help="Hub branch, tag or commit to load (default: the main branch)")
    p.add_argument("--streaming", action="store_true", help="stream rows instead of caching the dataset first")
    p.add_argument("--val-size", type=int, default=0, metavar="N",
                   help="a dataset without a val split (one file, a train split only): hold N random training "
                   "pairs out as val (docs/data.md; default: 0, none)")  # fmt: skip
    p.add_argument("--val-seed", type=int, help="which pairs --val-size picks (default: 1234)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("preprocess", help="clean the corpus, train SentencePiece, cache encoded splits in a run folder")
    _corpus_flags(p, "run folder to prepare", "a [data] table")
    help_ = "prepare again a run folder that holds a trained model (--resume then checks that it still matches)"
    p.add_argument("--overwrite", action="store_true", help=help_)
    add_flags(p, DataConfig)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("train", help="train a model in a run folder (writes best.pt, last.pt, metrics.jsonl)",
                       epilog=TRAIN_EPILOG)  # fmt: skip
    _corpus_flags(p, "run folder (prepared by preprocess, or prepared now)", "[data] [model] [train] tables")
    help_ = "continue from OUT/last.pt with its settings ([train] flags may change them, model and data flags not)"
    p.add_argument("--resume", action="store_true", help=help_)
    p.add_argument("--reset-optimizer", action="store_true", help="with --resume: fresh optimizer and lr schedule")
    help_ = (
        "start again in a run folder that holds a trained model; prepares it again when the data flags, "
        "--data or the corpus files differ from its preprocess.json"
    )
    p.add_argument("--overwrite", action="store_true", help=help_)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ..., or auto (a CUDA GPU if there is one)")
    for cls in (DataConfig, ModelConfig, TrainConfig):
        add_flags(p, cls)
    p.set_defaults(func=cmd_train)

    from ..translation.stream import NBEST_FORMATS

    help_ = "translate sentences (stdin, line by line as they arrive, or --input), one output line per input line"
    p = sub.add_parser("translate", help=help_)
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="MODEL",
                   help="a .pt checkpoint, an ONNX model from `seq2seq export` (no torch), or "
                   "hf://ORG/NAME[@REVISION][/FILE] on the Hugging Face Hub (docs/hub.md); several: an ensemble "
                   "(the mean of their log-probs; same vocabularies)")  # fmt: skip
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout, streamed); written to a temporary file renamed "
                   "into place at the end, so Ctrl-C (exit 130) leaves the old file; a line refused later in a "
                   "stream (stdin, a pipe) leaves the lines before it, and the error says which; never the input "
                   "file")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (default: cpu)")
    p.add_argument("--src", metavar="LANG", help="the input's language: refused unless the model file records it "
                   "as its source language (another pair translates into nonsense) (default: not checked)")  # fmt: skip
    p.add_argument("--tgt", metavar="LANG", help="the output's language, checked likewise (default: not checked)")
    p.add_argument("--config", help="TOML file with a [decode] table (other tables are refused)")
    p.add_argument("--nbest-format", choices=NBEST_FORMATS,
                   help="tsv: index<TAB>score<TAB>text lines, with --n-best > 1 (its default there); moses: "
                   "every hypothesis as `index ||| text ||| LogProb= lp ||| score`, 0-based as Moses "
                   "(docs/decoding.md)")  # fmt: skip
    p.add_argument("--alignments", action="store_true",
                   help="after each output text, ' ||| ' and its word alignment from attention: fast_align/Moses "
                   "'i-j' pairs, 0-based source and output words (docs/decoding.md) (default: off)")  # fmt: skip
    add_flags(p, DecodeConfig)
    p.set_defaults(func=cmd_translate)

    from ..tools.evaluation import CONFIDENCE_N, MAX_RESAMPLES, MIN_RESAMPLES, PAIRED_N

    p = sub.add_parser("evaluate", help="sacreBLEU BLEU, chrF and TER of a hypothesis file against reference files, "
                       "with confidence intervals and paired significance tests (docs/decoding.md)")  # fmt: skip
    p.add_argument("--hyp", required=True, help="detokenised system output, one line per reference line")
    p.add_argument("--ref", required=True, nargs="+", action="extend", metavar="REF",
                   help="raw reference translations; several (--ref a.en b.en, or --ref repeated): multi-reference "
                   "scores, each file as long as --hyp")  # fmt: skip
    p.add_argument("--tokenize", choices=BLEU_TOKENIZERS,
                   help="BLEU's tokenizer (default: 13a; zh: Chinese, ja-mecab: Japanese, char, intl)")  # fmt: skip
    p.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS, help="default: bleu chrf ter")
    p.add_argument("--confidence", action="store_true", help="bootstrap mean and 95%% interval of each score "
                   "(sacrebleu's; seed: SACREBLEU_SEED, default 12345)")  # fmt: skip
    p.add_argument("--confidence-n", type=int, metavar="N", help=f"bootstrap resamples for --confidence, "
                   f"{MIN_RESAMPLES}-{MAX_RESAMPLES} (default: {CONFIDENCE_N})")  # fmt: skip
    paired = p.add_mutually_exclusive_group()
    paired.add_argument("--paired-bs", metavar="BASELINE", help="paired bootstrap resampling test of --hyp against "
                        "this baseline system's output (p-values; intervals of both)")  # fmt: skip
    paired.add_argument("--paired-ar", metavar="BASELINE", help="paired approximate randomization test against "
                        "this baseline system's output")  # fmt: skip
    p.add_argument("--paired-n", type=int, metavar="N", help=f"resamples (bs) or trials (ar), {MIN_RESAMPLES}-"
                   f"{MAX_RESAMPLES} (default: {PAIRED_N['bs']} bs, {PAIRED_N['ar']} ar: sacrebleu's)")  # fmt: skip
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: one line per metric (default); json: scores, signatures, BLEU breakdown, intervals, "
                   "p-values")  # fmt: skip
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="the whole pipeline offline on a built-in synthetic English->German task")
    p.add_argument(
        "--out",
        default="checkpoints/demo",
        help="run folder: new, empty or an earlier demo's, which it replaces (default: checkpoints/demo)",
    )
    help_ = "training wall-clock budget (minutes; > 0: the demo's only stop)"
    p.add_argument("--max-minutes", type=float, default=2.5, help=help_)
    help_ = "random seed of data, tokenizer, model and training, 0 to 4294967295 (default: 1234)"
    p.add_argument("--seed", type=int, default=1234, help=help_)
    p.set_defaults(func=cmd_demo)
    _add_inspection_commands(sub)
    p = sub.add_parser("average", help="average the weights of several checkpoints of one run into one file")
    p.add_argument("--checkpoints", nargs="+", required=True, help="e.g. RUN/step*.pt (see --keep-checkpoints), "
                   "or hf://ORG/NAME/FILE")  # fmt: skip
    p.add_argument("--out", required=True, help="checkpoint file to write (not one of --checkpoints)")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("export", help="write a checkpoint as an ONNX model (ONNX Runtime, optionally int8) that "
                       "translates without torch (docs/deploy.md)")  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="a .pt checkpoint from seq2seq train, or hf://ORG/NAME "
                   "(docs/hub.md)")  # fmt: skip
    p.add_argument("--out", required=True, help="file to write (e.g. model.onnx.zip)")
    p.add_argument("--format", choices=["onnx"], default="onnx",
                   help="onnx: encoder and decoder-step graphs for ONNX Runtime (default: onnx)")  # fmt: skip
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="int8 weights, activations on a fixed scale (default: none, fp32; docs/deploy.md)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("push", help="upload a model with a generated model card to the Hugging Face Hub "
                       "(docs/hub.md); hf://ORG/NAME then loads it wherever a model file is taken")  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="a .pt checkpoint, or an ONNX model from `seq2seq export`")
    p.add_argument("--repo", required=True, help="ORG/NAME: the model repository (created if missing)")
    p.add_argument("--license", default="other", help="the card's licence, an SPDX id such as cc-by-4.0 "
                   "(default: other, a field left for you to fill in)")  # fmt: skip
    help_ = "`seq2seq evaluate` output on the test set NAME (default: the file's name): its scores and signatures"
    p.add_argument("--bleu-file", action="append", metavar="[NAME=]FILE", help=help_ + " go on the card; repeatable")
    p.add_argument("--run", help="the model's run folder, for its data, validation BLEU and training "
                   "(default: the checkpoint's folder, if it is one)")  # fmt: skip
    p.add_argument("--private", action="store_true", help="create the repository private (an existing one keeps "
                   "its visibility)")  # fmt: skip
    p.add_argument("--revision", help="the branch to push to, created if missing (default: main)")
    p.add_argument("--commit-message", help="default: 'seq2seq push: MODEL-FILE'")
    p.add_argument("--out", help="also write the files uploaded into this folder (new, empty, or an earlier --out)")
    p.add_argument("--dry-run", action="store_true", help="upload nothing (no token needed): with --out, write the "
                   "folder only; without, print the model card")  # fmt: skip
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("benchmark", help="training/translation speed, peak memory and FLOP/s as one JSON object")
    p.add_argument("--data", required=True, help="Multi30k-style folder of {split}.{lang} files")
    p.add_argument("--src", default="de", help="source language (default: de, as the peers were measured)")
    p.add_argument("--tgt", default="en", help="target language (default: en)")
    p.add_argument("--out", default="checkpoints/benchmark", help="working folder")
    p.add_argument("--checkpoint", help="model for the translation timings (default: the benchmark's own)")
    p.add_argument("--test-split", default="test_2016_flickr", help="split translated for the decoding timings")
    p.add_argument(
        "--peers",
        help="peers.json (../shared/peers/run.sh writes one): ratios only against an entry measured on a machine "
        "like this one (same CPU model, capability, native bf16, and cores where it says), training ratios only "
        "against a 900-s peer run, translation ratios only with --checkpoint (default: none, ratios skipped)",
    )
    p.add_argument("--quick", action="store_true", help="short windows, fp32 only, 200 sentences (< 2 minutes)")
    p.add_argument("--input-feeding", action="store_true", default=ModelConfig.input_feeding,
                   help="train with input feeding, the peer's decoder (OpenNMT-py's input_feed 1), for a ratio "
                   "of like architectures (the JSON's architectures say what each side trained; default: "
                   "ModelConfig's, off)")  # fmt: skip
    p.set_defaults(func=cmd_benchmark)

    from ..serve import ServeLimits

    p = sub.add_parser("serve", help="an HTTP JSON translation server: POST /translate, GET /health (docs/serving.md)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", action="append", metavar="NAME=PATH",
                       help="a model served under NAME (a request picks it with \"model\": NAME); repeat it for "
                       "several, the first is the default")  # fmt: skip
    which.add_argument("--checkpoint",
                       help="a .pt checkpoint, or an ONNX model from `seq2seq export` (no torch)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: a free one, printed)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto (default: cpu)")
    help_ = "TOML file with a [decode] table: the default decode settings (other tables are refused)"
    p.add_argument("--config", help=help_)
    p.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. http://localhost:8080; repeatable; *: any) call this server "
                   "from a browser: CORS headers (default: none, CORS off)")  # fmt: skip
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="answer requests whose Host header names NAME (repeatable), besides this machine's own "
                   "(localhost, its hostname, loopback addresses): on a loopback address other names are refused "
                   "(DNS rebinding); given, the Host is checked on any address; *: any name, no check "
                   "(default: none)")  # fmt: skip
    add_flags(p, DecodeConfig)  # the defaults; a request's JSON may override any of them
    add_flags(p, ServeLimits)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("hardware", help="what this machine is and which device and precision the toolkit picks on it")
    p.add_argument("--device", default="auto", help="auto (default: a CUDA GPU if there is one), cpu, cuda, ...")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="the precision to check (default: auto, what training and translation pick)")  # fmt: skip
    p.add_argument("--get", choices=("device", "precision", "cpu", "cpu_capability", "cpu_bf16", "gpu"),
                   help="print only this field, for scripts (default: every field)")  # fmt: skip
    p.set_defaults(func=cmd_hardware)
    for command in sub.choices.values():
        command.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    return parser
