"""The Python API refuses a wrong argument in one error naming it (a review of 2026-12-06 found each of these
going through to a traceback deep in numpy, torch or pathlib, to a silently wrong result, or to a model that
trained for minutes and could not be exported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.cli import main
from seq2seq.config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.errors import ConfigError, ConfigKeyError
from seq2seq.metrics import score
from seq2seq.preprocess import preprocess
from seq2seq.tools.evaluation import EvalSettings, evaluate_files
from seq2seq.train import RunOptions, RunSpec, train
from seq2seq.translation import load_translator
from seq2seq.translation.ensemble import EnsembleTranslator
from seq2seq.translation.loading import average_models
from seq2seq.translation.torch_engine import Translator


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: DecodeConfig(beam_size=2.5), "DecodeConfig.beam_size must be int, got float 2.5"),
        (lambda: DecodeConfig(beam_size=True), "DecodeConfig.beam_size must be int, got bool True"),
        (lambda: DecodeConfig(max_src_len=3.7), "DecodeConfig.max_src_len must be int, got float 3.7"),
        (lambda: DecodeConfig(beam_size=None), "DecodeConfig.beam_size must be int, got NoneType None"),
        (lambda: DecodeConfig(batch_size=1.5), "DecodeConfig.batch_size must be int"),
        (lambda: DecodeConfig(memory_budget_gb=True), "DecodeConfig.memory_budget_gb must be float, got bool"),
        (lambda: ModelConfig(emb_size=True), "ModelConfig.emb_size must be int"),
        (lambda: TrainConfig(max_steps=2.5), "TrainConfig.max_steps must be int, got float 2.5"),
        (lambda: TrainConfig(seed=None), "TrainConfig.seed must be int, got NoneType None"),
        (lambda: DataConfig(vocab_size="1000"), "DataConfig.vocab_size must be int, got str '1000'"),
    ],
)
def test_a_config_built_in_python_with_a_wrong_type_is_a_type_error_naming_the_field(make, words: str) -> None:
    """As a dict or keyword arguments already were: `DecodeConfig(beam_size=2.5)` raised in numpy's `full`
    from the search, `beam_size=True` ran greedy, `max_len_b=10.5` and `batch_size=1.5` were taken."""
    with pytest.raises(ConfigKeyError) as err:
        make()
    assert isinstance(err.value, TypeError) and str(err.value).startswith(words)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: DecodeConfig(stopping="x"), "DecodeConfig.stopping must be one of ('bound', 'beam'), got 'x'"),
        (lambda: ModelConfig(cell="gru2"), "ModelConfig.cell must be one of ('lstm', 'gru', 'rnn'), got 'gru2'"),
    ],
)
def test_a_config_choice_outside_its_choices_is_refused_when_built(make, words: str) -> None:
    """`DecodeConfig(stopping='x')` was refused only inside the beam search, after encoding; `cell='gru2'` built."""
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == words


def test_an_integer_for_a_float_field_is_widened_as_from_a_dict() -> None:
    cfg = DecodeConfig(length_penalty=1, max_len_a=3)
    assert type(cfg.length_penalty) is float and type(cfg.max_len_a) is float and cfg.max_len_a == 3.0
    assert DecodeConfig(length_penalty=1) == DecodeConfig(length_penalty=1.0)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: score("Das ist gut.", "Das ist gut!"), "hyps must be a list of strings, got one str"),
        (lambda: score(["a cat"], "a cat"), "refs must be a list of strings, got one str"),
        (lambda: score(["a cat"], ["a cat"], metrics="bleu"), "metrics must be a list of strings, got one str 'bleu'"),
        (lambda: score(["a cat"], ["a cat"], metrics=[]), "no metric asked for; choose from bleu, chrf, ter"),
        (lambda: EvalSettings(metrics="bleu"), "metrics must be a list of names, got the one string 'bleu'"),
        (lambda: evaluate_files("hyp.txt", "ref.txt"), "ref_paths must be a list of reference files, got the one path"),
        (lambda: evaluate_files("h", Path("ref.txt")), "ref_paths must be a list of reference files, got the one path"),
        (lambda: average_models("best.pt", "avg.pt"), "checkpoints must be a list of checkpoint files, got the one"),
    ],
)
def test_one_string_where_a_list_is_wanted_is_refused_not_read_character_by_character(call, words: str) -> None:
    """`score("Das ist gut.", "Das ist gut!")` scored 12 one-character sentences (chrF 66.67); `metrics="bleu"` asked
    for the metrics b, e, l, u; `evaluate_files(h, "ref.txt")` looked for a file "r"; `average_models("best.pt")`
    took "/" for a checkpoint; `metrics=[]` returned no scores at all."""
    with pytest.raises(ConfigError) as err:
        call()
    assert str(err.value).startswith(words), err.value


def test_languages_must_be_a_pair(run_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^languages must be a \(source, target\) pair, None for either, got 'xx'$"):
        load_translator(run_dir / "best.pt", languages="xx")
    assert load_translator(run_dir / "best.pt", languages=("xx", None)).src_lang == "xx"


@pytest.mark.parametrize("src", ["x" * 101, "", "x\ty", "de\n"])
def test_a_language_code_no_model_file_could_record_is_refused_before_any_work(
    src: str, tmp_path: Path, capsys
) -> None:
    """A 120-character --src prepared and trained to the end; `export` then refused the model ("src_lang ... not a
    language code"). preprocess, train (RunSpec) and the CLI now refuse it first, by the rule export reads with."""
    want = f"--src {src!r} is not a language code (1 to 100 printable characters)"
    with pytest.raises(ConfigError) as err:
        RunSpec(tmp_path / "data", src, "yy", tmp_path / "run")
    assert str(err.value) == want
    with pytest.raises(ConfigError) as err:
        preprocess(tmp_path / "data", src, "yy", tmp_path / "run", DataConfig())
    assert str(err.value) == want
    if src and "\n" not in src and "\t" not in src:  # what a shell passes as one argument here
        argv = ["train", "--data", str(tmp_path / "data"), "--src", src, "--tgt", "yy", "--out", str(tmp_path / "run")]
        assert main([*argv, "--quiet"]) == 2
        assert capsys.readouterr().err.splitlines() == [f"seq2seq train: error: {want}"]
    assert list(tmp_path.iterdir()) == []  # no run folder, no work folder
    with pytest.raises(ConfigError, match="--tgt"):
        RunSpec(tmp_path / "data", "xx", "y" * 101, tmp_path / "run")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: RunOptions(device=None), "RunOptions.device must be str, got NoneType None"),
        (lambda: RunOptions(resume="no"), "RunOptions.resume must be bool, got str 'no'"),
        (lambda: train(("data", "xx", "yy", "run")), "spec must be a RunSpec, got tuple"),
        (lambda: train(RunSpec("data", "xx", "yy", "run"), options={"device": "cpu"}), "options must be a RunOptions"),
    ],
)
def test_train_arguments_of_the_wrong_kind_are_a_type_error_naming_them(call, words: str) -> None:
    """`RunOptions(device=None)` was a many-line torch error, `resume="no"` resumed; a tuple or a dict in place of
    RunSpec / RunOptions was an AttributeError from inside the run."""
    with pytest.raises(ConfigKeyError) as err:
        call()
    assert isinstance(err.value, TypeError) and str(err.value).startswith(words)


def test_a_translators_check_and_describe_take_a_decode_config_or_none(run_dir: Path) -> None:
    tr = Translator.from_checkpoint(run_dir / "best.pt")
    for call in (lambda: tr.check({"precision": "fp32"}), lambda: tr.describe({"precision": "fp32"})):
        with pytest.raises(TypeError, match="^cfg must be a DecodeConfig, got"):
            call()
    tr.check(None)
    assert tr.describe(None) == tr.describe(DecodeConfig())
    with pytest.raises(ConfigError, match="^no model file given$"):
        load_translator(None)


def test_a_path_where_a_loaded_translator_is_wanted_and_none_for_a_checkpoint_are_named(run_dir: Path) -> None:
    """`EnsembleTranslator([path])` was "'str' object has no attribute 'src_tok'"; `from_checkpoint(None)` pathlib's
    "expected str, bytes or os.PathLike object", naming no argument."""
    with pytest.raises(TypeError, match=r"^an ensemble's members are loaded translators \(load_translator takes"):
        EnsembleTranslator([str(run_dir / "best.pt")])
    with pytest.raises(TypeError, match="^path must be a checkpoint file's path, got NoneType$"):
        Translator.from_checkpoint(None)
    tr = Translator.from_checkpoint(run_dir / "best.pt")
    assert EnsembleTranslator([tr]).translate(["red cat"]) == tr.translate(["red cat"])
