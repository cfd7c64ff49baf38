"""Models on the Hugging Face Hub: `seq2seq push` (the folder it would upload, the card, the upload
calls) and `hf://ORG/NAME` models downloaded through huggingface_hub's own code and cache.

The Hub cannot be reached from the test machines: a local stand-in of its file endpoint
(seq2seq/devtools/hub_standin.py) serves the folder `push --out` wrote, and HF_ENDPOINT points
huggingface_hub at it, so `hf_hub_download` runs as for a user (HEAD for the commit and ETag, GET,
blobs and snapshots in the cache, `HF_HUB_OFFLINE=1` reading that cache). In this process the same
settings are made on huggingface_hub.constants (which reads the environment once, at import)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from corpora import translate_in_a_fresh_process

from seq2seq.checkpoint import read_model
from seq2seq.cli import main
from seq2seq.config import DataConfig, DecodeConfig, ModelConfig, TrainConfig
from seq2seq.config_dict import from_dict
from seq2seq.config_toml import load_toml
from seq2seq.devtools.hub_standin import HubStandIn
from seq2seq.errors import EXIT_INTERRUPTED, HubError
from seq2seq.runfiles import read_metrics
from seq2seq.translation import export_model, load_translator
from seq2seq.translation.hub import model_file, parse_hub_path
from seq2seq.translation.onnx_model import OnnxTranslator
from seq2seq.translation.torch_engine import Translator

LINES = ["red cat", "big old dog", "", "tree house blue"]
SCORES = (
    "BLEU = 41.17 70.0/48.1/33.3/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 10 ref_len = 10)  "
    "(nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0)\n"
    "chrF = 63.50  (nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0)\n"
)


@pytest.fixture(scope="module")
def pushed(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`seq2seq push --dry-run --out` of the tiny run's best.pt, with a test score file."""
    root = tmp_path_factory.mktemp("push")
    (root / "scores.txt").write_text(SCORES, encoding="utf-8")
    argv = ["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny", "--dry-run",
            "--out", str(root / "repo"), "--bleu-file", f"test2016={root / 'scores.txt'}"]  # fmt: skip
    assert main(argv) == 0
    return root / "repo"


@pytest.fixture
def hub(pushed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubStandIn:
    """The pushed folder served as me/tiny; huggingface_hub (here and in child processes) pointed at
    it, with an empty cache of its own and no token."""
    from huggingface_hub import constants

    with HubStandIn({"me/tiny": pushed}) as standin:
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
        _point(monkeypatch, standin)
        yield standin


def _point(monkeypatch: pytest.MonkeyPatch, standin: HubStandIn) -> None:
    """huggingface_hub's endpoint: the stand-in."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    monkeypatch.setattr(constants, "ENDPOINT", standin.url)
    template = standin.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# --- push ------------------------------------------------------------------------------------------


def test_the_pushed_folder_holds_the_model_its_card_and_its_settings(run_dir: Path, pushed: Path) -> None:
    from huggingface_hub import ModelCard

    assert sorted(p.name for p in pushed.iterdir()) == ["README.md", "config.toml", "model.pt", "seq2seq.json"]
    assert (pushed / "model.pt").read_bytes() == (run_dir / "best.pt").read_bytes()
    assert json.loads((pushed / "seq2seq.json").read_text())["model"] == "model.pt"
    text = (pushed / "README.md").read_text(encoding="utf-8")
    card = ModelCard(text).data.to_dict()  # huggingface_hub reads the metadata back
    assert card["language"] == ["xx", "yy"] and card["license"] == "other" and card["pipeline_tag"] == "translation"
    assert "license: other  # fill in" in text  # left to the user, and said so
    bleu = card["model-index"][0]["results"][0]
    assert bleu["dataset"]["name"] == "test2016" and bleu["metrics"][0]["type"] == "bleu"
    assert bleu["metrics"][0]["value"] == 41.17
    assert bleu["metrics"][0]["config"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    assert "| test2016 | chrF | 63.50 |" in text
    records = read_metrics(run_dir / "metrics.jsonl")  # the validation of best.pt's update, with its signature
    saved = read_model(run_dir / "best.pt")
    valid = next(r for r in records["valid"] if r["step"] == saved.step)
    signature = records["selection"][-1]["val_bleu_signature"].replace("|", "\\|")
    assert f"(update {saved.step}) | BLEU | {valid['val_bleu']:.2f} | `{signature}` |" in text
    assert "seq2seq train --config config.toml --data DATA --src xx --tgt yy --out RUN" in text
    assert f"DATA `{json.loads((run_dir / 'preprocess.json').read_text())['data_dir']}`" in text
    tables = load_toml(pushed / "config.toml", ("data", "model", "train"))  # the checkpoint's settings, whole
    for name, cls, values in (("data", DataConfig, saved.data_config), ("model", ModelConfig, saved.model_config),
                              ("train", TrainConfig, saved.train_config)):  # fmt: skip
        assert from_dict(cls, tables[name]) == from_dict(cls, values)


def test_a_card_says_what_is_not_recorded_and_takes_a_licence(run_dir: Path, tmp_path: Path, capsys) -> None:
    lone = tmp_path / "lone.pt"  # a checkpoint away from its run folder, no scores
    lone.write_bytes((run_dir / "best.pt").read_bytes())
    assert main(["push", "--checkpoint", str(lone), "--repo", "me/lone", "--dry-run", "--license", "cc-by-4.0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing uploaded (--dry-run): hf://me/lone would get model.pt, README.md, seq2seq.json")
    assert "license: cc-by-4.0\n" in out and "No score is recorded" in out and "| BLEU |" not in out
    assert "Not recorded with this file" in out  # the data: no run folder


def test_push_uploads_the_staged_files_in_one_commit(
    hub: HubStandIn, pushed: Path, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = _recording_api(monkeypatch, present=[".gitattributes"])
    argv = ["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny", "--private", "--revision", "v1"]
    assert main(argv) == 2  # no token: one line, before any work
    assert capsys.readouterr().err == (
        "seq2seq push: error: hf://me/tiny: no Hugging Face token: log in with `hf auth login` or set HF_TOKEN "
        "(--dry-run --out DIR writes the files without uploading)\n"
    )
    assert calls == []
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    bleu = ["--bleu-file", f"test2016={pushed.parent / 'scores.txt'}"]
    assert main([*argv, *bleu]) == 0
    assert capsys.readouterr().out.startswith("uploaded model.pt, README.md, seq2seq.json, config.toml to hf://me/tiny")
    assert [c[0] for c in calls] == ["create_repo", "create_branch", "list_repo_files", "create_commit"]
    assert calls[0][2] == {"private": True, "exist_ok": True} and calls[1][2] == {"branch": "v1", "exist_ok": True}
    commit = calls[3][2]
    assert commit["revision"] == "v1" and commit["commit_message"] == "seq2seq push: model.pt"
    assert commit["deleted"] == []
    assert commit["files"] == {p.name: p.read_bytes() for p in pushed.iterdir()}  # what --out wrote is uploaded


def test_a_card_counts_tied_weights_once_as_training_logged(run_dir: Path, tmp_path: Path, capsys) -> None:
    """out.weight and decoder.embed.weight are one tensor (tie_embeddings): the card counted it twice."""
    from seq2seq.checkpoint import load_checkpoint, save_checkpoint

    logged = re.search(r"model: ([\d,]+) parameters", (run_dir / "train.log").read_text()).group(1)
    weights = read_model(run_dir / "best.pt").state_dict
    assert weights["out.weight"].data_ptr() == weights["decoder.embed.weight"].data_ptr()  # one storage
    ckpt = load_checkpoint(run_dir / "best.pt")  # and a file holding the tied weight as two copies
    ckpt["model"] = {name: tensor.clone() for name, tensor in ckpt["model"].items()}
    save_checkpoint(tmp_path / "copies.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    for model in (run_dir / "best.pt", tmp_path / "copies.pt"):
        assert main(["push", "--checkpoint", str(model), "--repo", "me/tiny", "--dry-run"]) == 0
        assert f"\n- parameters: {logged}\n" in capsys.readouterr().out


def test_a_card_names_averaged_files_from_the_hub_cache_as_hf_models(run_dir: Path, tmp_path: Path, capsys) -> None:
    """Files averaged before `average` recorded hf:// names hold the cache's paths: the card gives the model."""
    from seq2seq.checkpoint import load_checkpoint, save_checkpoint

    commit = "0123456789abcdef0123456789abcdef01234567"
    cached = f"/home/u/.cache/huggingface/hub/models--me--tiny/snapshots/{commit}/model.pt"
    ckpt = load_checkpoint(run_dir / "best.pt") | {"averaged": [cached, "runs/a/step_100.pt"]}
    save_checkpoint(tmp_path / "avg.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    assert main(["push", "--checkpoint", str(tmp_path / "avg.pt"), "--repo", "me/avg", "--dry-run"]) == 0
    assert f"average of 2 checkpoints: `hf://me/tiny@{commit}/model.pt`, `runs/a/step_100.pt`\n" in (
        capsys.readouterr().out
    )


def test_dry_run_refuses_the_flags_of_an_upload(run_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny", "--dry-run", "--out",
            str(tmp_path / "repo")]  # fmt: skip
    assert _error([*base, "--private"], capsys) == (
        "seq2seq push: error: --private: it applies to an upload, and --dry-run uploads nothing: leave it out, or "
        "drop --dry-run"
    )
    assert _error([*base, "--revision", "v1", "--commit-message", "m"], capsys).startswith(
        "seq2seq push: error: --revision, --commit-message: they apply to an upload"
    )
    assert not (tmp_path / "repo").exists()


def _run_copy(run_dir: Path, where: Path, **train: object) -> Path:
    """A copy of the tiny run folder whose recorded [train] settings are changed by `train`."""
    shutil.copytree(run_dir, where, ignore=shutil.ignore_patterns("*.pt", ".lock"))
    settings = json.loads((where / "config.json").read_text())
    settings["train"].update(train)
    (where / "config.json").write_text(json.dumps(settings))
    return where


def _with_manifest(exported: Path, out: Path, **changes: object) -> Path:
    from seq2seq.translation.onnx_model import MANIFEST

    with zipfile.ZipFile(exported) as z, zipfile.ZipFile(out, "w") as new:
        for name in z.namelist():  # the manifest stays the first member
            data = json.dumps(json.loads(z.read(name)) | changes).encode() if name == MANIFEST else z.read(name)
            new.writestr(name, data)
    return out


def test_a_run_folder_of_another_run_is_refused_not_put_on_the_card(run_dir: Path, tmp_path: Path, capsys) -> None:
    """Two seeds of one recipe share their SentencePiece models: the card took the other run's validation
    BLEU and stop; the run's recorded settings now have to be the model file's."""
    seed = read_model(run_dir / "best.pt").train_config["seed"]
    other = _run_copy(run_dir, tmp_path / "seed2", seed=seed + 1)
    push = ["push", "--repo", "me/tiny", "--dry-run", "--checkpoint"]
    assert _error([*push, str(run_dir / "best.pt"), "--run", str(other)], capsys) == (
        f"seq2seq push: error: --run {other}: not the run of {run_dir / 'best.pt'}: best.pt was trained with seed "
        f"{seed} (the run: {seed + 1}): name its own run folder, or leave --run out"
    )
    shutil.copy(run_dir / "best.pt", other / "best.pt")  # the folder the checkpoint lies in: refused alike
    assert "best.pt was trained with seed" in _error([*push, str(other / "best.pt")], capsys)
    lr = _run_copy(run_dir, tmp_path / "lr", lr=0.5)  # any setting, not only the seed
    assert "was trained with lr 0.01 (the run: 0.5)" in _error([*push, str(run_dir / "best.pt"), "--run", str(lr)],
                                                                capsys)  # fmt: skip
    # an ONNX file records its model settings and trained updates: matched on those, and on a future export
    # that records its data and train settings (the manifest's data_config, train_config), on everything
    exported = export_model(run_dir / "best.pt", tmp_path / "model.onnx.zip")
    steps = _with_manifest(exported, tmp_path / "steps.onnx.zip", trained_steps=10**6)
    assert "steps.onnx.zip was trained 1,000,000 updates, the run records 60 at most" in _error(
        [*push, str(steps), "--run", str(run_dir)], capsys
    )
    saved = read_model(run_dir / "best.pt")
    full = _with_manifest(exported, tmp_path / "full.onnx.zip", data_config=saved.data_config,
                          train_config=saved.train_config)  # fmt: skip
    assert "full.onnx.zip was trained with seed" in _error([*push, str(full), "--run", str(other)], capsys)
    assert main([*push, str(full), "--run", str(run_dir)]) == 0
    card = capsys.readouterr().out
    assert f"training's validation of the checkpoint exported (update {saved.step})" in card
    assert "seq2seq train --config config.toml" in card and "The run stopped after 60 updates" in card


def _on_own_data(run_dir: Path, where: Path, dataset: str) -> tuple[Path, Path]:
    """A copy of the tiny run (best.pt too) prepared from a copy of its data folder, which a `seq2seq download`
    of the Hub dataset `dataset` wrote (its manifest.json): (run, data)."""
    run, data = where / "run", where / "data"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns(".lock"))
    manifest = json.loads((run / "preprocess.json").read_text())
    shutil.copytree(manifest["data_dir"], data)  # copy2: the recorded sizes and modification times stay true
    (run / "preprocess.json").write_text(json.dumps(manifest | {"data_dir": str(data.resolve())}))
    _download_manifest(data, dataset)
    return run, data


def _download_manifest(data: Path, dataset: str) -> None:
    splits = {split: {"from_split": hub, "lines": 1} for split, hub in (("train", "train"), ("val", "validation"),
                                                                       ("test", "test"))}  # fmt: skip
    (data / "manifest.json").write_text(json.dumps({"dataset": dataset, "source": "hub", "src": "xx", "tgt": "yy",
                                                    "splits": splits}))  # fmt: skip


def test_the_card_names_the_dataset_the_run_was_prepared_from_or_none(run_dir: Path, tmp_path: Path, capsys) -> None:
    """The card described the data folder as it was at push time: a download of c2 into it after training on c1
    named c2; a damaged or foreign manifest.json was a traceback (JSONDecodeError, KeyError, ...)."""
    run, data = _on_own_data(run_dir, tmp_path, "me/c1")
    push = ["push", "--checkpoint", str(run / "best.pt"), "--repo", "me/tiny", "--dry-run"]
    assert main(push) == 0
    card = capsys.readouterr().out
    assert "from hub dataset `me/c1`" in card and "datasets:\n- me/c1\n" in card and "dataset: not given" not in card
    for damaged in (b"{", b"[1]", b'{"a": 1}', b"\xff\xfe"):
        (data / "manifest.json").write_bytes(damaged)
        assert main(push) == 0, damaged
        card = capsys.readouterr().out
        assert f"- dataset: not given: `{data / 'manifest.json'}` cannot be read (" in card, damaged
        assert "datasets:" not in card and "written by `seq2seq download`" not in card
    (data / "train.xx").write_text((data / "train.xx").read_text() + "one more line\n")  # a download of c2 there
    _download_manifest(data, "me/c2")
    assert main(push) == 0
    card = capsys.readouterr().out
    assert f"- dataset: not given: the data folder changed since the run was prepared ({data / 'train.xx'} changed" in (
        card
    )
    assert "me/c2" not in card and "me/c1" not in card


def test_a_score_is_of_the_training_dataset_only_on_one_of_its_splits(run_dir: Path, tmp_path: Path, capsys) -> None:
    """model-index gave every --bleu-file score the training dataset as its dataset, newstest2014 too."""
    from huggingface_hub import ModelCard

    run, _ = _on_own_data(run_dir, tmp_path, "me/c1")
    (tmp_path / "scores.txt").write_text(SCORES, encoding="utf-8")
    out = tmp_path / "repo"
    assert main(["push", "--checkpoint", str(run / "best.pt"), "--repo", "me/tiny", "--dry-run", "--out", str(out),
                 "--bleu-file", f"test={tmp_path / 'scores.txt'}", "--bleu-file", f"val={tmp_path / 'scores.txt'}",
                 "--bleu-file", f"newstest2014={tmp_path / 'scores.txt'}"]) == 0  # fmt: skip
    results = ModelCard((out / "README.md").read_text(encoding="utf-8")).data.to_dict()["model-index"][0]["results"]
    datasets = {(r["dataset"]["name"], r["dataset"]["type"], r["dataset"].get("split")) for r in results}
    assert datasets == {("test", "me/c1", "test"), ("val", "me/c1", "validation"),  # the Hub's own split name
                        ("newstest2014", "newstest2014", None)}  # fmt: skip


def test_a_score_file_is_named_on_the_card_and_must_be_signed(run_dir: Path, tmp_path: Path, capsys) -> None:
    """The card's test scores had no provenance, and a score line without its signature was dropped silently;
    NAME=FILE split at the last '=', so a FILE in a folder such as lr=0.1 was misread."""
    import hashlib

    folder = tmp_path / "lr=0.1"
    folder.mkdir()
    (folder / "test.scores").write_text(SCORES, encoding="utf-8")
    sha = hashlib.sha256(SCORES.encode()).hexdigest()
    push = ["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny", "--dry-run", "--bleu-file"]
    for spec, name in ((f"test2016={folder / 'test.scores'}", "test2016"), (str(folder / "test.scores"), "test")):
        assert main([*push, spec]) == 0, spec
        card = capsys.readouterr().out
        assert f"| {name} | BLEU | 41.17 |" in card
        assert f"- {name}: from `test.scores` (SHA-256 `{sha}`), `seq2seq evaluate` output" in card
    (folder / "test.scores").write_text(SCORES.replace("  (nrefs:1|case:mixed|eff:yes|nc:6", "  (x"), encoding="utf-8")
    assert _error([*push, f"test={folder / 'test.scores'}"], capsys) == (
        f"seq2seq push: error: --bleu-file {folder / 'test.scores'}:2: a score without its sacreBLEU signature "
        "('(nrefs:...)' at the end of the line): write the file with `seq2seq evaluate --hyp HYP --ref REF > FILE`"
    )


def test_push_reads_digests_and_uploads_one_copy_of_the_model(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """push read the facts from one version of the file and uploaded the path re-opened later: a training
    process replacing best.pt meanwhile gave a card (SHA-256, facts) of one file and the bytes of another."""
    import hashlib

    import seq2seq.sources.hub as hub_module

    model, original = tmp_path / "best.pt", (run_dir / "best.pt").read_bytes()
    model.write_bytes(original)
    real = hub_module.read_facts

    def read_then_replaced(path: Path):
        facts = real(path)
        model.write_bytes(b"a newer checkpoint, written while push runs")
        return facts

    def read_then_renamed_over(path: Path):  # as training writes checkpoints: a new file renamed over it
        facts = real(path)
        (tmp_path / "new.pt").write_bytes(b"a newer checkpoint, written while push runs")
        os.replace(tmp_path / "new.pt", model)
        return facts

    monkeypatch.setattr(hub_module, "read_facts", read_then_renamed_over)
    out = tmp_path / "repo"
    assert main(["push", "--checkpoint", str(model), "--repo", "me/tiny", "--dry-run", "--out", str(out)]) == 0
    assert (out / "model.pt").read_bytes() == original
    assert f"SHA-256 `{hashlib.sha256(original).hexdigest()}`" in (out / "README.md").read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".seq2seq-push-")]  # the snapshot is gone
    model.write_bytes(original)  # written over in place (`cp` onto it): the snapshot, a hard link, changes too
    monkeypatch.setattr(hub_module, "read_facts", read_then_replaced)
    assert (
        main(["push", "--checkpoint", str(model), "--repo", "me/tiny", "--dry-run", "--out", str(tmp_path / "r2")]) == 2
    )


def test_push_takes_its_snapshot_as_a_link_beside_the_model(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Every push copied the model into the system's temporary folder first: a model of gigabytes did not
    fit a small /tmp (a RAM disk in places), even for --dry-run."""
    import seq2seq.sources.hub as hub_module

    model = tmp_path / "best.pt"
    model.write_bytes((run_dir / "best.pt").read_bytes())
    monkeypatch.setattr(hub_module.shutil, "copyfile", lambda *a, **k: pytest.fail("the model file was copied"))
    assert (
        main(["push", "--checkpoint", str(model), "--repo", "me/tiny", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    )


def test_push_out_replaces_an_earlier_push_whole(run_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """An earlier push's folder held model.pt and config.toml after a push of an ONNX model (two models,
    the settings of the one no longer pushed), and was rewritten file by file (an interruption left a
    card whose SHA-256 was not the model's)."""
    out = tmp_path / "repo"
    push = ["push", "--repo", "me/tiny", "--dry-run", "--out", str(out), "--checkpoint"]
    assert main([*push, str(run_dir / "best.pt")]) == 0
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(earlier) == ["README.md", "config.toml", "model.pt", "seq2seq.json"]
    exported = export_model(run_dir / "best.pt", tmp_path / "model.onnx.zip")
    synced = []

    def interrupted(fd: int) -> None:  # Ctrl-C once the model file is written, before the card is
        synced.append(fd)
        if len(synced) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", interrupted)
        assert main([*push, str(exported), "--run", str(run_dir)]) == EXIT_INTERRUPTED
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx.zip", "repo"]  # no staging folder left
    assert main([*push, str(exported), "--run", str(run_dir)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.toml", "model.onnx.zip", "seq2seq.json"]
    assert json.loads((out / "seq2seq.json").read_text())["model"] == "model.onnx.zip"
    capsys.readouterr()
    (out / "notes.md").write_text("mine")  # a file push does not write: refused, not lost
    assert _error([*push, str(run_dir / "best.pt")], capsys) == (
        f"seq2seq push: error: --out {out}: holds notes.md, which `seq2seq push` does not write, and the folder is "
        "replaced whole: move it out, or name another folder"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.toml",
        "model.onnx.zip",
        "notes.md",
        "seq2seq.json",
    ]


def test_an_upload_deletes_the_files_of_an_earlier_push_it_does_not_write(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    earlier = [".gitattributes", "README.md", "seq2seq.json", "model.onnx.zip", "config.toml", "notes.md"]
    calls = _recording_api(monkeypatch, present=earlier)
    assert main(["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("; removed model.onnx.zip of the earlier push")
    commit = calls[-1][2]
    assert commit["deleted"] == ["model.onnx.zip"] and set(commit["files"]) == {
        "model.pt", "README.md", "seq2seq.json", "config.toml"}  # fmt: skip
    calls = _recording_api(monkeypatch, present=[".gitattributes", "model.onnx.zip"])  # no push wrote it
    assert main(["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/tiny"]) == 0
    assert calls[-1][2]["deleted"] == []


def _recording_api(monkeypatch: pytest.MonkeyPatch, present: list[str]) -> list[tuple[str, str, dict]]:
    """huggingface_hub.HfApi replaced by one that records its calls (the Hub cannot be reached); the
    repository holds the files `present`."""
    import huggingface_hub
    from huggingface_hub import CommitOperationDelete

    calls: list[tuple[str, str, dict]] = []

    class Api:
        def create_repo(self, repo: str, **kw: object) -> None:
            calls.append(("create_repo", repo, kw))

        def create_branch(self, repo: str, **kw: object) -> None:
            calls.append(("create_branch", repo, kw))

        def list_repo_files(self, repo: str, **kw: object) -> list[str]:
            calls.append(("list_repo_files", repo, kw))
            return list(present)

        def create_commit(self, repo: str, operations: list, **kw: object) -> object:
            deleted = [op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)]
            files = {op.path_in_repo: op.path_or_fileobj for op in operations if op.path_in_repo not in deleted}
            # a file to upload is read during the call, as huggingface_hub does (push's snapshot is gone after it)
            files = {name: Path(c).read_bytes() if isinstance(c, str) else c for name, c in files.items()}
            calls.append(("create_commit", repo, {**kw, "files": files, "deleted": deleted}))
            return type("Info", (), {"commit_url": "https://huggingface.co/me/tiny/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    return calls


# --- hf:// models ----------------------------------------------------------------------------------


def test_hf_paths_parse_as_huggingface_hubs_own() -> None:
    assert parse_hub_path("hf://me/tiny") == parse_hub_path("me/tiny")
    where = parse_hub_path("hf://me/tiny@refs%2Fpr%2F1/sub/model.pt")
    assert (where.repo, where.revision, where.filename) == ("me/tiny", "refs/pr/1", "sub/model.pt")
    assert str(where) == "hf://me/tiny@refs%2Fpr%2F1/sub/model.pt"
    for bad in ("hf://me", "hf://me/", "hf://me/tiny@", "hf:///tiny"):
        with pytest.raises(HubError, match="not a Hugging Face Hub model path"):
            parse_hub_path(bad)
    assert parse_hub_path("HF://me/tiny/model.pt") == parse_hub_path("hf://me/tiny/model.pt")  # a scheme: any case
    for bad in ("hf://me/tiny/../model.pt", "hf://me/tiny/a/./model.pt", "hf://me/tiny/a//model.pt"):
        with pytest.raises(HubError, match="FILE must be a path inside the repository"):
            parse_hub_path(bad)


@pytest.mark.parametrize("command", ["average", "export"])
def test_an_hf_output_path_is_refused_not_written_as_a_local_folder(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    models = [str(run_dir / "best.pt"), str(run_dir / "last.pt")]
    argv = ["average", "--checkpoints", *models] if command == "average" else ["export", "--checkpoint", models[0]]
    assert main([*argv, "--out", "hf://me/tiny/model.pt"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"seq2seq {command}: error: hf://me/tiny/model.pt: {command} writes a local file; upload it with seq2seq push"
    ]
    assert not (tmp_path / "hf:").exists()


def test_push_out_to_an_hf_path_is_refused_not_written_as_a_local_folder(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """push --out hf://me/x wrote a local folder hf:/me/x."""
    monkeypatch.chdir(tmp_path)
    push = ["push", "--checkpoint", str(run_dir / "best.pt"), "--repo", "me/x", "--dry-run", "--out", "hf://me/x"]
    assert _error(push, capsys) == ("seq2seq push: error: hf://me/x: push --out writes a local folder (what it would "
                                    "upload); the repository is --repo")  # fmt: skip
    assert not (tmp_path / "hf:").exists()


def test_translate_downloads_through_the_cache_then_works_offline(
    hub: HubStandIn, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "in.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    expect = Translator.from_checkpoint(run_dir / "best.pt").translate(LINES, DecodeConfig())
    command = [sys.executable, "-m", "seq2seq", "translate", "--checkpoint", "hf://me/tiny", "--input",
               str(tmp_path / "in.txt"), "--quiet"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ, check=True)
    assert done.stdout.splitlines() == expect
    snapshot = tmp_path / "hf" / "hub" / "models--me--tiny" / "snapshots" / hub.commits["me/tiny"]
    assert (snapshot / "model.pt").resolve().read_bytes() == (run_dir / "best.pt").read_bytes()  # a cached blob
    asked = len(hub.requests)
    _offline(monkeypatch)  # here, not in a new process: that is a second torch import (seconds)
    assert main(command[3:]) == 0
    assert capsys.readouterr().out.splitlines() == expect and len(hub.requests) == asked  # from the cache alone


def test_the_model_is_fetched_at_the_commit_its_pointer_came_from(hub: HubStandIn, run_dir: Path) -> None:
    """seq2seq.json and the model it names were fetched against the moving branch one after the other: a push
    between the two paired one push's pointer with another push's model file."""
    path = model_file("hf://me/tiny")
    assert path.read_bytes() == (run_dir / "best.pt").read_bytes()
    commit = hub.commits["me/tiny"]
    assert {r.split()[1] for r in hub.requests if r.endswith("/seq2seq.json")} == {"/me/tiny/resolve/main/seq2seq.json"}
    models = [r.split()[1] for r in hub.requests if r.endswith("/model.pt")]
    assert models and set(models) == {f"/me/tiny/resolve/{commit}/model.pt"}  # not .../main/model.pt


def test_from_pretrained_and_every_command_take_hf_models(
    hub: HubStandIn, pushed: Path, run_dir: Path, tmp_path: Path, capsys
) -> None:
    expect = Translator.from_checkpoint(run_dir / "best.pt").translate(LINES, beam_size=3)
    commit = hub.commits["me/tiny"]
    for translator in (Translator.from_pretrained("me/tiny"), Translator.from_pretrained("hf://me/tiny"),
                       Translator.from_pretrained("me/tiny", revision=commit, filename="model.pt"),
                       Translator.from_pretrained(str(pushed)),  # the folder push --out wrote
                       load_translator("hf://me/tiny"),
                       load_translator([f"hf://me/tiny@{commit}/model.pt"])):  # fmt: skip
        assert isinstance(translator, Translator) and translator.translate(LINES, beam_size=3) == expect
    assert main(["average", "--checkpoints", "hf://me/tiny", str(run_dir / "last.pt"), "--out",
                 str(tmp_path / "avg.pt")]) == 0  # fmt: skip
    averaged, best, last = (read_model(p) for p in (tmp_path / "avg.pt", run_dir / "best.pt", run_dir / "last.pt"))
    for name, weight in averaged.state_dict.items():
        mean = (best.state_dict[name].double() + last.state_dict[name].double()) / 2
        assert torch.equal(weight, mean.to(weight.dtype))
    assert averaged.averaged == ["hf://me/tiny", str(run_dir / "last.pt")]  # as given, not the cache's path
    assert capsys.readouterr().out.startswith("averaged 2 checkpoints")
    assert main(["average", "--checkpoints", "hf://me/tiny", f"hf://me/tiny@{commit}", "--out",
                 str(tmp_path / "avg2.pt")]) == 2  # fmt: skip
    assert f"hf://me/tiny@{commit}: the same file as hf://me/tiny" in capsys.readouterr().err


def test_an_onnx_model_on_the_hub_translates_without_torch(
    hub: HubStandIn, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = export_model("hf://me/tiny", tmp_path / "export" / "model.onnx.zip")  # export takes hf:// too
    assert main(["push", "--checkpoint", str(exported), "--repo", "me/tiny-onnx", "--run", str(run_dir),
                 "--dry-run", "--out", str(tmp_path / "repo")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "repo" / "seq2seq.json").read_text())["model"] == "model.onnx.zip"
    card = (tmp_path / "repo" / "README.md").read_text(encoding="utf-8")
    assert "- onnx\n" in card and "an ONNX model exported from a seq2seq checkpoint (fp32)" in card
    # the export records the run's settings (since 2026-12-06): matched like a checkpoint, the run's numbers on the card
    assert (tmp_path / "repo" / "config.toml").exists() and "| BLEU |" in card
    assert "but not the seed or the other training settings" not in card and "## Training data\n\n- data folder" in card
    other = tmp_path / "other.onnx.zip"  # a file exported before: no seed, so the run's data only, said on the card
    with zipfile.ZipFile(exported) as z, zipfile.ZipFile(other, "w") as o:
        for name in z.namelist():
            data = z.read(name)
            if name == "seq2seq-onnx.json":
                data = json.dumps(
                    {k: v for k, v in json.loads(data).items() if k not in ("data_config", "train_config")}
                )
            o.writestr(name, data)
    assert main(["push", "--checkpoint", str(other), "--repo", "me/tiny-onnx", "--run", str(run_dir),
                 "--dry-run", "--out", str(tmp_path / "repo-old")]) == 0  # fmt: skip
    card_old = (tmp_path / "repo-old" / "README.md").read_text(encoding="utf-8")
    assert not (tmp_path / "repo-old" / "config.toml").exists() and "| BLEU |" not in card_old
    assert "but not the seed or the other training settings" in card_old
    with HubStandIn({"me/tiny-onnx": tmp_path / "repo"}) as onnx_hub:
        _point(monkeypatch, onnx_hub)
        out, imported_torch = translate_in_a_fresh_process("hf://me/tiny-onnx", tmp_path, LINES, beam_size=2)
        assert not imported_torch, "torch was imported"
        assert out == OnnxTranslator.load(exported).translate(LINES, beam_size=2)
        translator = Translator.from_pretrained("me/tiny-onnx")  # what load_translator gives for the file
    assert isinstance(translator, OnnxTranslator) and translator.translate(LINES, beam_size=2) == out


# --- failures: one line, exit status 2 ------------------------------------------------------------


def _error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def test_hub_failures_are_one_line_naming_the_repository(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run = ["translate", "--input", os.devnull, "--checkpoint"]
    assert _error([*run, "hf://me/tiny/nope.pt"], capsys) == (
        "seq2seq translate: error: hf://me/tiny: the repository holds no file 'nope.pt'"
    )
    assert _error([*run, "hf://me/other"], capsys).startswith(
        "seq2seq translate: error: hf://me/other: no such model repository on the Hugging Face Hub"
    )
    assert _error([*run, "hf://me/tiny@v9"], capsys) == (
        "seq2seq translate: error: hf://me/tiny@v9: the repository has no revision 'v9'"
    )
    assert _error(["export", "--checkpoint", "hf://me", "--out", str(tmp_path / "m.onnx.zip")], capsys) == (
        "seq2seq export: error: hf://me: not a Hugging Face Hub model path: write hf://ORG/NAME[@REVISION][/FILE]"
    )
    (hub.repos["me/tiny"] / "seq2seq.json").rename(tmp_path / "pointer.json")  # a repository push did not write
    try:
        assert _error([*run, "hf://me/tiny"], capsys).endswith(
            "hf://me/tiny: no seq2seq.json (which `seq2seq push` writes) to name the model file: name the file, "
            "e.g. hf://me/tiny/model.pt"
        )
    finally:
        (tmp_path / "pointer.json").rename(hub.repos["me/tiny"] / "seq2seq.json")


def test_offline_or_unreachable_is_one_line_naming_the_repository(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from huggingface_hub import constants

    cache = constants.HF_HUB_CACHE
    offline = (f"hf://me/tiny: cannot download seq2seq.json from the Hugging Face Hub ({hub.url}): offline mode is "
               f"on (HF_HUB_OFFLINE=1) and it is not in the local cache ({cache})")  # fmt: skip
    with monkeypatch.context() as m:
        _offline(m)
        assert (
            _error(["serve", "--checkpoint", "hf://me/tiny", "--port", "0"], capsys)
            == f"seq2seq serve: error: {offline}"
        )
        attention = [
            "attention",
            "--checkpoint",
            "hf://me/tiny",
            "--sentence",
            "red cat",
            "--out",
            str(tmp_path / "a.png"),
        ]
        assert _error(attention, capsys) == f"seq2seq attention: error: {offline}"
    hub.__exit__()  # the Hub gone: huggingface_hub retries (its waits skipped here), its warnings hidden, one line
    skip_waits = (
        "import sys, time; time.sleep = lambda s: None\nfrom seq2seq.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", skip_waits, "translate", "--checkpoint", "hf://me/tiny", "--input", os.devnull]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"seq2seq translate: error: hf://me/tiny: cannot download seq2seq.json from the "
                                  f"Hugging Face Hub ({hub.url}): cannot reach it (")  # fmt: skip
    assert done.stderr.endswith(f"retried) and it is not in the local cache ({cache})\n"), done.stderr


def test_hub_failures_are_one_line_with_huggingface_hub_0x_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub 0.x has no RemoteEntryNotFoundError (naming it was an AttributeError traceback for any
    failure) nor constants.is_offline_mode, and its LocalEntryNotFoundError (offline, not in the cache) is an
    EntryNotFoundError and an HfHubHTTPError too: its errors module and download, as 0.36 raises them."""
    import huggingface_hub
    from huggingface_hub import constants, errors

    class EntryNotFoundError(errors.HfHubHTTPError):  # 0.x: the remote one
        def __init__(self, message: str) -> None:
            Exception.__init__(self, message)

    class LocalEntryNotFoundError(EntryNotFoundError, FileNotFoundError, ValueError):
        pass

    raised: list[Exception] = []

    def download(repo_id: str, filename: str, revision: str | None = None) -> str:
        raise raised[-1]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)  # first: its module imports today's names
    monkeypatch.delattr(errors, "RemoteEntryNotFoundError")
    monkeypatch.setattr(errors, "EntryNotFoundError", EntryNotFoundError)
    monkeypatch.setattr(errors, "LocalEntryNotFoundError", LocalEntryNotFoundError)
    monkeypatch.delattr(constants, "is_offline_mode")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    raised.append(EntryNotFoundError("404 Client Error. Entry Not Found for url: .../nope.pt"))
    with pytest.raises(HubError) as err:
        model_file("hf://me/tiny/nope.pt")
    assert str(err.value) == "hf://me/tiny: the repository holds no file 'nope.pt'"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    raised.append(LocalEntryNotFoundError("Cannot find the requested files in the disk cache"))
    with pytest.raises(HubError) as err:
        model_file("hf://me/tiny")
    assert str(err.value) == (f"hf://me/tiny: cannot download seq2seq.json from the Hugging Face Hub "
                              f"({constants.ENDPOINT}): offline mode is on (HF_HUB_OFFLINE=1) and it is not in the "
                              f"local cache ({tmp_path / 'hub'})")  # fmt: skip


def test_local_paths_stay_as_they_are(run_dir: Path) -> None:
    assert model_file(run_dir / "best.pt") == run_dir / "best.pt"
    assert model_file(str(run_dir / "best.pt")) == run_dir / "best.pt"
