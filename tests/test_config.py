"""Strict configuration: unknown keys, wrong types, bad values, TOML files, generated CLI flags."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from seq2seq.cli import build_parser
from seq2seq.cli.flags import from_flags
from seq2seq.config import SECTIONS, ConfigError, DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.config_dict import from_dict, to_dict
from seq2seq.config_toml import load_toml

if typing.TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("cls", "typo", "meant"),
    [
        (ModelConfig, "emb_sise", "emb_size"),
        (ModelConfig, "dec_hiden", "dec_hidden"),
        (TrainConfig, "learning_rate", None),
        (TrainConfig, "tbtt", "tbptt"),
        (DecodeConfig, "beam", "beam_size"),
        (DataConfig, "vocabsize", "vocab_size"),
    ],
)
def test_unknown_key_names_the_closest_valid_key(cls, typo: str, meant: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(cls, {typo: 1})
    message = str(err.value)
    assert repr(typo) in message and cls.__name__ in message
    if meant is not None:
        assert f"did you mean {meant!r}" in message
    else:  # nothing close: the valid keys are listed instead
        assert "lr" in message and "max_steps" in message


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (ModelConfig, {"emb_size": "256"}),
        (ModelConfig, {"emb_size": 2.5}),
        (ModelConfig, {"enc_layers": True}),  # a bool is not an int here
        (ModelConfig, {"tie_embeddings": "yes"}),
        (ModelConfig, {"tie_embeddings": 1}),
        (ModelConfig, {"cell": "transformer"}),
        (ModelConfig, {"attention": "luong"}),
        (TrainConfig, {"lr": "1e-3"}),
        (TrainConfig, {"best_metric": "chrf"}),
        (DecodeConfig, {"beam_size": None}),
    ],
)
def test_wrong_type_is_an_error_naming_the_field(cls, values: dict) -> None:
    with pytest.raises(ConfigError, match=f"{cls.__name__}.{next(iter(values))}"):
        from_dict(cls, values)


def test_ints_widen_to_floats_but_nothing_else_converts() -> None:
    cfg = from_dict(TrainConfig, {"lr": 1, "label_smoothing": 0})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert from_dict(ModelConfig, {"cell": "gru", "dropout": 0.5}) == ModelConfig(cell="gru", dropout=0.5)


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (DecodeConfig, {"beam_size": 0}),
        (DecodeConfig, {"batch_size": -1}),
        (DecodeConfig, {"beam_size": 2, "n_best": 3}),
        (ModelConfig, {"dropout": -0.1}),
        (ModelConfig, {"dropout": 1.0}),
        (ModelConfig, {"emb_size": 0}),
        (ModelConfig, {"attention": "dot", "enc_hidden": 64, "dec_hidden": 100}),
        (TrainConfig, {"tbptt": -1}),
        (TrainConfig, {"lr": 0.0}),
        (TrainConfig, {"label_smoothing": 1.0}),
        (TrainConfig, {"adam_beta1": 1.0}),
        (TrainConfig, {"adam_beta2": -0.1}),
        (TrainConfig, {"teacher_forcing": 1.5}),
        (DataConfig, {"vocab_size": 8}),
        (DataConfig, {"min_len": 5, "max_len": 4}),
    ],
)
def test_out_of_range_values_are_errors(cls, values: dict) -> None:
    with pytest.raises(ConfigError):
        from_dict(cls, values)
    with pytest.raises(ConfigError):  # the dataclass checks itself, however it is built
        cls(**values)


@pytest.mark.parametrize(
    ("cls", "values", "words"),
    [  # each accepted before: a run of 0 updates at exit 0, a traceback, an allocator error or a hang
        (TrainConfig, {"patience": -1}, "patience must be in [0, 1,000,000], got -1"),
        (TrainConfig, {"max_epochs": -1}, "max_epochs must be in [1, 1,000,000], got -1"),
        (TrainConfig, {"warmup_steps": -5}, "warmup_steps must be in"),
        (TrainConfig, {"clip_norm": -1.0}, "clip_norm must be in"),
        (TrainConfig, {"min_lr": float("nan")}, "min_lr must be a finite number, got nan"),
        (TrainConfig, {"max_minutes": float("inf")}, "max_minutes must be a finite number, got inf"),
        (TrainConfig, {"keep_checkpoints": -2}, "keep_checkpoints must be in"),
        (TrainConfig, {"max_nan_steps": 0}, "max_nan_steps must be in [1, "),
        (TrainConfig, {"malloc_mmap_kib": -1}, "malloc_mmap_kib must be in"),
        (TrainConfig, {"valid_bleu_sentences": -3}, "valid_bleu_sentences must be in"),
        (TrainConfig, {"max_tokens": 10**12}, "max_tokens must be in [1, 1,000,000], got 1000000000000"),
        (TrainConfig, {"threads": 10**6}, "threads must be in [0, 1,024]"),
        (TrainConfig, {"seed": -1}, "seed must be in [0, "),
        (TrainConfig, {"seed": 10**23}, "seed must be in [0, 9,223,372,036,854,775,807], got 100000000000000000000000"),
        (ModelConfig, {"enc_hidden": 10**7}, "enc_hidden must be in [1, 8,192], got 10000000"),
        (ModelConfig, {"emb_size": 10**7}, "emb_size must be in [1, 8,192]"),
        (ModelConfig, {"enc_layers": 100_000}, "enc_layers must be in [1, 32]"),
        (DataConfig, {"vocab_size": 3 * 10**9}, "vocab_size must be in [16, 1,000,000], got 3000000000"),
        (DataConfig, {"max_len": 10**9}, "max_len must be in [1, 100,000]"),
        (
            DecodeConfig,
            {"max_len_b": 10**5000},
            "DecodeConfig.max_len_b is out of range: an integer of about 5000 digits",
        ),  # fmt: skip
        (DataConfig, {"spm_seed": -(10**5000)}, "DataConfig.spm_seed is out of range: an integer of about 5000 digits"),
    ],
)
def test_huge_negative_and_non_finite_values_are_one_line_each(cls, values: dict, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(cls, values)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_configs_are_frozen_and_round_trip_through_dicts() -> None:
    cfg = ModelConfig(cell="gru", emb_size=64, input_feeding=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.emb_size = 3  # type: ignore[misc]
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    for cls in SECTIONS.values():
        assert from_dict(cls, to_dict(cls())) == cls()


def test_toml_file_loads_sections(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        '[model]\ncell = "gru"\nemb_size = 64\n\n[train]\nlr = 5e-4\ntbptt = 20\n\n[decode]\nbeam_size = 8\n'
    )
    raw = load_toml(path)
    assert from_dict(ModelConfig, raw["model"]) == ModelConfig(cell="gru", emb_size=64)
    assert from_dict(TrainConfig, raw["train"]) == TrainConfig(lr=5e-4, tbptt=20)
    assert from_dict(DecodeConfig, raw["decode"]).beam_size == 8
    assert "data" not in raw  # every section is optional


def test_toml_key_outside_a_table_names_its_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("beam_size = 3\n[decode]\nn_best = 1\n")
    with pytest.raises(ConfigError, match=r"beam_size = \.\.\. is outside any table; it belongs in \[decode\]$"):
        load_toml(path)  # was: "unknown section [beam_size]"
    path.write_text("nonsense = 3\n")
    with pytest.raises(ConfigError, match=r"nonsense = \.\.\. is outside any table; this command reads"):
        load_toml(path)


def test_toml_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[modle]\nemb_size = 64\n")
    with pytest.raises(ConfigError, match=r"unknown section \[modle\].*\[model\]"):
        load_toml(path)


def test_toml_unknown_key_and_bad_syntax_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[train]\nlearning_rte = 0.1\n")
    with pytest.raises(ConfigError, match="learning_rte"):
        from_dict(TrainConfig, load_toml(path)["train"])
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\nlr = \n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_toml(broken)
    with pytest.raises(ConfigError, match="missing.toml"):
        load_toml(tmp_path / "missing.toml")


# Fields set to values other than their defaults (and valid together); fields added later keep
# their defaults here and still go through the round trip below.
NON_DEFAULT = {
    DataConfig: DataConfig(
        vocab_size=123,
        joint_vocab=True,
        sp_model_type="bpe",
        character_coverage=0.995,
        spm_input_sentence_size=1000,
        spm_seed=99,
        min_len=2,
        max_len=80,
        max_len_ratio=2.5,
        dedup=True,
        train_split="tr",
        val_split="dev",
        test_split="tst",
    ),
    ModelConfig: ModelConfig(
        cell="gru",
        emb_size=33,
        enc_hidden=40,
        enc_layers=2,
        dec_hidden=80,
        dec_layers=3,
        attention="dot",
        input_feeding=True,
        tie_embeddings=False,
        dropout=0.3,
    ),
    TrainConfig: TrainConfig(
        seed=7,
        max_tokens=999,
        max_steps=12,
        max_epochs=3,
        max_minutes=1.5,
        lr=0.25,
        warmup_steps=4,
        lr_decay=0.7,
        lr_patience=5,
        min_lr=1e-6,
        patience=0,
        clip_norm=0.0,
        label_smoothing=0.0,
        teacher_forcing=0.75,
        tbptt=9,
        valid_every=11,
        valid_bleu_sentences=0,
        best_metric="loss",
        log_every=3,
        max_nan_steps=2,
        threads=1,
    ),
    DecodeConfig: DecodeConfig(
        beam_size=7, batch_size=5, length_penalty=0.6, max_len_a=1.5, max_len_b=3, max_src_len=50, n_best=2
    ),
}


def flags_for(cfg) -> list[str]:
    out = []
    for f in dataclasses.fields(cfg):
        value, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


@pytest.mark.parametrize("cls", list(NON_DEFAULT))
def test_cli_flags_generated_from_fields_round_trip(cls) -> None:
    cfg = NON_DEFAULT[cls]
    changed = [f.name for f in dataclasses.fields(cls) if getattr(cfg, f.name) != f.default]
    assert len(changed) >= 7
    command = "translate" if cls is DecodeConfig else "train"
    corpus = [] if cls is DecodeConfig else ["--data", "d", "--src", "de", "--tgt", "en", "--out", "o"]
    checkpoint = ["--checkpoint", "c.pt"] if cls is DecodeConfig else []
    parser = build_parser()

    args = parser.parse_args([command, *corpus, *checkpoint, *flags_for(cfg)])
    assert from_flags(cls, args) == cfg
    # no flags: the defaults, and a TOML table under the flags fills what flags leave unset
    bare = parser.parse_args([command, *corpus, *checkpoint])
    assert from_flags(cls, bare) == cls()
    assert from_flags(cls, bare, to_dict(cfg)) == cfg
    assert from_flags(cls, args, to_dict(cls())) == cfg  # flags win over the table


def test_every_config_field_has_a_flag() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    expected = {
        "preprocess": [DataConfig],
        "train": [DataConfig, ModelConfig, TrainConfig],
        "translate": [DecodeConfig],
    }
    for command, classes in expected.items():
        dests = {a.dest for a in sub[command]._actions}
        for cls in classes:
            assert {f.name for f in dataclasses.fields(cls)} <= dests, (command, cls.__name__)
            assert all(f.name in typing.get_type_hints(cls) for f in dataclasses.fields(cls))


def test_bad_flag_values_are_rejected_by_the_parser() -> None:
    parser = build_parser()
    base = ["train", "--data", "d", "--src", "de", "--tgt", "en", "--out", "o"]
    for bad in (["--cell", "transformer"], ["--emb-size", "big"], ["--lr", "fast"]):
        with pytest.raises(SystemExit):
            parser.parse_args(base + bad)
    args = parser.parse_args(base + ["--dropout", "-0.5"])  # parses, but the config refuses it
    with pytest.raises(ConfigError, match="dropout"):
        from_flags(ModelConfig, args)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"lr_schedule": "plateau", "anneal_fraction": 0.3}, "anneal_fraction 0.3 would be ignored"),
        ({"lr_schedule": "anneal", "max_steps": 10, "lr_decay": 0.7}, "lr_decay 0.7 would be ignored"),
        ({"lr_schedule": "anneal", "max_steps": 10, "lr_patience": 3}, "lr_patience 3 would be ignored"),
        ({"valid_bleu_sentences": 0, "bleu_tokenize": "zh"}, "bleu_tokenize 'zh' would be ignored"),
        ({"tf32": True}, "tf32 True would be ignored"),  # on a CPU (run_settings' device_type)
    ],
)
def test_training_settings_the_run_would_ignore_are_refused(tmp_path: Path, given: dict, says: str) -> None:
    """The settings asked for off their defaults (a dict: the CLI's flags and [train] table; a run's config.toml
    names every field, so a default value given is not refused)."""
    from seq2seq.train import run_settings

    with pytest.raises(ConfigError, match=f"^{says}: it applies only "):
        run_settings(tmp_path, None, None, given, resume=False)
    cfg = TrainConfig(**{k: v for k, v in given.items() if k != next(reversed(given))})
    run_settings(tmp_path, None, None, cfg, resume=False)  # without the ignored one: fine


def test_tf32_is_a_gpu_fp32_setting_and_the_onednn_cache_a_cpu_one(tmp_path: Path) -> None:
    from seq2seq.train import run_settings

    fp32 = {"tf32": True, "precision": "fp32"}
    assert run_settings(tmp_path, None, None, fp32, resume=False, device_type="cuda")[2].tf32
    for device, asked in (("cpu", fp32), ("cuda", {"tf32": True})):  # auto on a GPU: bf16 or fp16
        with pytest.raises(ConfigError, match="^tf32 True would be ignored: it applies only with --precision fp32 on"):
            run_settings(tmp_path, None, None, asked, resume=False, device_type=device)
    assert run_settings(tmp_path, None, None, {"onednn_cache": 8}, resume=False, device_type="cpu")[2].onednn_cache == 8
    with pytest.raises(ConfigError, match="^onednn_cache 8 would be ignored: it applies only on a CPU"):
        run_settings(tmp_path, None, None, {"onednn_cache": 8}, resume=False, device_type="cuda")


def test_a_whole_training_config_counts_the_fields_off_their_defaults_as_asked(tmp_path: Path) -> None:
    from seq2seq.train import run_settings

    run_settings(tmp_path, None, None, TrainConfig(valid_bleu_sentences=0), resume=False)  # defaults: not asked
    run_settings(tmp_path, None, None, {"lr_schedule": "anneal", "max_steps": 9, "lr_decay": 0.5}, resume=False)
    with pytest.raises(ConfigError, match="anneal_fraction 0.3 would be ignored"):
        run_settings(tmp_path, None, None, TrainConfig(anneal_fraction=0.3), resume=False)
    with pytest.raises(ConfigError, match="min_lr 0.01 is above lr 0.001"):
        TrainConfig(min_lr=0.01)


@pytest.mark.parametrize("split", ["dev/val", "/tmp/corpus/val", "../val", ".val", "", "v" * 101])
def test_a_split_name_is_a_file_stem_never_a_path(split: str) -> None:
    """`--val-split /path/dev/val` wrote the prepared files beside the corpus (outside the run folder), and
    recorded a name the next run could not find."""
    for name in ("train_split", "val_split", "test_split"):
        with pytest.raises(ConfigError, match=f"^{name} .* is not a split name"):
            DataConfig(**{name: split})
    DataConfig(val_split="dev.clean", test_split="test_2016_flickr")


def test_a_settings_file_reads_with_any_line_ends(tmp_path: Path) -> None:
    """Read as bytes to bound its size, a CR-only TOML became one line ("Expected newline ... at line 1"): line ends
    are taken as `read_text` took them, \\r\\n and \\r alike."""
    text = "# decoding\n[decode]\nbeam_size = 1\nmax_len_b = 2\n"
    for name, ends in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        (tmp_path / f"{name}.toml").write_bytes(text.replace("\n", ends).encode())
        assert load_toml(tmp_path / f"{name}.toml", ("decode",)) == {"decode": {"beam_size": 1, "max_len_b": 2}}
