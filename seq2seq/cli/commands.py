"""The subcommands' bodies: each reads its parsed flags, calls one library function and prints
(`parser.py` builds the flags, `main` in `__init__.py` runs one and turns errors into exit statuses)."""

from __future__ import annotations

import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from ..config_toml import load_toml
from ..errors import ConfigError
from .flags import from_flags, given

if TYPE_CHECKING:
    import argparse

log = logging.getLogger("seq2seq")


def _toml(args: argparse.Namespace, *used: str) -> dict[str, dict[str, Any]]:
    """The tables of --config that this command reads (`used`); any other table is refused (load_toml)."""
    return load_toml(args.config, used) if getattr(args, "config", None) else {}


def cmd_download(args: argparse.Namespace) -> None:
    from ..sources.download import HoldOut, download

    manifest = download(
        args.dataset, args.src, args.tgt, args.out, subset=args.subset, columns=(args.src_column, args.tgt_column),
        revision=args.revision, streaming=args.streaming, hold_out=HoldOut(args.val_size, args.val_seed),
    )  # fmt: skip
    counts = ", ".join(f"{name} {split['lines']}" for name, split in manifest["splits"].items())
    print(f"wrote {args.out}: {counts} lines per language ({args.src}, {args.tgt})")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from ..preprocess import preprocess

    data_cfg = from_flags(DataConfig, args, _toml(args, "data").get("data"))  # the tokenizer's seed: --spm-seed
    manifest = preprocess(args.data, args.src, args.tgt, args.out, data_cfg, overwrite=args.overwrite)
    print(f"prepared {args.out}: splits {manifest['splits']}, vocab {manifest['src_vocab']}/{manifest['tgt_vocab']}")


def cmd_train(args: argparse.Namespace) -> None:
    from ..train import RunOptions, RunSpec, train

    toml = _toml(args, "data", "model", "train")  # only what was given: train() fills in the run's or the defaults
    options = RunOptions(resume=args.resume, reset_optimizer=args.reset_optimizer, overwrite=args.overwrite,
                         device=args.device, progress=not args.quiet)  # fmt: skip
    result = train(
        RunSpec(args.data, args.src, args.tgt, args.out),
        given(DataConfig, args, toml.get("data")),
        given(ModelConfig, args, toml.get("model")),
        given(TrainConfig, args, toml.get("train")),
        options,
    )
    if result.interrupted:  # saved (the log says how to resume); exit 130, so `train && translate` stops here
        raise KeyboardInterrupt
    if result.rank == 0:
        print(f"trained {result.steps} updates ({result.stop_reason}); best.pt and last.pt in {result.run}")


def cmd_translate(args: argparse.Namespace) -> None:
    import time

    from ..atomic import check_output
    from ..machine import process
    from ..translation import load_translator
    from ..translation.stream import chunks, file_chunks, standard_input

    moses = args.nbest_format == "moses"  # scores printed with --n-best 1 too
    cfg = from_flags(DecodeConfig, args, _toml(args, "decode").get("decode"), scores_shown=moses)
    if args.nbest_format == "tsv" and cfg.n_best == 1:  # tsv lines are n-best lines: a plain output would ignore it
        raise ConfigError("--nbest-format tsv applies only with --n-best > 1 (index<TAB>score<TAB>text lines); "
                          "leave it out")  # fmt: skip
    if args.output:  # before any work: a missing folder, a folder, the input (stdin: fd 0), a model or --config,
        check_output(args.output, inputs=[args.input if args.input else 0, *args.checkpoint, args.config])
        from ..atomic import refuse_run_checkpoint  # any run's last.pt, best.pt or stepN.pt (torch-free)

        refuse_run_checkpoint(args.output, "the translations", "test.hyp.txt", "--output")
    process.apply(process.ProcessSettings.for_decoding())
    started = time.perf_counter()
    translator = load_translator(args.checkpoint, args.device, cfg, (args.src, args.tgt))  # fails before stdin is read
    loaded = time.perf_counter()

    def check(lines: list[str]) -> None:  # a file's lines, before any work: too long for the budget?
        translator.check_memory(lines, cfg, args.alignments)

    lines = file_chunks(args.input, check=check) if args.input else chunks(standard_input(), "<stdin>")
    n = _write_translations(args, translator, cfg, lines)
    seconds = time.perf_counter() - loaded  # reading, translating and writing (stdin: waiting for lines too)
    models = "the model" if len(args.checkpoint) == 1 else f"an ensemble of {len(args.checkpoint)} models"
    log.info("translated %d sentences in %.2f s (%.1f sentences/s; %s loaded in %.2f s)", n, seconds,
             n / max(seconds, 1e-9), models, loaded - started)  # fmt: skip


def _write_translations(args: argparse.Namespace, translator: Any, cfg: DecodeConfig, lines: Any) -> int:
    """`stream_translate` into --output (a temporary file renamed over it at the end: an interrupted run leaves
    the file as it was) or standard output; a line refused once others are translated (`Stopped`) keeps those,
    in --output too, and the error says so."""
    from ..atomic import atomic_write
    from ..errors import CorpusError
    from ..translation.stream import NBEST_FORMATS, Stopped, stream_translate

    nbest_format, name = args.nbest_format or NBEST_FORMATS[0], args.input or "<stdin>"
    with atomic_write(args.output) if args.output else nullcontext(sys.stdout) as out:
        try:
            return stream_translate(translator, lines, out.write, out.flush, cfg, not args.quiet, nbest_format,
                                    args.alignments, name)  # fmt: skip
        except Stopped as err:
            stopped = err
    done = "line 1" if stopped.done == 1 else f"lines 1-{stopped.done}"
    where = f"; {args.output} holds the translations of {done}" if args.output else ""
    raise CorpusError(f"{stopped}{where}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..tools.evaluation import EvalSettings, evaluate_files

    paired = "bs" if args.paired_bs else "ar" if args.paired_ar else None
    settings = EvalSettings.from_flags(args.tokenize, args.metrics, args.confidence, args.confidence_n, paired,
                                       args.paired_n)  # fmt: skip
    result = evaluate_files(args.hyp, args.ref, settings, args.paired_bs or args.paired_ar)
    print(result.to_json() if args.format == "json" else result.text())


def cmd_demo(args: argparse.Namespace) -> None:
    from ..tools.demo import run_demo

    run_demo(args.out, max_minutes=args.max_minutes, seed=args.seed, progress=not args.quiet)


def cmd_plot(args: argparse.Namespace) -> None:
    from ..tools.plots import plot_run

    for path in plot_run(args.run):
        print(path)


def cmd_attention(args: argparse.Namespace) -> None:
    from ..tools.plots import attention_map

    text, path = attention_map(args.checkpoint, args.sentence, args.out, args.beam_size, args.device)
    print(f"{text}\nattention map: {path}")


def cmd_gradflow(args: argparse.Namespace) -> None:
    from ..science.gradflow import FreshModels, run_gradient_flow

    fresh = FreshModels.from_flags(cell=args.cell, length=args.length, batch_size=args.batch_size, seed=args.seed)
    path, lines = run_gradient_flow(
        args.out, args.checkpoint, input_path=args.input, references_path=args.references, fresh=fresh,
        loss=args.loss, device=args.device,
    )  # fmt: skip
    print("\n".join(lines))
    print(f"gradient flow plot: {path}")


def cmd_memory_span(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from ..science.memory_span import run_memory_span
    from ..science.span_report import format_result
    from ..science.span_settings import QUICK, SpanSettings, settings_with

    changes = {f.name: getattr(args, f.name) for f in fields(SpanSettings)}
    settings = settings_with(QUICK if args.quick else SpanSettings(), **changes)
    result = run_memory_span(
        args.out,
        args.task,
        args.cells,
        args.delays,
        args.quick,
        args.seed,
        settings,
        args.workers,
        given=[name for name, value in changes.items() if value is not None],
        overwrite=args.overwrite,
    )
    print(format_result(result))


def cmd_average(args: argparse.Namespace) -> None:
    from ..translation.loading import average_models

    print(f"averaged {len(args.checkpoints)} checkpoints into {average_models(args.checkpoints, args.out)}")


def cmd_push(args: argparse.Namespace) -> None:
    from ..sources.hub import CardOptions, UploadOptions, push

    card = CardOptions(args.license, tuple(args.bleu_file or ()), args.run)
    options = UploadOptions(args.private, args.revision, args.commit_message)
    print(push(args.checkpoint, args.repo, args.out, card, options, dry_run=args.dry_run))


def cmd_export(args: argparse.Namespace) -> None:
    from ..translation import export_model

    print(f"wrote {export_model(args.checkpoint, args.out, args.format, args.quantize)} "
          "(seq2seq translate --checkpoint takes it)")  # fmt: skip


def cmd_benchmark(args: argparse.Namespace) -> None:
    import json

    from ..devtools.benchmark import Corpus, run_benchmark

    corpus = Corpus(Path(args.data), args.src, args.tgt)
    result = run_benchmark(corpus, args.out, args.checkpoint, args.quick, args.test_split, args.peers,
                           input_feeding=args.input_feeding)  # fmt: skip
    print(json.dumps(result, indent=2))


def cmd_hardware(args: argparse.Namespace) -> None:
    from ..machine.hardware import report

    info = report(args.device, args.precision)
    print(info[args.get] if args.get else "\n".join(f"{key}: {value}" for key, value in info.items()))


def cmd_serve(args: argparse.Namespace) -> None:
    from ..machine import process
    from ..serve import ServeLimits
    from ..serve.server import parse_models, serve

    cfg = from_flags(DecodeConfig, args, _toml(args, "decode").get("decode"))
    models = parse_models(args.model) if args.model else args.checkpoint
    process.apply(process.ProcessSettings.for_decoding())
    limits = from_flags(ServeLimits, args)
    serve(models, args.host, args.port, args.device, cfg, limits, None, args.allow_origin or (), args.allow_host or ())
