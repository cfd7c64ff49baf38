"""Checkpoint integrity: a checksum of the weights written at save time and checked on load, finite
weights, and one-line errors for a damaged version field or tensors that do not fit the config."""

from __future__ import annotations

import dataclasses
import shutil
import struct
import zipfile
from typing import TYPE_CHECKING

import pytest
import torch

from seq2seq.checkpoint import (
    CHECKSUM_KEY,
    CONTENTS_KEY,
    CheckpointError,
    contents_checksum,
    load_checkpoint,
    read_model,
    read_resume,
    save_checkpoint,
    weights_checksum,
    write_model_checkpoint,
)
from seq2seq.cli import main
from seq2seq.translation.torch_engine import Translator

if TYPE_CHECKING:
    from pathlib import Path

SENTENCES = ["red cat", "dog dog bird sun moon tree house", "blue house red tree"]


def flip_bytes_inside_largest_tensor(src: Path, dst: Path, count: int = 64) -> None:
    """Copy `src` with `count` bytes inverted in the middle of its largest tensor record (zip CRCs left stale)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))


def translate_cli(checkpoint: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    (tmp_path / "in.txt").write_text("\n".join(SENTENCES) + "\n")
    code = main(["translate", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "in.txt"), "--quiet"])
    return code, capsys.readouterr().err


def test_every_checkpoint_carries_the_checksum_of_its_weights(run_dir: Path) -> None:
    for name in ("best.pt", "last.pt"):
        raw = torch.load(run_dir / name, weights_only=True)
        stored = raw.pop(CHECKSUM_KEY)
        assert len(stored) == 64 and stored == weights_checksum(raw)
        assert CHECKSUM_KEY not in load_checkpoint(run_dir / name)  # checked, then left out of what callers see


def test_flipped_bytes_inside_a_weight_tensor_are_a_checksum_mismatch(run_dir: Path, tmp_path: Path, capsys) -> None:
    flip_bytes_inside_largest_tensor(run_dir / "best.pt", tmp_path / "flipped.pt")
    raw = torch.load(tmp_path / "flipped.pt", weights_only=True)  # torch itself loads it without a word
    assert raw[CHECKSUM_KEY] != weights_checksum({k: v for k, v in raw.items() if k != CHECKSUM_KEY})
    with pytest.raises(CheckpointError, match="flipped.pt: checksum mismatch"):
        read_model(tmp_path / "flipped.pt")
    code, err = translate_cli(tmp_path / "flipped.pt", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "checksum mismatch" in err, err
    # last.pt too: a damaged resume point is refused, not trained on
    flip_bytes_inside_largest_tensor(run_dir / "last.pt", tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_resume(tmp_path / "last.pt")


def test_non_finite_weights_are_refused_naming_the_tensor(run_dir: Path, tmp_path: Path, capsys) -> None:
    saved = read_model(run_dir / "best.pt")
    first = next(iter(saved.state_dict))
    nan = {k: torch.full_like(v, float("nan")) for k, v in saved.state_dict.items()}
    write_model_checkpoint(tmp_path / "nan.pt", dataclasses.replace(saved, state_dict=nan))  # a valid checksum
    with pytest.raises(CheckpointError, match=f"nan.pt: non-finite weights: {first} has"):
        read_model(tmp_path / "nan.pt")
    code, err = translate_cli(tmp_path / "nan.pt", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "non-finite weights" in err, err
    one = dict(saved.state_dict)
    name = next(k for k in one if "weight_hh" in k)
    one[name] = one[name].clone()
    one[name][0, 0] = float("inf")
    write_model_checkpoint(tmp_path / "inf.pt", dataclasses.replace(saved, state_dict=one))
    with pytest.raises(CheckpointError, match=f"non-finite weights: {name} has 1 NaN or infinite values of"):
        read_model(tmp_path / "inf.pt")


def test_checkpoints_written_before_the_checksum_still_load(run_dir: Path, tmp_path: Path) -> None:
    raw = torch.load(run_dir / "best.pt", weights_only=True)
    del raw[CHECKSUM_KEY]
    torch.save(raw, tmp_path / "old.pt")  # as seq2seq wrote it before the checksum
    old, new = Translator.from_checkpoint(tmp_path / "old.pt"), Translator.from_checkpoint(run_dir / "best.pt")
    assert old.translate(SENTENCES) == new.translate(SENTENCES)
    save_checkpoint(tmp_path / "resaved.pt", load_checkpoint(tmp_path / "old.pt"))  # saving it again adds one
    assert CHECKSUM_KEY in torch.load(tmp_path / "resaved.pt", weights_only=True)


def test_an_averaged_checkpoint_gets_the_checksum_of_the_averaged_weights(run_dir: Path, tmp_path: Path) -> None:
    shutil.copy(run_dir / "best.pt", tmp_path / "a.pt")
    shutil.copy(run_dir / "last.pt", tmp_path / "b.pt")
    code = main(["average", "--checkpoints", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                 "--out", str(tmp_path / "avg.pt")])  # fmt: skip
    assert code == 0
    raw = torch.load(tmp_path / "avg.pt", weights_only=True)
    assert raw.pop(CHECKSUM_KEY) == weights_checksum(raw)
    assert read_model(tmp_path / "avg.pt").averaged
    flip_bytes_inside_largest_tensor(tmp_path / "avg.pt", tmp_path / "avg-flipped.pt")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_model(tmp_path / "avg-flipped.pt")


@pytest.mark.parametrize("version", ["1", 1.0, None, True, 0])
def test_a_version_that_is_no_whole_number_is_a_damaged_checkpoint(run_dir, tmp_path, capsys, version) -> None:
    raw = torch.load(run_dir / "best.pt", weights_only=True)
    torch.save({**raw, "version": version}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "v.pt")
    assert f"damaged checkpoint: its format version is {version!r}, not a whole number" in str(err.value)
    assert "newer" not in str(err.value)
    code, out = translate_cli(tmp_path / "v.pt", tmp_path, capsys)
    assert code == 2 and out.count("\n") == 1 and "format version is" in out


def test_tensors_that_do_not_fit_the_config_give_one_full_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    saved = read_model(run_dir / "best.pt")
    emb = saved.model_config["emb_size"]
    config = {**saved.model_config, "emb_size": emb // 2}
    write_model_checkpoint(tmp_path / "shape.pt", dataclasses.replace(saved, model_config=config))
    rows = saved.state_dict["encoder.embed.weight"].shape[0]
    expected = f"encoder.embed.weight has shape ({rows}, {emb}) but its model config needs ({rows}, {emb // 2})"
    with pytest.raises(CheckpointError) as err:
        Translator.from_checkpoint(tmp_path / "shape.pt")
    assert "\n" not in str(err.value) and expected in str(err.value)
    assert str(err.value).count("shape.pt") == 1  # the file named once, not wrapped in a second message
    code, out = translate_cli(tmp_path / "shape.pt", tmp_path, capsys)
    assert code == 2 and out.count("\n") == 1 and expected in out, out
    # a missing tensor is named too
    fewer = {k: v for k, v in saved.state_dict.items() if k != "bridge_h.bias"}
    write_model_checkpoint(tmp_path / "fewer.pt", dataclasses.replace(saved, state_dict=fewer))
    with pytest.raises(CheckpointError, match="weights do not fit its model config \\(missing bridge_h.bias\\)"):
        Translator.from_checkpoint(tmp_path / "fewer.pt")


def test_two_copies_of_a_tied_weight_that_differ_are_an_inconsistent_checkpoint(
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    """Tied embeddings are one tensor saved under two names; the later copy silently won (an edited or damaged
    out.weight turned the decoder's embedding into it: 'a a a a ...')."""
    saved = read_model(run_dir / "best.pt")
    assert saved.model_config["tie_embeddings"]
    assert torch.equal(saved.state_dict["decoder.embed.weight"], saved.state_dict["out.weight"])
    weights = {**saved.state_dict, "out.weight": torch.zeros_like(saved.state_dict["out.weight"])}
    write_model_checkpoint(tmp_path / "tied.pt", dataclasses.replace(saved, state_dict=weights))
    expected = "decoder.embed.weight and out.weight are one tied weight in its model config but differ in the file"
    with pytest.raises(CheckpointError, match=expected):
        Translator.from_checkpoint(tmp_path / "tied.pt")
    code, out = translate_cli(tmp_path / "tied.pt", tmp_path, capsys)
    assert code == 2 and out.count("\n") == 1 and expected in out, out
    Translator.from_checkpoint(run_dir / "best.pt")  # equal copies load


def test_a_tokenizer_with_other_special_ids_does_not_load(run_dir: Path, tmp_path: Path, capsys) -> None:
    """Every special id is checked (only pad and eos were, by an assert that `python -O` skips): a model whose unk
    and bos ids are swapped loaded and decoded bos as a piece."""
    import io

    import sentencepiece as spm

    from seq2seq.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    saved = read_model(run_dir / "best.pt")
    lines = [f"word{i} and more words {i % 7}" for i in range(300)]
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, vocab_size=40, pad_id=PAD_ID,
                                   unk_id=BOS_ID, bos_id=UNK_ID, eos_id=EOS_ID, minloglevel=2)  # fmt: skip
    write_model_checkpoint(tmp_path / "ids.pt", dataclasses.replace(saved, src_spm=out.getvalue()))
    with pytest.raises(CheckpointError, match="its source SentencePiece model does not load"):
        Translator.from_checkpoint(tmp_path / "ids.pt")
    code, printed = translate_cli(tmp_path / "ids.pt", tmp_path, capsys)
    assert code == 2 and printed.count("\n") == 1 and "source SentencePiece model does not load" in printed


def test_a_damaged_zip_directory_is_a_corrupt_checkpoint_in_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    data = bytearray((run_dir / "best.pt").read_bytes())
    end = data.rindex(b"PK\x01\x02")  # the last central-directory entry: its file name bytes made undecodable
    data[end + 46 : end + 54] = b"\xff" * 8
    (tmp_path / "dir.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="dir.pt: truncated or corrupt checkpoint"):
        read_model(tmp_path / "dir.pt")
    code, err = translate_cli(tmp_path / "dir.pt", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "dir.pt" in err, err


def test_a_full_disk_inside_torch_save_names_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(obj, f, *args, **kwargs):  # torch's zip writer wraps the file's OSError in a RuntimeError
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from err

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left on device") as caught:
        save_checkpoint(tmp_path / "best.pt", {"model": {"w": torch.ones(2)}})
    assert caught.value.filename == str(tmp_path / "best.pt") and caught.value.errno == 28
    assert list(tmp_path.iterdir()) == []  # nothing half-written left


def _flip_bytes_of(src: Path, dst: Path, stored: bytes, count: int = 16) -> None:
    """Copy `src` with `count` bytes inverted in the middle of where `stored` (found once) lies in it."""
    data = bytearray(src.read_bytes())
    at = data.find(stored)
    assert at >= 0 and data.find(stored, at + 1) < 0
    for i in range(at + len(stored) // 2, at + len(stored) // 2 + count):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))


def test_flipped_bytes_in_the_resume_state_or_a_tokenizer_are_a_checksum_mismatch(
    run_dir: Path, tmp_path: Path
) -> None:
    """The weights' checksum left the rest out: a flip inside an Adam moment or the RNG state resumed
    silently into another run, one in a SentencePiece model gave a traceback or another tokenizer."""
    raw = torch.load(run_dir / "last.pt", weights_only=True)
    moment = max((s["exp_avg"] for s in raw["optimizer"]["state"].values()), key=lambda t: t.numel())
    tensor_bytes = lambda t: t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # noqa: E731
    for what, stored in (("moment", tensor_bytes(moment)), ("rng", tensor_bytes(raw["rng"][0]["cpu"]))):
        _flip_bytes_of(run_dir / "last.pt", tmp_path / f"{what}.pt", stored)
    # bytes are pickled as latin-1 text in UTF-8: one ASCII letter of the SentencePiece model changed
    data, spm = (run_dir / "last.pt").read_bytes(), raw["src_spm"].decode("latin-1").encode()
    assert data.count(spm) == 1
    at = data.find(spm) + len(spm) // 2
    at += next(i for i, b in enumerate(data[at:]) if chr(b).isascii() and chr(b).isalpha())
    (tmp_path / "spm.pt").write_bytes(data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :])  # a <-> A
    for what in ("moment", "rng", "spm"):
        with pytest.raises(CheckpointError, match=f"{what}.pt: checksum mismatch: its settings"):
            read_resume(tmp_path / f"{what}.pt")
    assert raw[CONTENTS_KEY] == contents_checksum(raw)  # what was saved is what is read
