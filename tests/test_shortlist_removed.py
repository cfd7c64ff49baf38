"""The vocabulary shortlist is gone (issue 28): checkpoints written with its `lexicon` table still
load, their checksum (which covered that table) still verifies, and `--shortlist` is an unknown flag."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any

import pytest
import torch

from seq2seq.checkpoint import (
    CHECKSUM_KEY,
    FORMAT,
    VERSION,
    CheckpointError,
    load_checkpoint,
    read_model,
    read_resume,
    save_checkpoint,
    write_model_checkpoint,
)
from seq2seq.cli import main
from seq2seq.config import ConfigError, DecodeConfig
from seq2seq.config_dict import from_dict
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

    from seq2seq.checkpoint import ModelFile

SENTENCES = ["red cat", "dog dog bird sun moon tree house", "", "blue house red tree", "sun"]


def _old_checksum(payload: dict[str, Any]) -> str:
    """`weights_sha256` as files with a lexicon were written: the "model" table, then the "lexicon"
    table, each tensor by sorted name (name, dtype, shape, then its bytes)."""
    digest = hashlib.sha256()
    for table in ("model", "lexicon"):
        for name in sorted(payload[table]):
            t = payload[table][name]
            digest.update(f"{table}/{name}/{t.dtype}/{tuple(t.shape)}\n".encode())
            digest.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _same(a: ModelFile, b: ModelFile) -> bool:
    """Equal weights (tensor by tensor) and equal other fields."""
    weights = a.state_dict.keys() == b.state_dict.keys() and all(
        torch.equal(t, b.state_dict[name]) for name, t in a.state_dict.items()
    )
    return weights and dataclasses.replace(a, state_dict={}) == dataclasses.replace(b, state_dict={})


def _with_lexicon(src: Path, out: Path) -> dict[str, Any]:
    """`src` rewritten in the old layout: a `lexicon` table first (per source piece its best target
    pieces; target pieces by frequency) and the checksum over weights and lexicon. Returns its payload."""
    payload = {k: v for k, v in load_checkpoint(src).items() if k not in ("format", "version")}
    src_vocab, tgt_vocab = (payload["model"][f"{side}.embed.weight"].shape[0] for side in ("encoder", "decoder"))
    lexicon = {"table": torch.arange(src_vocab * 3).view(src_vocab, 3) % tgt_vocab, "frequent": torch.arange(tgt_vocab)}
    old = {"lexicon": lexicon, **payload}
    torch.save({"format": FORMAT, "version": VERSION, CHECKSUM_KEY: _old_checksum(old), **old}, out)
    return old


def test_a_checkpoint_written_with_a_lexicon_loads_verified_and_translates_the_same(
    run_dir: Path, tmp_path: Path
) -> None:
    assert "lexicon" not in torch.load(run_dir / "best.pt", weights_only=True)  # training no longer writes one
    old_payload = _with_lexicon(run_dir / "best.pt", tmp_path / "old.pt")
    assert "lexicon" not in load_checkpoint(tmp_path / "old.pt")  # checked by the checksum, then dropped
    assert _same(read_model(tmp_path / "old.pt"), read_model(run_dir / "best.pt"))
    for beam in (1, 3):
        cfg = DecodeConfig(beam_size=beam, precision="fp32")
        expect = Translator.from_checkpoint(run_dir / "best.pt").translate(SENTENCES, cfg)
        assert Translator.from_checkpoint(tmp_path / "old.pt").translate(SENTENCES, cfg) == expect
    # save_checkpoint still sums a lexicon table the old way: the same checksum as those files hold
    save_checkpoint(tmp_path / "saved.pt", old_payload)
    assert torch.load(tmp_path / "saved.pt", weights_only=True)[CHECKSUM_KEY] == _old_checksum(old_payload)


def test_a_damaged_lexicon_in_an_old_checkpoint_is_still_a_checksum_mismatch(run_dir: Path, tmp_path: Path) -> None:
    _with_lexicon(run_dir / "best.pt", tmp_path / "old.pt")
    raw = torch.load(tmp_path / "old.pt", weights_only=True)
    raw["lexicon"]["table"][0, 0] += 1  # stored checksum kept: an altered file
    torch.save(raw, tmp_path / "altered.pt")
    with pytest.raises(CheckpointError) as err:
        read_model(tmp_path / "altered.pt")
    assert "\n" not in str(err.value) and "altered.pt: checksum mismatch" in str(err.value)


def test_an_old_last_pt_with_a_lexicon_resumes_and_is_written_back_without_it(run_dir: Path, tmp_path: Path) -> None:
    _with_lexicon(run_dir / "last.pt", tmp_path / "last.pt")
    model, resume = read_resume(tmp_path / "last.pt")
    assert _same(model, read_resume(run_dir / "last.pt")[0])
    write_model_checkpoint(tmp_path / "again.pt", model, resume)
    assert "lexicon" not in torch.load(tmp_path / "again.pt", weights_only=True)


def test_shortlist_is_an_unknown_flag_option_and_config_key(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.txt").write_text("red cat\n", encoding="utf-8")
    args = ["translate", "--checkpoint", str(run_dir / "best.pt"), "--input", str(tmp_path / "in.txt"), "--quiet"]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--shortlist", "5"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.splitlines()[-1] == "seq2seq: error: unrecognized arguments: --shortlist 5", err  # argparse's line
    toml = tmp_path / "cfg.toml"
    toml.write_text("[decode]\nshortlist = 5\n")
    assert main([*args, "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{toml}: [decode] unknown DecodeConfig key 'shortlist'" in err, err
    with pytest.raises(ConfigError, match="^unknown DecodeConfig key 'shortlist_frequent'"):
        from_dict(DecodeConfig, {"shortlist_frequent": 500})
    with pytest.raises(ConfigError, match="^unknown DecodeConfig key 'shortlist'"):  # the Python API alike
        Translator.from_checkpoint(run_dir / "best.pt").translate(["red cat"], shortlist=5)
