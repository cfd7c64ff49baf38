"""`seq2seq download` offline: small local datasets in each schema through the same path a Hub name takes."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import datasets
import huggingface_hub
import pytest
from datasets import Dataset, DatasetDict, Features, Translation

from seq2seq.cli import main
from seq2seq.errors import CorpusError
from seq2seq.sources import download as download_module
from seq2seq.sources.download import download
from seq2seq.text import read_lines

if TYPE_CHECKING:
    from pathlib import Path

DE = ["Ein Hund läuft.", "Zwei Männer.", "Eine Frau liest."]
EN = ["A dog runs.", "Two men.", "A woman reads."]


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network: offline flags, a private cache, and sockets that refuse to connect."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def columns(de: list[str], en: list[str]) -> list[dict]:
    return [{"de": d, "en": e} for d, e in zip(de, en)]


def translation(de: list[str], en: list[str]) -> Dataset:
    features = Features({"translation": Translation(languages=["de", "en"])})
    return Dataset.from_dict({"translation": columns(de, en)}, features=features)


def check(out: Path, split: str, de: list[str], en: list[str]) -> None:
    assert read_lines(out / f"{split}.de") == de
    assert read_lines(out / f"{split}.en") == en


def test_translation_column_saved_dataset_dict(tmp_path: Path) -> None:
    DatasetDict(
        {"train": translation(DE, EN), "validation": translation(DE[:2], EN[:2]), "test": translation(DE[:1], EN[:1])}
    ).save_to_disk(tmp_path / "saved")
    manifest = download(tmp_path / "saved", "de", "en", tmp_path / "out")
    check(tmp_path / "out", "train", DE, EN)
    check(tmp_path / "out", "val", DE[:2], EN[:2])
    check(tmp_path / "out", "test", DE[:1], EN[:1])
    assert json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["source"] == "saved dataset"
    assert manifest["columns"] == {"src": "translation.de", "tgt": "translation.en"}
    assert {k: v["lines"] for k, v in manifest["splits"].items()} == {"train": 3, "val": 2, "test": 1}
    assert manifest["splits"]["val"]["from_split"] == "validation"
    assert all(split["fingerprint"] for split in manifest["splits"].values())
    assert manifest["datasets_version"] == datasets.__version__
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock") == sorted(
        ["manifest.json"] + [f"{s}.{lang}" for s in ("train", "val", "test") for lang in ("de", "en")]
    )


def test_translation_column_single_saved_dataset_reversed_direction(tmp_path: Path) -> None:
    translation(DE, EN).save_to_disk(tmp_path / "saved")
    manifest = download(tmp_path / "saved", "en", "de", tmp_path / "out")
    check(tmp_path / "out", "train", DE, EN)
    assert manifest["columns"] == {"src": "translation.en", "tgt": "translation.de"}


def test_language_columns_folder_of_jsonl(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "corpus" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "corpus" / "validation.jsonl", columns(DE[:1], EN[:1]))
    manifest = download(str(tmp_path / "corpus"), "de", "en", tmp_path / "out")
    check(tmp_path / "out", "train", DE, EN)
    check(tmp_path / "out", "val", DE[:1], EN[:1])
    assert manifest["source"] == "folder"
    assert manifest["columns"] == {"src": "de", "tgt": "en"}
    assert manifest["builder"] == "json"


def test_no_progress_bar_frames_off_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`datasets` draws "Generating train split" bars; written to a log file (stderr not a terminal)
    they are only noise, so they are off there, and left as the caller had them afterwards."""
    write_jsonl(tmp_path / "d" / "train.jsonl", columns(DE, EN))
    download(tmp_path / "d", "de", "en", tmp_path / "out")
    err = capsys.readouterr().err
    assert "Generating" not in err and "\r" not in err
    assert not datasets.are_progress_bars_disabled()


def test_csv_glob_keeps_other_split_names_and_na_text(tmp_path: Path) -> None:
    de, en = [*DE, "NA"], [*EN, "null"]
    Dataset.from_dict({"de": de, "en": en}).to_csv(tmp_path / "train.csv", index=False)
    Dataset.from_dict({"de": DE[:1], "en": EN[:1]}).to_csv(tmp_path / "test_2016_flickr.csv", index=False)
    manifest = download(str(tmp_path / "*.csv"), "de", "en", tmp_path / "out")
    check(tmp_path / "out", "train", de, en)
    check(tmp_path / "out", "test_2016_flickr", DE[:1], EN[:1])
    assert manifest["source"] == "files"
    assert set(manifest["data_files"]) == {"train", "test_2016_flickr"}


def test_tsv_with_quotes(tmp_path: Path) -> None:
    de, en = ['"Halt!", rief er.', "Gut"], ['"Stop!" he shouted.', 'A "good" one']
    (tmp_path / "dev.tsv").write_text("de\ten\n" + "".join(f"{d}\t{e}\n" for d, e in zip(de, en)), encoding="utf-8")
    download(str(tmp_path / "dev.tsv"), "de", "en", tmp_path / "out")
    check(tmp_path / "out", "val", de, en)


def test_parquet_single_files(tmp_path: Path) -> None:
    Dataset.from_dict({"de": DE, "en": EN}).to_parquet(tmp_path / "validation.parquet")
    Dataset.from_dict({"de": DE[:2], "en": EN[:2]}).to_parquet(tmp_path / "corpus.parquet")
    assert download(str(tmp_path / "validation.parquet"), "de", "en", tmp_path / "a")["splits"]["val"]["lines"] == 3
    check(tmp_path / "a", "val", DE, EN)
    download(str(tmp_path / "corpus.parquet"), "de", "en", tmp_path / "b")  # no split in the name: train
    check(tmp_path / "b", "train", DE[:2], EN[:2])


def test_user_named_columns(tmp_path: Path) -> None:
    rows = [{"id": i, "source": d, "target": e} for i, (d, e) in enumerate(zip(DE, EN))]
    write_jsonl(tmp_path / "train.jsonl", rows)
    path = str(tmp_path / "train.jsonl")
    manifest = download(path, "de", "en", tmp_path / "out", columns=("source", "target"))
    check(tmp_path / "out", "train", DE, EN)
    assert manifest["columns"] == {"src": "source", "tgt": "target"}
    with pytest.raises(CorpusError, match="no column 'src'; columns found: id, source, target"):
        download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out", columns=("src", "target"))
    with pytest.raises(CorpusError, match="give both"):
        download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out", columns=("source", None))


def test_streaming_writes_the_same_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "corpus" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "corpus" / "validation.jsonl", columns(DE[:2], EN[:2]))
    plain = download(str(tmp_path / "corpus"), "de", "en", tmp_path / "plain")
    streamed = download(str(tmp_path / "corpus"), "de", "en", tmp_path / "streamed", streaming=True)
    for name in ("train.de", "train.en", "val.de", "val.en"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    assert streamed["streaming"] is True
    assert {k: v["lines"] for k, v in streamed["splits"].items()} == {k: v["lines"] for k, v in plain["splits"].items()}
    assert streamed["splits"]["train"]["fingerprint"] is None


def test_line_breaks_inside_a_sentence_keep_files_aligned(tmp_path: Path) -> None:
    de = ["eins\nzwei", "drei\r\nvier", "fünf\rsechs", "sieben\u2028acht", "neun"]
    en = ["one", "two", "three", "four\n", "nine"]
    translation(de, en).save_to_disk(tmp_path / "saved")
    manifest = download(tmp_path / "saved", "de", "en", tmp_path / "out")
    one_line_de = ["eins zwei", "drei vier", "fünf sechs", "sieben acht", "neun"]
    check(tmp_path / "out", "train", one_line_de, ["one", "two", "three", "four", "nine"])
    for lang in ("de", "en"):  # every line reader agrees, not only ours
        assert len((tmp_path / "out" / f"train.{lang}").read_text(encoding="utf-8").splitlines()) == 5
    assert manifest["line_breaks_replaced"] == 5
    assert manifest["splits"]["train"]["lines"] == 5


def test_nul_characters_are_removed_so_that_preprocess_reads_the_files(tmp_path: Path) -> None:
    de, en = ["ei\x00ns", "zwei", "drei"], ["one", "\x00two\x00", "three"]
    translation(de, en).save_to_disk(tmp_path / "saved")
    manifest = download(tmp_path / "saved", "de", "en", tmp_path / "out")
    check(tmp_path / "out", "train", ["eins", "zwei", "drei"], ["one", "two", "three"])
    assert manifest["nul_characters_removed"] == 2 and manifest["line_breaks_replaced"] == 0
    for lang in ("de", "en"):  # the reader preprocess uses, which refuses a NUL byte
        assert (
            read_lines(tmp_path / "out" / f"train.{lang}")
            == (["eins", "zwei", "drei"], ["one", "two", "three"])[lang == "en"]
        )


def test_missing_path(tmp_path: Path) -> None:
    for name in (tmp_path / "nowhere", tmp_path / "nowhere.jsonl", f"{tmp_path}/*.csv", "./no/such/folder"):
        with pytest.raises(CorpusError, match="no such file or folder"):
            download(str(name), "de", "en", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_language_in_translation_column(tmp_path: Path) -> None:
    translation(DE, EN).save_to_disk(tmp_path / "saved")
    with pytest.raises(CorpusError, match=r"language 'fr' not in the translation column \(it has de, en\)"):
        download(tmp_path / "saved", "fr", "en", tmp_path / "out")


def test_schema_that_fits_no_pattern_lists_the_columns(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"id": 0, "source": "a", "target": "b"}])
    with pytest.raises(CorpusError, match="columns found: id, source, target; pass --src-column and --tgt-column"):
        download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out")


def test_ambiguous_schema(tmp_path: Path) -> None:
    rows = [{"translation": {"de": "a", "en": "b"}, "de": "c", "en": "d"}]
    write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(CorpusError, match="ambiguous schema"):
        download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out")
    download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out", columns=("de", "en"))
    check(tmp_path / "out", "train", ["c"], ["d"])


@pytest.mark.parametrize("streaming", [False, True])
def test_malformed_file_is_a_one_line_error(tmp_path: Path, streaming: bool) -> None:
    (tmp_path / "train.jsonl").write_text('{"de": "a", "en": "b"}\n{"de": broken\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="JSON parse error") as err:
        download(str(tmp_path / "train.jsonl"), "de", "en", tmp_path / "out", streaming=streaming)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("out/*"))


def test_hub_name_passes_subset_revision_and_streaming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "hub" / "train.jsonl", columns(DE, EN))
    calls = []
    real_load = datasets.load_dataset

    def fake_hub(path: str, **kwargs: object) -> object:
        calls.append((path, kwargs))
        return real_load(str(tmp_path / "hub"), streaming=kwargs["streaming"])

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    monkeypatch.setattr(download_module, "_hub_commit", lambda name, revision: "0123abcd")
    manifest = download("someone/corpus", "de", "en", tmp_path / "out", subset="de-en", revision="v1", streaming=True)
    assert calls == [("someone/corpus", {"name": "de-en", "revision": "v1", "streaming": True})]
    check(tmp_path / "out", "train", DE, EN)
    assert (manifest["source"], manifest["commit"], manifest["subset"], manifest["revision"]) == (
        "hub",
        "0123abcd",
        "de-en",
        "v1",
    )


def test_hub_name_offline_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="cannot load 'someone/not-here'") as err:
        download("someone/not-here", "de", "en", tmp_path / "out")
    assert "\n" not in str(err.value)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DatasetDict({"train": translation(DE, EN), "validation": translation(DE[:1], EN[:1])}).save_to_disk(tmp_path / "s")
    flags = ["--src", "de", "--tgt", "en", "--out", str(tmp_path / "o")]
    assert main(["download", "--dataset", str(tmp_path / "s"), *flags]) == 0
    assert "train 3, val 1" in capsys.readouterr().out
    check(tmp_path / "o", "val", DE[:1], EN[:1])
    assert main(["download", "--dataset", str(tmp_path / "nope"), *flags]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("streaming", [False, True])
def test_a_new_download_replaces_the_old_one_whole(tmp_path: Path, streaming: bool) -> None:
    write_jsonl(tmp_path / "a" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "a" / "validation.jsonl", columns(DE[:1], EN[:1]))
    write_jsonl(tmp_path / "a" / "test.jsonl", columns(DE[1:], EN[1:]))
    out = tmp_path / "out"
    download(str(tmp_path / "a"), "de", "en", out)
    write_jsonl(tmp_path / "b" / "train.jsonl", columns(DE[:2], EN[:2]))  # no test split
    write_jsonl(tmp_path / "b" / "validation.jsonl", columns(DE[2:], EN[2:]))
    manifest = download(str(tmp_path / "b"), "de", "en", out, streaming=streaming)
    check(out, "train", DE[:2], EN[:2])
    check(out, "val", DE[2:], EN[2:])
    assert not (out / "test.de").exists() and not (out / "test.en").exists()  # the old download's test split went
    assert sorted(manifest["splits"]) == ["train", "val"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_jsonl(tmp_path / "c" / "train.jsonl", columns(DE, EN))
    (tmp_path / "c" / "test.jsonl").write_text('{"de": "a", "en": "b"}\n{"de": broken\n', encoding="utf-8")
    with pytest.raises(CorpusError):
        download(str(tmp_path / "c"), "de", "en", out, streaming=streaming)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # a failed download changes nothing


def test_the_reason_follows_the_whole_chain_on_one_line() -> None:
    try:
        try:
            raise ValueError("Couldn't cast\nbecause column names don't match")
        except ValueError:
            raise RuntimeError("Config name is missing.\nPick one of the available configs: ['a', 'b']")  # noqa: B904
    except RuntimeError as err:
        reason = download_module._reason(err)
    assert "\n" not in reason
    assert "the available configs: ['a', 'b']" in reason and "column names don't match" in reason


def test_flags_the_download_would_ignore_and_one_language_twice_are_refused(tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "pairs.jsonl", columns(DE, EN))
    translation(DE, EN).save_to_disk(tmp_path / "saved")
    base = ["download", "--src", "de", "--tgt", "en", "--out", str(tmp_path / "out")]
    capsys.readouterr()  # save_to_disk's progress bars
    cases = [
        (["--dataset", str(tmp_path / "pairs.jsonl"), "--val-seed", "7"], "--val-seed 7 would be ignored"),
        (["--dataset", str(tmp_path / "saved"), "--streaming"], "--streaming applies to Hub datasets"),
        (["--dataset", str(tmp_path / "pairs.jsonl"), "--tgt", "de"], "--src and --tgt are both 'de'"),
    ]
    for flags, says in cases:
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


def test_a_second_download_into_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    """Two downloads into one folder mixed one's files with the other's manifest (both exit 0)."""
    import subprocess
    import sys

    from seq2seq.errors import RunFolderError

    write_jsonl(tmp_path / "pairs.jsonl", columns(DE, EN))
    hold = (
        "import sys, time; from seq2seq.runlock import RunLock; "
        "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process downloading there
        with pytest.raises(RunFolderError, match="in use by another seq2seq process"):
            download(str(tmp_path / "pairs.jsonl"), "de", "en", tmp_path / "out")
    finally:
        holder.kill()
        holder.wait()
    download(str(tmp_path / "pairs.jsonl"), "de", "en", tmp_path / "out")  # free again
    check(tmp_path / "out", "train", DE, EN)


def test_a_download_of_another_pair_or_a_damaged_manifest_is_refused_before_any_file_changes(tmp_path: Path) -> None:
    """de-en then fr-en into one folder replaced train.en and kept train.de (misaligned, exit 0); with a
    damaged manifest the old splits were not known and stayed beside the new ones."""
    write_jsonl(tmp_path / "a" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "a" / "test.jsonl", columns(DE[:1], EN[:1]))
    write_jsonl(tmp_path / "b" / "train.jsonl", [{"fr": f"f{i}", "en": f"e{i}"} for i in range(2)])
    out = tmp_path / "out"
    download(str(tmp_path / "a"), "de", "en", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(CorpusError, match="holds a de-en download .* a fr-en download would leave its files"):
        download(str(tmp_path / "b"), "fr", "en", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for damaged in (b"{", b"[1]", b'{"a": 1}', b"\xff\xfe"):
        (out / "manifest.json").write_bytes(damaged)
        with pytest.raises(CorpusError, match="manifest.json cannot be read"):
            download(str(tmp_path / "a"), "de", "en", out)
    (out / "manifest.json").write_bytes(before["manifest.json"])
    write_jsonl(tmp_path / "c" / "train.jsonl", columns(DE[:2], EN[:2]))
    download(str(tmp_path / "c"), "en", "de", out)  # the same two languages the other way round: replaced whole
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["manifest.json", "train.de", "train.en"]
    check(out, "train", DE[:2], EN[:2])


def test_the_users_own_split_files_are_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder holding the user's own {split}.{lang} files and no manifest had them overwritten."""
    write_jsonl(tmp_path / "a" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "a" / "test2016.jsonl", columns(DE[:1], EN[:1]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.en").write_text("mine\n", encoding="utf-8")
    flags = ["download", "--dataset", str(tmp_path / "a" / "*.jsonl"), "--src", "de", "--tgt", "en", "--out", str(out)]
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'train.en'} is not a file of an earlier download" in err[0], err
    assert (out / "train.en").read_text(encoding="utf-8") == "mine\n" and not (out / "train.de").exists()
    (out / "train.en").unlink()
    (out / "test2016.en").write_text("mine too\n", encoding="utf-8")  # a split name only the dataset tells
    assert main(flags) == 2
    assert f"{out / 'test2016.en'} is not a file of an earlier download" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.name != ".lock") == ["test2016.en"]


@pytest.mark.parametrize("name", ["newstest2014.jsonl", "devtest.jsonl"])
def test_a_file_of_a_glob_whose_name_names_no_split_is_refused(tmp_path: Path, name: str, capsys) -> None:
    """Such a file was merged into train (test sentences trained on, exit 0)."""
    write_jsonl(tmp_path / "c" / "train.jsonl", columns(DE, EN))
    write_jsonl(tmp_path / "c" / name, columns(DE[:1], EN[:1]))
    flags = ["download", "--dataset", str(tmp_path / "c" / "*.jsonl"), "--src", "de", "--tgt", "en"]
    assert main([*flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'c' / name}: its name names no split" in err[0], err
    assert not (tmp_path / "out").exists()
    assert main(["download", "--dataset", str(tmp_path / "c" / name), *flags[3:], "--out", str(tmp_path / "o")]) == 0
    check(tmp_path / "o", "train", DE[:1], EN[:1])  # one file alone is still the train split


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([{"de": "H", "en": "d"}, {"de": {"w": "H"}, "en": "d"}], "split 'train', row 2: column 'de' holds dict"),
        ([{"de": "a", "en": "b"}] * 2 + [{"de": "c", "en": 7}], "split 'train', row 3: column 'en' holds int"),
        ([{"translation": "hello"}], "split 'train', row 1: column 'translation' holds str"),
        ([{"translation": {"de": ["Hund"], "en": "dog"}}], "row 1: column 'translation.de' holds list"),
    ],
)
def test_a_value_that_is_not_text_is_refused_naming_split_row_and_column(tmp_path: Path, rows, says, capsys) -> None:
    """Such values were written as Python reprs ({'w': 'Hund'}), or were an AttributeError traceback."""
    write_jsonl(tmp_path / "train.jsonl", rows)
    flags = ["--src", "de", "--tgt", "en", "--out", str(tmp_path / "out")]
    assert main(["download", "--dataset", str(tmp_path / "train.jsonl"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    left = (
        sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock") if (tmp_path / "out").exists() else []
    )
    assert left == []  # no split file, and no staging folder (.download-PID) either


def test_one_column_for_both_sides_is_refused(tmp_path: Path, capsys) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": "a"}])
    flags = ["--src-column", "text", "--tgt-column", "text", "--src", "de", "--tgt", "en", "--out", str(tmp_path / "o")]
    assert main(["download", "--dataset", str(tmp_path / "train.jsonl"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--src-column and --tgt-column are both 'text'" in err[0], err
    assert not (tmp_path / "o").exists()


def test_shards_that_name_no_split_are_train_and_numbered_shards_join_their_split(tmp_path: Path) -> None:
    """A glob of part-0001/part-0002 was refused (only a split-less file beside named ones is), and
    train-00000-of-00002 / train-00001-of-00002 became two splits of those names."""
    write_jsonl(tmp_path / "s" / "part-0001.jsonl", columns(DE[:2], EN[:2]))
    write_jsonl(tmp_path / "s" / "part-0002.jsonl", columns(DE[2:], EN[2:]))
    flags = ["--src", "de", "--tgt", "en"]
    assert main(["download", "--dataset", str(tmp_path / "s" / "*.jsonl"), *flags, "--out", str(tmp_path / "o")]) == 0
    check(tmp_path / "o", "train", DE, EN)
    write_jsonl(tmp_path / "h" / "train-00000-of-00002.jsonl", columns(DE[:2], EN[:2]))
    write_jsonl(tmp_path / "h" / "train-00001-of-00002.jsonl", columns(DE[2:], EN[2:]))
    write_jsonl(tmp_path / "h" / "test_2016_flickr.jsonl", columns(DE[:1], EN[:1]))
    assert main(["download", "--dataset", str(tmp_path / "h" / "*.jsonl"), *flags, "--out", str(tmp_path / "p")]) == 0
    check(tmp_path / "p", "train", DE, EN)
    check(tmp_path / "p", "test_2016_flickr", DE[:1], EN[:1])


def test_own_files_of_a_split_the_download_does_not_write_are_kept(tmp_path: Path) -> None:
    """The user's own test.de/test.en beside a download of a train split alone were refused as if they would
    be overwritten."""
    write_jsonl(tmp_path / "one" / "train.jsonl", columns(DE, EN))
    out = tmp_path / "out"
    out.mkdir()
    (out / "test.de").write_text("mein Test\n", encoding="utf-8")
    (out / "test.en").write_text("my test\n", encoding="utf-8")
    flags = ["download", "--dataset", str(tmp_path / "one" / "train.jsonl"), "--src", "de", "--tgt", "en"]
    assert main([*flags, "--out", str(out)]) == 0
    check(out, "train", DE, EN)
    assert (out / "test.de").read_text(encoding="utf-8") == "mein Test\n"
