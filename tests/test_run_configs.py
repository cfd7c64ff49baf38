"""No flag, table or corpus edit silently ignored: what `train` asks for is compared with the run
folder (its preprocess.json, the corpus files it records, a resumed run's last.pt) and a difference
is refused in one line naming it, or with --overwrite prepared again; every --config table is used
or refused. Each refusal: exit 2, one line, nothing in the run folder changed."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

import pytest
from corpora import write_corpus
from test_refusals import TINY, _corpus_args, _hashes, _refused

from seq2seq.checkpoint import CheckpointError, load_checkpoint
from seq2seq.cli import main
from seq2seq.config import ConfigError, DataConfig, ModelConfig, TrainConfig
from seq2seq.config_toml import load_toml
from seq2seq.machine.hardware import shape_buckets_on
from seq2seq.train import RunOptions, RunSpec, run_settings, train

if TYPE_CHECKING:
    from pathlib import Path

STEPS = ["--max-steps", "2", "--valid-every", "2", "--valid-bleu-sentences", "0"]


@pytest.fixture
def prepared(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[Path, Path]:
    """A corpus and a run folder prepared by `preprocess` with --vocab-size 60 --max-len 50."""
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    assert main(["preprocess", *_corpus_args(corpus, run), "--vocab-size", "60", "--max-len", "50"]) == 0
    capsys.readouterr()
    return corpus, run


def _train(corpus: Path, run: Path, *extra: str) -> list[str]:
    return ["train", *_corpus_args(corpus, run), *TINY, *STEPS, *extra]


def _data(run: Path, name: str = "preprocess.json") -> dict:
    return json.loads((run / name).read_text())["data"]


# --- data settings asked for against the folder's preparation ---


def test_train_without_data_flags_uses_the_folders_preparation(prepared) -> None:
    corpus, run = prepared
    assert main(_train(corpus, run)) == 0
    assert _data(run, "config.json")["vocab_size"] == 60 and _data(run, "config.json")["max_len"] == 50
    # the same values given again are no change
    assert main(_train(corpus, run, "--vocab-size", "60", "--max-len", "50", "--overwrite")) == 0


def test_other_data_flags_are_refused_naming_each_field_and_both_values(prepared, capsys) -> None:
    corpus, run = prepared
    before = _hashes(run)
    line = _refused(_train(corpus, run, "--vocab-size", "50", "--max-len", "20"), capsys)
    assert (
        f"{run}/preprocess.json records other data settings than asked (vocab_size 60 there, 50 asked, "
        "max_len 50 there, 20 asked): leave those flags out" in line
    )
    assert "--overwrite" in line
    assert _hashes(run) == before and not (run / "last.pt").exists()
    # a [data] table of --config counts as asked too
    toml = run.parent / "data.toml"
    toml.write_text("[data]\nmax_len = 20\n")
    line = _refused(_train(corpus, run, "--config", str(toml)), capsys)
    assert "(max_len 50 there, 20 asked)" in line
    assert _hashes(run) == before


def test_overwrite_prepares_the_folder_again_with_the_new_values(prepared, capsys) -> None:
    corpus, run = prepared
    assert main(_train(corpus, run)) == 0  # a trained run: last.pt holds vocab 60
    spm_before = (run / "spm.src.model").read_bytes()
    assert main(_train(corpus, run, "--vocab-size", "28", "--max-len", "20", "--overwrite")) == 0
    for name in ("preprocess.json", "config.json"):
        data = _data(run, name)
        assert (data["vocab_size"], data["max_len"]) == (28, 20), name
    assert load_checkpoint(run / "last.pt")["data_config"]["vocab_size"] == 28
    assert (run / "spm.src.model").read_bytes() != spm_before
    # other data settings of the first preparation stay (spm_seed, splits): only the asked ones changed
    assert _data(run)["min_len"] == 1 and _data(run)["val_split"] == "val"


def test_another_data_folder_is_refused_and_overwrite_prepares_from_it(prepared, capsys) -> None:
    corpus, run = prepared
    other = write_corpus(run.parent / "other", n_train=120, seed=3)
    before = _hashes(run)
    line = _refused(["train", *_corpus_args(other, run), *TINY, *STEPS], capsys)
    assert f"{run} was prepared from {corpus.resolve()} xx->yy, not {other.resolve()} xx->yy" in line
    assert "--overwrite" in line and _hashes(run) == before
    assert main(["train", *_corpus_args(other, run), *TINY, *STEPS, "--overwrite"]) == 0
    assert json.loads((run / "preprocess.json").read_text())["data_dir"] == str(other.resolve())
    assert _data(run)["vocab_size"] == 60  # the folder's settings, the new corpus


# --- corpus files edited after preprocess ---


def test_preprocess_records_each_corpus_files_size_and_hash(prepared) -> None:
    corpus, run = prepared
    files = json.loads((run / "preprocess.json").read_text())["corpus_files"]
    assert sorted(files) == ["test.xx", "test.yy", "train.xx", "train.yy", "val.xx", "val.yy"]
    data = (corpus / "train.xx").read_bytes()
    assert files["train.xx"]["bytes"] == len(data)
    assert files["train.xx"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_an_edited_corpus_file_is_refused_naming_it(prepared, capsys) -> None:
    corpus, run = prepared
    before = _hashes(run)
    path = corpus / "train.xx"
    text = path.read_text()
    path.write_text(text + "red cat\n")  # another size
    line = _refused(_train(corpus, run), capsys)
    assert f"{path} changed since {run} was prepared from it ({len(text)} bytes then, {len(text) + 8} now)" in line
    assert "restore the file, or pass --overwrite" in line
    # the same size, other bytes (and a newer modification time): the hash tells
    path.write_text(text.replace("red", "old", 1))
    os.utime(path, ns=(2, 2))
    line = _refused(_train(corpus, run), capsys)
    assert f"{path} changed since {run} was prepared from it (same size, sha256 " in line
    # the same bytes again with a new modification time (a copy, a `touch`): no change
    path.write_text(text)
    os.utime(path, ns=(1, 1))
    assert _hashes(run) == before
    assert main(_train(corpus, run)) == 0


def test_a_deleted_corpus_file_is_refused_and_overwrite_prepares_again(prepared, capsys) -> None:
    corpus, run = prepared
    (corpus / "test.yy").unlink()
    line = _refused(_train(corpus, run), capsys)
    size = len((corpus / "test.xx").read_bytes().upper())  # the yy side: the same words, upper-cased
    assert f"{corpus / 'test.yy'}: no such file any more ({size} bytes since {run} was prepared from it)" in line
    # --overwrite prepares again from what is there (the test split is gone: a warning, as with preprocess)
    (corpus / "val.xx").write_text((corpus / "val.xx").read_text() + "big dog\n")
    (corpus / "val.yy").write_text((corpus / "val.yy").read_text() + "DOG BIG\n")
    (corpus / "test.xx").unlink()
    assert main(_train(corpus, run, "--overwrite")) == 0
    manifest = json.loads((run / "preprocess.json").read_text())
    assert manifest["splits"]["val"] == 21 and "test" not in manifest["splits"]
    assert "test.yy" not in manifest["corpus_files"]
    assert main(_train(corpus, run, "--overwrite")) == 0  # recorded again: nothing differs now


def test_a_resume_refuses_an_edited_corpus_too(prepared, capsys) -> None:
    corpus, run = prepared
    assert main(_train(corpus, run)) == 0
    (corpus / "val.yy").write_text((corpus / "val.yy").read_text().replace("RED", "OLD", 1))
    os.utime(corpus / "val.yy", ns=(2, 2))
    before = _hashes(run)
    line = _refused(["train", *_corpus_args(corpus, run), "--resume", "--max-steps", "4"], capsys)
    assert f"{corpus / 'val.yy'} changed since {run} was prepared from it (same size" in line
    assert _hashes(run) == before


def test_a_folder_prepared_before_corpus_records_trains_with_a_warning(prepared, caplog) -> None:
    corpus, run = prepared
    manifest = json.loads((run / "preprocess.json").read_text())
    del manifest["corpus_files"]
    (run / "preprocess.json").write_text(json.dumps(manifest))
    (corpus / "train.xx").write_text((corpus / "train.xx").read_text() + "red cat\n")
    (corpus / "train.yy").write_text((corpus / "train.yy").read_text() + "CAT RED\n")
    assert main(_train(corpus, run)) == 0
    assert "records no corpus file sizes and hashes" in caplog.text


# --- every table of --config used or refused ---


@pytest.mark.parametrize(
    ("command", "table", "reads"),
    [
        ("train", "[decode]\nbeam_size = 4\n", "[data] [model] [train]"),
        ("preprocess", "[model]\nemb_size = 8\n", "[data]"),
        ("translate", "[train]\nlr = 0.1\n", "[decode]"),
    ],
)
def test_a_table_the_command_does_not_read_is_refused(tmp_path, capsys, command, table, reads) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    toml = tmp_path / "cfg.toml"
    toml.write_text(table)
    args = {
        "train": ["train", *_corpus_args(corpus, run)],
        "preprocess": ["preprocess", *_corpus_args(corpus, run)],
        "translate": ["translate", "--checkpoint", str(tmp_path / "none.pt")],
    }[command]
    name = table.splitlines()[0]
    line = _refused([*args, "--config", str(toml)], capsys)
    assert f"{toml}: table {name} is not read by this command (it reads {reads})" in line
    assert not run.exists()


def test_a_typo_in_any_table_is_refused_naming_it(tmp_path, capsys) -> None:
    corpus, run = write_corpus(tmp_path / "corpus", n_train=120), tmp_path / "run"
    toml = tmp_path / "cfg.toml"
    # a typo in a table this command reads, and one in a table it does not read
    for text, named in (
        ("[data]\nvocab_sise = 60\n", "[data] unknown DataConfig key 'vocab_sise'; did you mean 'vocab_size'?"),
        ("[decode]\nbeam_sise = 4\n", "[decode] unknown DecodeConfig key 'beam_sise'; did you mean 'beam_size'?"),
        ("[train]\nlr = 'fast'\n", "[train] TrainConfig.lr must be float, got str 'fast'"),
        ("[decod]\nbeam_size = 4\n", "unknown section [decod]; did you mean [decode]?"),
    ):
        toml.write_text(text)
        line = _refused(["train", *_corpus_args(corpus, run), "--config", str(toml)], capsys)
        assert f"{toml}: {named}" in line, line
    assert not run.exists()


def test_translate_uses_its_decode_table(run_dir, tmp_path, capsys) -> None:
    text, toml = tmp_path / "in.txt", tmp_path / "cfg.toml"
    text.write_text("red cat\n")
    toml.write_text("[decode]\nn_best = 2\nbeam_size = 2\n")
    translate = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--input", str(text)]
    assert main([*translate, "--config", str(toml)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.count("\t") == 2 for line in out)  # n_best 2: index<TAB>score<TAB>text


def test_load_toml_reads_only_the_tables_asked_for(tmp_path) -> None:
    toml = tmp_path / "cfg.toml"
    toml.write_text("[data]\nvocab_size = 60\n[train]\nlr = 1\n")
    assert load_toml(toml, ("data", "train")) == {"data": {"vocab_size": 60}, "train": {"lr": 1.0}}
    with pytest.raises(ConfigError, match=r"table \[train\] is not read"):
        load_toml(toml, ("data",))


# --- resume decided in the library ---


def test_resume_refuses_a_changed_model_setting_before_writing_anything(prepared, capsys) -> None:
    corpus, run = prepared
    assert main(_train(corpus, run)) == 0
    before = _hashes(run)
    resume = ["train", *_corpus_args(corpus, run), "--resume", "--max-steps", "4"]
    line = _refused([*resume, "--emb-size", "32", "--dropout", "0.1"], capsys)
    assert f"{run}/last.pt was trained with other model settings than asked (emb_size 16 then, 32 now, " in line
    assert "dropout 0.2 then, 0.1 now)" in line and "--overwrite" in line
    line = _refused([*resume, "--vocab-size", "50"], capsys)
    assert f"{run}/last.pt was trained with other data settings than asked (vocab_size 60 then, 50 now)" in line
    toml = run.parent / "model.toml"
    toml.write_text("[model]\ncell = 'gru'\n")
    line = _refused([*resume, "--config", str(toml)], capsys)
    assert "(cell 'lstm' then, 'gru' now)" in line
    assert _hashes(run) == before


def test_resume_takes_the_runs_settings_for_flags_not_given(prepared, capsys) -> None:
    corpus, run = prepared
    assert main(_train(corpus, run, "--lr", "0.002")) == 0
    # the same model flags as the run's are no change; training flags change the run's
    same = ["--emb-size", "16", "--vocab-size", "60", "--max-steps", "4", "--valid-every", "3"]
    assert main(["train", *_corpus_args(corpus, run), "--resume", *same]) == 0
    cfgs = json.loads((run / "config.json").read_text())
    assert cfgs["train"]["max_steps"] == 4 and cfgs["train"]["valid_every"] == 3  # asked for
    assert cfgs["train"]["lr"] == 0.002 and cfgs["train"]["max_tokens"] == 120  # the run's, not the defaults
    assert cfgs["model"]["enc_hidden"] == 16 and cfgs["data"]["max_len"] == 50
    assert load_checkpoint(run / "last.pt")["step"] == 4
    # the run's own config.toml given again on resume is no change either
    more = ["--resume", "--config", str(run / "config.toml"), "--max-steps", "5"]
    assert main(["train", *_corpus_args(corpus, run), *more]) == 0


def test_the_library_reads_the_saved_configs_itself(prepared) -> None:
    corpus, run = prepared
    model = ModelConfig(emb_size=16, enc_hidden=16, dec_hidden=32)
    cfg = TrainConfig(max_tokens=120, max_steps=2, valid_every=2, valid_bleu_sentences=0, threads=1)
    train(RunSpec(corpus, "xx", "yy", run), None, model, cfg, RunOptions(progress=False))
    data, model_cfg, train_cfg = run_settings(run, None, {"dropout": 0.2}, {"max_steps": 3}, resume=True)
    decided = "on" if shape_buckets_on("auto", cfg.precision, "cpu") else "off"  # auto, decided once and kept
    assert model_cfg == model and train_cfg == TrainConfig(**{**cfg.__dict__, "max_steps": 3, "shape_buckets": decided})
    assert data == _data(run)
    with pytest.raises(CheckpointError, match=r"other model settings than asked \(enc_hidden 16 then, 8 now\)"):
        train(RunSpec(corpus, "xx", "yy", run), None, {"enc_hidden": 8}, None, RunOptions(resume=True))
    # a DataConfig asks for every field: max_len too (the defaults' 250)
    with pytest.raises(CheckpointError, match=r"than asked \(vocab_size 60 then, 40 now, max_len 50 then, 250"):
        train(RunSpec(corpus, "xx", "yy", run), DataConfig(vocab_size=40), None, None, RunOptions(resume=True))
    result = train(RunSpec(corpus, "xx", "yy", run), None, None, {"max_steps": 3}, RunOptions(resume=True))
    assert result.steps == 3
