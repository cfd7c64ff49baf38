"""The recipe scripts end to end as a user runs them (bash, real `seq2seq` processes, tiny corpus)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from corpora import write_corpus

from seq2seq.metrics import score_files

ROOT = Path(__file__).resolve().parents[1]


def recipe_corpus(tmp_path: Path) -> Path:
    """The tiny corpus (6 test lines) under the Multi30k recipe's language pair, de and en."""
    data = write_corpus(tmp_path / "data", n_test=6)
    for lang, other in (("xx", "de"), ("yy", "en")):
        for split in ("train", "val", "test"):
            (data / f"{split}.{other}").write_text((data / f"{split}.{lang}").read_text())
    return data


def test_ablation_script_trains_each_variant_and_tabulates_val_scores(tmp_path: Path) -> None:
    data, out = write_corpus(tmp_path / "data", n_val=8), tmp_path / "ablation"
    env = dict(
        os.environ, PYTHON=sys.executable, DATA=str(data), SRC="xx", TGT="yy", OUT=str(out), STEPS="2",
        VARIANTS="baseline untied-embeddings joint-vocab-8000", JOBS="2", OMP_NUM_THREADS="1",
    )  # fmt: skip
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/ablation.sh")], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((out / "ablation.tsv").open(), delimiter="\t"))
    assert [r["variant"] for r in rows] == ["baseline", "untied-embeddings", "joint-vocab-8000"]
    assert rows[1]["flags"] == "--no-tie-embeddings"
    assert rows[2]["flags"] == "preprocess --joint-vocab --vocab-size 8000"
    assert '"joint_vocab": true' in (out / "joint-vocab-8000/preprocess.json").read_text()
    for row in rows:
        assert row["updates"] == "2"
        # the scores of the variant's own val translations against the val references (printed with 2 decimals)
        scores = score_files(out / row["variant"] / "val.hyp.yy", data / "val.yy", metrics=("bleu", "chrf"))
        assert float(row["val_bleu_beam5"]) == pytest.approx(scores.bleu, abs=0.0051)
        assert float(row["val_chrf"]) == pytest.approx(scores.chrf, abs=0.0051)
    # each variant is its own run from the same prepared data, scored on val (not test)
    assert (out / "baseline/val.hyp.yy").read_text().count("\n") == 8
    assert not (out / "baseline/test.hyp.yy").exists()
    configs = [(out / name / "config.json").read_text() for name in ("baseline", "untied-embeddings")]
    assert '"tie_embeddings": true' in configs[0] and '"tie_embeddings": false' in configs[1]


def test_ablation_script_rejects_an_unknown_variant(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), VARIANTS="baseline no-such-thing")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/ablation.sh")], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "unknown variant 'no-such-thing'" in proc.stderr


def standin_scripts(folder: Path, **standins: str) -> Path:
    """A copy of scripts/ in `folder` (a path with a space) with some scripts replaced by stand-ins (`name=body`,
    bash; the stand-in of multi30k.sh is `multi30k_sh`): the script under test runs as it is, fast."""
    scripts = folder / "re po/scripts"
    shutil.copytree(ROOT / "scripts", scripts)
    for name, body in standins.items():
        path = scripts / name.replace("_sh", ".sh")
        path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
        path.chmod(0o755)
    return scripts


STANDIN_PREPROCESS = """mkdir -p "$RUN/cache"; echo '{"data": {"test_split": "val"}}' > "$RUN/preprocess.json"
touch "$RUN/spm.src.model" "$RUN/spm.tgt.model"
"""
STANDIN_RESULT = """mkdir -p "$RUN"; echo '{"type": "train", "step": 2, "elapsed_s": 1.2}' > "$RUN/metrics.jsonl"
echo "x vs y (beam 5):"; echo "BLEU = 30.00 ..."; echo "chrF = 50.00"
"""


def test_ablation_runs_on_past_a_failed_variant_and_names_it_at_the_end(tmp_path: Path) -> None:
    """One failed variant ended the study silently (set -e with wait -n; grep under pipefail in the table)."""
    scripts = standin_scripts(tmp_path, preprocess_sh=STANDIN_PREPROCESS, multi30k_sh="""
[[ " $* " == *" --no-tie-embeddings "* ]] && { echo "seq2seq train: error: something broke" >&2; exit 2; }
""" + STANDIN_RESULT)  # fmt: skip
    out = tmp_path / "ab lation"
    env = dict(os.environ, OUT=str(out), JOBS="2", VARIANTS="untied-embeddings baseline dropout-0.1 vocab-8000")
    done = subprocess.run(["bash", str(scripts / "ablation.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    rows = list(csv.DictReader((out / "ablation.tsv").open(), delimiter="\t"))
    assert [(r["variant"], r["val_bleu_beam5"], r["updates"]) for r in rows] == [
        ("untied-embeddings", "?", "?"), ("baseline", "30.00", "2"), ("dropout-0.1", "30.00", "2"),
        ("vocab-8000", "30.00", "2"),
    ]  # fmt: skip
    assert "untied-embeddings  --no-tie-embeddings" in done.stdout  # the table is printed too
    assert done.stderr.splitlines() == [
        f"ablation.sh: 1 of 4 variants failed: untied-embeddings ({out}/untied-embeddings.log: seq2seq train: "
        "error: something broke)"
    ]


def test_ablation_refuses_a_base_prepared_for_another_test_split_up_front(tmp_path: Path) -> None:
    """BASE, documented, failed in every variant: preprocess.sh records the test split, and the variants train
    with --test-split val."""
    scripts = standin_scripts(tmp_path, multi30k_sh='echo ran >> "$OUT_LOG"\n' + STANDIN_RESULT)
    base, out = tmp_path / "my base", tmp_path / "out"
    base.mkdir()
    (base / "preprocess.json").write_text('{"data": {"test_split": "test"}}')
    env = dict(os.environ, OUT=str(out), BASE=str(base), VARIANTS="baseline", OUT_LOG=str(tmp_path / "ran"))
    done = subprocess.run(["bash", str(scripts / "ablation.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"BASE={base} is not prepared for the ablation (test split: test; the variants need val)" in done.stderr
    assert not out.exists() and not (tmp_path / "ran").exists()
    (base / "preprocess.json").write_text('{"data": {"test_split": "val"}}')  # as RUN=BASE TEST_SPLIT=val prepares
    for name in ("spm.src.model", "spm.tgt.model", "cache/x"):
        (base / name).parent.mkdir(exist_ok=True)
        (base / name).touch()
    done = subprocess.run(["bash", str(scripts / "ablation.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and (out / "baseline/cache/x").exists(), done.stderr


@pytest.mark.parametrize(
    ("knobs", "says"),
    [
        ({"JOBS": "abc"}, "JOBS gives the variants trained at once, a whole number from 1 to 64; got 'abc'"),
        ({"JOBS": "1e18"}, "got '1e18'"),
        ({"JOBS": "-1"}, "got '-1'"),
        ({"JOBS": "0"}, "got '0'"),
        ({"JOBS": "65"}, "got '65'"),
        ({"STEPS": "-1"}, "STEPS gives each variant's updates, a whole number from 1 to 1000000000000 (seq2seq train "
                          "--max-steps); got '-1'"),
        ({"STEPS": "0"}, "got '0'"),  # --max-steps 0 with MINUTES=0: no bound at all
        ({"STEPS": "1000000000001"}, "got '1000000000001'"),
        ({"STEPS": "1e3"}, "got '1e3'"),
    ],
)  # fmt: skip
def test_ablation_refuses_bad_jobs_and_steps_up_front(tmp_path: Path, knobs: dict, says: str) -> None:
    """JOBS=abc or 1e18 printed "[: abc: integer expression expected", started every variant at once and exited 0;
    JOBS=-1 or 0 passed silently; STEPS=-1 or 0 prepared the data and every variant failed (exit 1)."""
    ran = tmp_path / "ran"
    log = f'echo "$0 $*" >> "{ran}"\n'
    scripts = standin_scripts(tmp_path, preprocess_sh=STANDIN_PREPROCESS + log, multi30k_sh=log + STANDIN_RESULT)
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), VARIANTS="baseline dropout-0.1", **knobs)
    done = subprocess.run(["bash", str(scripts / "ablation.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith("ablation.sh: ") and says in done.stderr, done.stderr
    assert not out.exists() and not ran.exists()


def test_ablation_baseline_is_the_documented_recipe_not_the_short_budget_one(tmp_path: Path) -> None:
    """MINUTES=0 (ablation.sh: a run bounded by --max-steps) took multi30k.sh's short-budget branch (m < 10: lr
    6e-3) where docs/results.md says the baseline is the 15/60-minute recipe with dropout 0.3 (lr 2e-3). The real
    ablation.sh and multi30k.sh, with stand-ins for preprocessing, training and translation."""
    scripts = standin_scripts(tmp_path, preprocess_sh=STANDIN_PREPROCESS, translate_sh=STANDIN_RESULT,
                              train_sh='mkdir -p "$RUN"; echo "$*" > "$RUN/train.args"\n')  # fmt: skip
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(out), VARIANTS="baseline", STEPS="7")
    done = subprocess.run(["bash", str(scripts / "ablation.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + (out / "baseline.log").read_text()
    args = (out / "baseline/train.args").read_text().split()
    value = {flag: val for flag, val in zip(args, args[1:]) if flag.startswith("--")}  # a later flag wins
    assert (value["--lr"], value["--dropout"], value["--max-tokens"], value["--max-steps"]) == (
        "2e-3",
        "0.3",
        "4000",
        "7",
    )
    assert value["--max-minutes"] == "0"


def test_long_recipe_trains_both_directions_side_by_side(tmp_path: Path) -> None:
    data = recipe_corpus(tmp_path)
    prefix = tmp_path / "runs/long"
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(data), PREFIX=str(prefix), TEST_SPLIT="test",
               MINUTES="5", OMP_NUM_THREADS="1")  # fmt: skip
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/multi30k_long.sh"), "--max-steps", "2"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    for pair, tgt in (("de-en", "en"), ("en-de", "de")):
        assert (prefix.parent / f"long.{pair}/test.hyp.{tgt}").read_text().count("\n") == 6
        assert "== " + pair in proc.stdout
    assert proc.stdout.count("BLEU = ") == 2
    config = (prefix.parent / "long.en-de/config.json").read_text()
    assert '"threads": 1' in config and '"max_steps": 2' in config


def test_long_recipe_prints_both_directions_when_one_fails_and_exits_with_its_status(tmp_path: Path) -> None:
    """A failed direction hid the other's result and the real exit status (grep -A2 under pipefail)."""
    scripts = standin_scripts(tmp_path, multi30k_sh="""
[ "$SRC" = de ] && { echo "seq2seq train: error: something broke" >&2; exit 3; }
echo "x vs y (beam 5):"; echo "BLEU = 30.00"; echo "chrF = 50.00"; echo "TER = 40"
""")  # fmt: skip
    prefix = tmp_path / "long runs/m30k"
    env = dict(os.environ, PREFIX=str(prefix))
    done = subprocess.run(["bash", str(scripts / "multi30k_long.sh")], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == [
        f"== de-en ({prefix}.de-en.log)", "failed (exit 3): seq2seq train: error: something broke",
        f"== en-de ({prefix}.en-de.log)", "x vs y (beam 5):", "BLEU = 30.00", "chrF = 50.00",
    ]  # fmt: skip
    assert done.stderr.splitlines() == ["multi30k_long.sh: failed: de-en (exit 3)"]


def test_recipe_with_seeds_trains_one_model_per_seed_at_once_and_translates_with_their_ensemble(tmp_path: Path) -> None:
    data = recipe_corpus(tmp_path)
    run = tmp_path / "runs/m 30k"  # a space: the checkpoint list reached translate.sh split at it
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(data), RUN=str(run), TEST_SPLIT="test", MINUTES="15",
               SEEDS="7 8")  # fmt: skip
    env.pop("OMP_NUM_THREADS", None)  # nproc would answer with it
    script = ["bash", str(ROOT / "scripts/multi30k.sh")]
    proc = subprocess.run([*script, "--max-steps", "2"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    threads = max(1, os.cpu_count() // 2)
    for seed in (7, 8):
        config = (tmp_path / f"runs/m 30k.seed{seed}/config.json").read_text()
        assert f'"seed": {seed}' in config and f'"threads": {threads}' in config and '"max_steps": 2' in config
        assert '"max_tokens": 3000' in config and '"dropout": 0.2' in config  # the 15-minute settings, per model
        assert f"training seed {seed} in {run}.seed{seed}" in proc.stderr
    assert proc.stderr.count("trained 2 updates") == 2
    assert "an ensemble of 2 models loaded" in proc.stderr
    assert (run / "test.hyp.en").read_text().count("\n") == 6 and proc.stdout.count("BLEU = ") == 1
    # one seed given twice over is refused before any work
    proc = subprocess.run([*script, "--seed", "3"], env=dict(env, RUN=str(tmp_path / "other")), cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "SEEDS gives the seeds" in proc.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("seeds", "says"),
    [
        ("99999999999999999999 1", "SEEDS gives the seeds, whole numbers from 0 to 9223372036854775807 (seq2seq train "
                                   "--seed); got '99999999999999999999'"),
        ("9223372036854775808", "got '9223372036854775808'"),  # 2**63: one over train's bound
        ("-1 2", "got '-1'"),
        ("1e3 2", "got '1e3'"),
        ("1 1", "SEEDS gives seed 1 twice: each seed trains its own model in $RUN.seedS; give each once"),
        ("01 2 1", "SEEDS gives seed 1 twice"),  # one seed, one folder: 01 is 1
    ],
)  # fmt: skip
def test_recipe_refuses_bad_seeds_before_preparing_copying_or_training(tmp_path: Path, seeds: str, says: str) -> None:
    """SEEDS was checked by the trainings: '99999999999999999999 1' copied the run folder for both and trained seed 1
    for 15 minutes before failing; '1 1' made two trainings share one folder and log."""
    ran = tmp_path / "ran"
    standin = f'echo "$0 $*" >> "{ran}"\n'
    scripts = standin_scripts(tmp_path, preprocess_sh=standin, train_sh=standin, translate_sh=standin)
    run = tmp_path / "runs/m30k"
    run.mkdir(parents=True)
    (run / "preprocess.json").write_text("{}")  # prepared: the seeds' copies would be made from it
    env = dict(os.environ, RUN=str(run), SEEDS=seeds, PYTHON=sys.executable)  # as CI: no venv on PATH
    done = subprocess.run(["bash", str(scripts / "multi30k.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr[-2000:]
    assert not ran.exists() and sorted(p.name for p in run.parent.iterdir()) == ["m30k"]


def test_translate_script_writes_the_runs_test_output_only_for_the_test_split(run_dir: Path, tmp_path: Path) -> None:
    """INPUT=FILE goes to stdout, unscored (it replaced RUN's test output and was scored against the test
    references); CKPT without RUN writes beside the checkpoint, not into the default run folder; --beam-size is
    BEAM's (the flag won over the "(beam 5)" it printed)."""
    run, other = tmp_path / "run", tmp_path / "other"
    for folder in (run, other):
        folder.mkdir()
        (folder / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    data = run_dir.parent / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("RUN", "CKPT", "INPUT", "OUTPUT", "REF")}
    env.update(DATA=str(data), SRC="xx", TGT="yy", TEST_SPLIT="test", BEAM="1")

    def script(*args: str, **knobs: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/translate.sh"), "-q", *args], env={**env, **knobs},
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip

    done = script(RUN=str(run))
    assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr[-2000:]
    test_output = (run / "test.hyp.yy").read_bytes()
    (tmp_path / "mine.xx").write_text("a b c\n")
    done = script(RUN=str(run), INPUT=str(tmp_path / "mine.xx"))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1 and "BLEU" not in done.stdout, done.stdout
    assert (run / "test.hyp.yy").read_bytes() == test_output
    done = script(CKPT=str(other / "best.pt"))
    assert done.returncode == 0 and (other / "test.hyp.yy").is_file(), done.stderr[-2000:]
    done = script("--beam-size", "3", RUN=str(run))
    assert done.returncode == 2 and "BEAM gives the beam size" in done.stderr
    ref = str(data / "test.yy")  # a REF given and left unused (output to stdout, a missing file) was dropped
    done = script(RUN=str(run), INPUT=str(tmp_path / "mine.xx"), REF=ref)
    assert done.returncode == 2 and "REF=" in done.stderr and "set OUTPUT=FILE" in done.stderr, done.stderr
    done = script(RUN=str(run), REF=str(tmp_path / "no-such.yy"))
    assert done.returncode == 2 and "no such file" in done.stderr, done.stderr
    out = tmp_path / "mine.yy"
    (tmp_path / "one.yy").write_text("a b c\n")
    done = script(RUN=str(run), INPUT=str(tmp_path / "mine.xx"), OUTPUT=str(out), REF=str(tmp_path / "one.yy"))
    assert done.returncode == 0 and "BLEU" in done.stdout and out.is_file(), done.stderr[-2000:]


def test_translate_script_leaves_the_beam_to_a_config_unless_beam_is_set(run_dir: Path, tmp_path: Path) -> None:
    """translate.sh passed --beam-size 5 always, beating a --config's beam_size: `[decode] beam_size = 8, n_best = 8`
    failed with "n_best must be in [1, beam_size]" (now the values are named too)."""
    (tmp_path / "nbest.toml").write_text("[decode]\nbeam_size = 8\nn_best = 8\n")
    (tmp_path / "mine.xx").write_text("a b c\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RUN", "CKPT", "INPUT", "OUTPUT", "REF", "BEAM")}
    env.update(DATA=str(run_dir.parent / "data"), SRC="xx", TGT="yy", CKPT=str(run_dir / "best.pt"),
               INPUT=str(tmp_path / "mine.xx"))  # fmt: skip
    cmd = ["bash", str(ROOT / "scripts/translate.sh"), "-q", "--config", str(tmp_path / "nbest.toml")]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["0"] * 8  # beam 8's eight best
    done = subprocess.run(cmd, env=dict(env, BEAM="2"), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "n_best must be in [1, beam_size 2], got 8" in done.stderr, done.stderr
    # the test split, scored: the file's n_best 8 wrote 8 lines a sentence, then failed in scoring after the work
    scored = {k: v for k, v in env.items() if k != "INPUT"} | {"TEST_SPLIT": "test", "OUTPUT": str(tmp_path / "o.yy")}
    done = subprocess.run(cmd, env=scored, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "nbest.toml sets [decode] n_best = 8, whose lines are not one translation each" in done.stderr
    assert not (tmp_path / "o.yy").exists()  # refused before translating
    done = subprocess.run([*cmd, "--n-best", "1"], env=scored, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr  # the flag beats the file's n_best
    # a --config that is a pipe is left to seq2seq translate, unread: the check read it first, and translate then
    # read nothing and took the defaults (a max_len_b of 2 ignored, exit 0)
    piped = ["bash", "-c", f'exec bash "{ROOT}/scripts/translate.sh" -q --config <(printf "[decode]\\nbeam_size = 1'
             '\\nmax_len_a = 0.0\\nmax_len_b = 2\\n")']  # fmt: skip
    done = subprocess.run(piped, env=scored, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr
    assert all(len(line.split()) <= 2 for line in (tmp_path / "o.yy").read_text().splitlines())  # max_len_b 2


def test_translate_script_refuses_a_model_of_another_language_pair(run_dir: Path, tmp_path: Path) -> None:
    """`SRC=en TGT=de` with a de-en model translated the en test split into nonsense and scored it (BLEU 0.05,
    exit 0): the test split's languages, and INPUT's where SRC/TGT are given, are checked against the model's."""
    (tmp_path / "mine.xx").write_text("a b c\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RUN", "CKPT", "INPUT", "OUTPUT", "REF", "SRC", "TGT")}
    env.update(DATA=str(run_dir.parent / "data"), TEST_SPLIT="test", BEAM="1", CKPT=str(run_dir / "best.pt"),
               OUTPUT=str(tmp_path / "out.txt"))  # fmt: skip

    def script(*args: str, **knobs: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/translate.sh"), "-q", *args], env={**env, **knobs},
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip

    wrong = f"{run_dir / 'best.pt'} translates xx -> yy, not yy -> xx (source language 'yy')"
    for knobs in ({"SRC": "yy", "TGT": "xx"}, {"SRC": "yy", "TGT": "xx", "INPUT": str(tmp_path / "mine.xx")}):
        done = script(**knobs)
        assert done.returncode == 2 and done.stderr == f"seq2seq translate: error: {wrong}: use a model of that " \
            "language pair\n", done.stderr  # fmt: skip
        assert not (tmp_path / "out.txt").exists() and "BLEU" not in done.stdout
    done = script(INPUT=str(tmp_path / "mine.xx"))  # another input, languages not given: not checked (de, en)
    assert done.returncode == 0 and (tmp_path / "out.txt").read_text().count("\n") == 1, done.stderr
    done = script(SRC="xx", TGT="yy")
    assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr
    done = script("--src", "xx")
    assert done.returncode == 2 and "SRC and TGT give the languages" in done.stderr


def test_translate_script_refuses_what_would_score_the_wrong_file(run_dir: Path, tmp_path: Path) -> None:
    """OUTPUT=REF overwrote the references and scored them against themselves (BLEU 100); --output, --input,
    --n-best, --nbest-format and --alignments made it score a stale or wrong file, or fail after the work;
    OUTPUT=- failed after the work. CKPT one file a line keeps paths with spaces whole. The refusals run with a
    stand-in for Python that logs its calls (none may translate), the rest with the real one."""
    run = tmp_path / "my run"
    run.mkdir()
    (run / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    data = run_dir.parent / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("RUN", "CKPT", "INPUT", "OUTPUT", "REF")}
    env.update(DATA=str(data), SRC="xx", TGT="yy", TEST_SPLIT="test", BEAM="1", RUN=str(run), PYTHON=sys.executable)
    standin, calls = tmp_path / "python", tmp_path / "calls.log"
    standin.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    standin.chmod(0o755)

    def script(*args: str, **knobs: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/translate.sh"), *args], env={**env, **knobs},
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip

    def refused(says: str, *args: str, **knobs: str) -> None:
        done = script(*args, **knobs, PYTHON=str(standin))
        assert done.returncode == 2 and says in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert "translate" not in calls.read_text()  # refused before translating

    ref = tmp_path / "ref.yy"
    ref.write_text((data / "test.yy").read_text())
    (tmp_path / "link.yy").symlink_to(ref)
    for output in (ref, tmp_path / "link.yy"):  # the reference itself, by its path or through a link
        refused("is the reference REF=", OUTPUT=str(output), REF=str(ref))
    assert ref.read_text() == (data / "test.yy").read_text()
    for flags in (["--output", "x"], ["--out=x"], ["--input", "x"]):
        refused("INPUT and OUTPUT give the files", *flags)
    for flags in (["--n-best", "3"], ["--n-best=2"], ["--nbest-format", "moses"], ["--alignments"], ["--align"]):
        refused("writes lines that are not one translation each", *flags)
    for flags in (["--n-best", "1"], ["--n-best=1"]):  # one translation a line: scored as it is
        done = script(*flags, "-q")
        assert done.returncode == 0 and "BLEU" in done.stdout, done.stderr
    (tmp_path / "other run").mkdir()
    (tmp_path / "other run/best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    done = script("--device", "cpu", OUTPUT="-", CKPT=str(tmp_path / "other run/best.pt"))  # printed, unscored
    lines = len((data / "test.xx").read_text().splitlines())
    assert done.returncode == 0 and len(done.stdout.splitlines()) == lines and "BLEU" not in done.stdout, done.stderr
    assert "OUTPUT is standard output: not scored" in done.stderr and "the model loaded" in done.stderr
    (tmp_path / "mine.xx").write_text("a b c\n")  # nothing scored: the flag is the user's
    done = script("-q", "--alignments", INPUT=str(tmp_path / "mine.xx"))
    assert done.returncode == 0 and " ||| " in done.stdout, done.stderr
    two = f"{run / 'best.pt'}\n{tmp_path / 'other run/best.pt'}"  # one a line, as multi30k.sh passes SEEDS' models
    done = script(CKPT=two, INPUT=str(tmp_path / "mine.xx"))
    assert done.returncode == 0 and "an ensemble of 2 models loaded" in done.stderr, done.stderr[-2000:]


def test_preprocess_script_leaves_the_splits_to_a_config_table_unless_a_knob_names_them(tmp_path: Path) -> None:
    """knobs.sh passed --val-split val always, and flags beat --config: `[data] val_split = "dev"` was overridden
    ("no validation split: DATA/val.xx")."""
    data = write_corpus(tmp_path / "data")
    for lang in ("xx", "yy"):
        (data / f"val.{lang}").rename(data / f"dev.{lang}")
    (tmp_path / "dev.toml").write_text('[data]\nval_split = "dev"\nvocab_size = 60\n')
    env = {k: v for k, v in os.environ.items() if not k.endswith("_SPLIT")}
    env.update(DATA=str(data), SRC="xx", TGT="yy", RUN=str(tmp_path / "run"))
    cmd = ["bash", str(ROOT / "scripts/preprocess.sh"), "--config", str(tmp_path / "dev.toml")]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    env.update(VAL_SPLIT="val", RUN=str(tmp_path / "run2"))  # a knob still wins
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no validation split" in done.stderr and "pass --val-split dev" in done.stderr


@pytest.mark.parametrize(
    ("script", "knobs", "says"),
    [
        ("serve_load.sh", {"URL": "http://127.0.0.1:9", "CHECKPOINT": "x.pt"}, "URL names a running server"),
        ("serve_load.sh", {"URL": "http://127.0.0.1:9", "SERVE_FLAGS": "--max-batch 8"}, "URL names a running server"),
        ("browser_check.sh", {"MODELS": "a=x.pt", "CHECKPOINT": "y.pt"}, "MODELS and CHECKPOINT both name"),
        ("serve.sh --port 9000", {"PORT": "8080"}, "serve.sh: PORT gives the port (PORT=9000 scripts/serve.sh); drop"),
        ("serve.sh --po=9000", {}, "PORT gives the port"),  # argparse's prefix of --port: the knob's flag, later
        ("serve.sh --host 0.0.0.0", {}, "HOST gives the address"),
        ("serve.sh --checkpoint a.pt", {"CHECKPOINT": "b.pt"}, "CHECKPOINT gives the model"),
        ("serve.sh --model a=a.pt", {}, "CHECKPOINT gives the model"),
    ],
)
def test_script_knobs_that_would_be_ignored_are_refused(tmp_path: Path, script: str, knobs: dict, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("URL", "CHECKPOINT", "SERVE_FLAGS", "MODELS", "PORT")}
    name, *flags = script.split()
    done = subprocess.run(["bash", str(ROOT / "scripts" / name), *flags], env={**env, **knobs}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and says in done.stderr and done.stderr.count("\n") == 1, done.stderr


class _Counted(BaseHTTPRequestHandler):
    """A stand-in server that counts the requests it is sent (and answers each with a 503)."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_error(503)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        """Quiet."""


def _memory_capped() -> None:  # the unbounded case fails at 2 GiB, not by filling this machine
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize(
    ("knobs", "says"),
    [
        ({"SENTENCES": str(10**18)}, "--sentences: SENTENCES (per request): give a whole number from 1 to 100,000"),
        ({"SENTENCES": "0"}, "SENTENCES (per request): give a whole number from 1 to 100,000, got '0'"),
        ({"CONCURRENCY": f"1,{10**18}"}, "--concurrency: CONCURRENCY (client threads; levels: 1,8,32): give a"),
        ({"CONCURRENCY": "1024", "SENTENCES": "1000"}, "(CONCURRENCY x SENTENCES): at most 1,000,000 sentences"),
        ({"REQUESTS": str(10**18)}, "--requests: REQUESTS (per level): give a whole number from 1 to 1,000,000"),
        ({"DURATION": "inf"}, "--duration: DURATION (seconds per level): give seconds > 0, at most 86,400"),
        ({"DURATION": "1e18"}, "DURATION (seconds per level): give seconds > 0, at most 86,400 (24 hours), got '1e18'"),
        ({"DURATION": "nan"}, "DURATION (seconds per level): give seconds > 0, at most 86,400 (24 hours), got 'nan'"),
        ({"DURATION": "-1"}, "DURATION (seconds per level): give seconds > 0, at most 86,400 (24 hours), got '-1'"),
    ],
)
def test_serve_load_script_bounds_its_knobs_before_any_request(tmp_path: Path, knobs: dict, says: str) -> None:
    """SENTENCES and CONCURRENCY of 10**18 grew memory without bound, REQUESTS=10**18 and DURATION=inf or 1e18 ran
    until killed, DURATION=nan sent nothing and exited 0."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Counted)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (tmp_path / "src.xx").write_text("red cat\nbig old dog\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CHECKPOINT", "SERVE_FLAGS", "REQUESTS", "DURATION")}
    env |= {"URL": f"http://127.0.0.1:{httpd.server_address[1]}", "INPUT": str(tmp_path / "src.xx"), **knobs}
    try:
        done = subprocess.run(["bash", str(ROOT / "scripts/serve_load.sh")], env=env, capture_output=True, text=True,
                              timeout=10, preexec_fn=_memory_capped)  # fmt: skip
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert says in done.stderr and _Counted.seen == []


def test_download_script_names_a_globs_folder_after_its_folder(tmp_path: Path) -> None:
    """DATASET='c1/*.jsonl' wrote into a folder literally named data/*."""
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "train.jsonl").write_text('{"de": "Hund", "en": "dog"}\n', encoding="utf-8")
    (tmp_path / "top.jsonl").write_text('{"de": "Katze", "en": "cat"}\n', encoding="utf-8")
    env = dict(os.environ, PYTHON=sys.executable, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_OFFLINE="1",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")  # fmt: skip
    env.pop("OUT", None), env.pop("NAME", None)

    def script(dataset: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/download.sh")], env={**env, "DATASET": dataset},
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip

    done = script("c1/*.jsonl")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "data" / "c1" / "train.de").read_text(encoding="utf-8") == "Hund\n"
    refused = script("*.jsonl")  # a glob of the current folder names no folder: OUT (or NAME) is needed
    assert refused.returncode == 2 and "set OUT or NAME" in refused.stderr.strip().splitlines()[-1], refused.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["c1"]


def test_precision_measures_from_the_warm_up_record_and_refuses_bad_steps_and_another_runs_folder(
    run_dir: Path, tmp_path: Path
) -> None:
    """precision.sh replaced a trained run's best.pt given as OUT (train --overwrite); STEPS=1 was an IndexError,
    STEPS=10 a ZeroDivisionError; its window dropped update 10's record (measuring STEPS - 10 updates)."""
    from seq2seq.devtools.precision import check_run, result, tokens_per_second
    from seq2seq.errors import ConfigError, OutputError

    metrics = tmp_path / "metrics.jsonl"
    recs = [{"type": "hardware", "step": 0, "cpu": "a CPU"}]
    recs += [{"type": "train", "step": s, "tokens": 1000 * s, "elapsed_s": s / 10 + (5 if s > 10 else 0)}
             for s in (10, 20, 30)]  # fmt: skip
    metrics.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert tokens_per_second(metrics) == pytest.approx(20_000 / 7)  # updates 10 to 30: 20,000 tokens in 7 s
    assert result("DEFAULT", "fp32", 0, tmp_path / "x.log", metrics) == {
        "onednn_max_cpu_isa": "DEFAULT", "precision": "fp32", "exit": 0, "cpu": "a CPU", "tgt_tok_s": 2857,
    }  # fmt: skip
    (tmp_path / "x.log").write_text("step 1\nprecision bf16: this CPU cannot run it\n")
    assert result("AVX2", "bf16", 2, tmp_path / "x.log", metrics)["error"] == "precision bf16: this CPU cannot run it"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in recs[:3]))  # STEPS=10: updates 10 to 20
    assert tokens_per_second(metrics) == pytest.approx(10_000 / 6)
    assert check_run(tmp_path / "new", "010") == 10 and check_run(tmp_path / "new", "60") == 60
    for steps in ("1", "0", "15", "abc", "-10"):
        with pytest.raises(ConfigError, match=f"STEPS={steps}: give a whole multiple of 10"):
            check_run(tmp_path / "new", steps)
    run = tmp_path / "my run"
    shutil.copytree(run_dir, run)  # a trained run folder
    env = {k: v for k, v in os.environ.items() if k != "STEPS"}
    done = subprocess.run(["bash", str(ROOT / "scripts/precision.sh")], env={**env, "OUT": str(run)},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"OUT={run} holds last.pt of a run that precision.sh did not write" in done.stderr
    for name in ("best.pt", "last.pt", "metrics.jsonl"):  # nothing trained over the run
        assert (run / name).read_bytes() == (run_dir / name).read_bytes(), name
    (run / "DEFAULT-fp32.log").touch()  # precision.sh's own folder: measured again
    assert check_run(run, "60") == 60
    with pytest.raises(OutputError):
        check_run(run_dir, "60")


STANDIN_SEQ2SEQ = """#!/usr/bin/env bash
# python, with stand-ins of `-m seq2seq preprocess|train` (train fails, or with FP32_WORKS succeeds in fp32) and of
# `-m seq2seq.devtools.precision result` (its exit status alone, as JSON: no torch to import); the rest runs as it is
args=("$@") out= precision= status=
for ((i = 0; i < $#; i++)); do
  case ${args[i]} in
    --out) out=${args[i + 1]} ;; --precision) precision=${args[i + 1]} ;; --status) status=${args[i + 1]} ;;
  esac
done
case "${1-} ${2-} ${3-}" in
  "-m seq2seq preprocess") echo "$*" >> "$RAN"; mkdir -p "$out"; exit 0 ;;
  "-m seq2seq train")
    echo "$*" >> "$RAN"
    [ "$precision" = fp32 ] && [ -n "${FP32_WORKS:-}" ] && exit 0
    echo "seq2seq train: error: a stand-in that fails" >&2; exit 2 ;;
  "-m seq2seq.devtools.precision result") echo "{\\"exit\\": $status}"; exit 0 ;;
esac
exec PYTHON "$@"
"""


def precision_script(tmp_path: Path, **knobs: str) -> subprocess.CompletedProcess:
    """scripts/precision.sh with preprocessing, training and the measurement stood in for (STANDIN_SEQ2SEQ)."""
    python = tmp_path / "python"
    python.write_text(STANDIN_SEQ2SEQ.replace("PYTHON", sys.executable))
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("STEPS", "ISAS", "FP32_WORKS")}
    env |= {"PYTHON": str(python), "PYTHONPATH": str(ROOT), "RAN": str(tmp_path / "ran"), "OUT": str(tmp_path / "out"),
            "DATA": str(tmp_path), **knobs}  # fmt: skip
    return subprocess.run(["bash", str(ROOT / "scripts/precision.sh")], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("knobs", "says"),
    [
        ({"STEPS": str(10**18)}, f"STEPS={10**18}: give a whole multiple of 10 from 10 to 999,999,999,990"),
        ({"STEPS": "1000000000000"}, "from 10 to 999,999,999,990"),  # its runs' --max-steps: 10**12 + 10
        ({"ISAS": "DEFAULT FOO"}, "ISAS='DEFAULT FOO': FOO is not one of oneDNN's ONEDNN_MAX_CPU_ISA values: DEFAULT"),
        ({"ISAS": "avx2 avx3"}, "avx3 is not one of oneDNN's"),  # oneDNN reads its names in any case: avx2 passes
    ],
)
def test_precision_refuses_steps_beyond_train_and_an_isa_onednn_ignores(tmp_path: Path, knobs: dict, says: str) -> None:
    """STEPS=10**18 passed the check (a multiple of 10), then six trainings failed and it exited 0; ISAS=FOO was
    reported as "oneDNN capped at FOO" (oneDNN ignores a name it does not know)."""
    done = precision_script(tmp_path, **knobs)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "out").exists()


def test_precision_exits_1_when_every_training_failed(tmp_path: Path) -> None:
    """Every training failing (nothing measured) exited 0; one failing beside a measured one is a result."""
    done = precision_script(tmp_path, ISAS="AVX512_CORE_BF16 AVX2")
    assert done.returncode == 1, done.stderr
    assert [json.loads(line)["exit"] for line in done.stdout.splitlines()] == [2, 2, 2, 2]
    assert done.stderr.splitlines()[-1].startswith("precision.sh: all 4 trainings failed: nothing measured")
    ran = (tmp_path / "ran").read_text()
    assert ran.count(" train ") == 4 and "--max-steps 70 " in ran  # STEPS 60 and the warm-up's 10
    assert precision_script(tmp_path, ISAS="avx2").returncode == 1  # lower case, as oneDNN reads it: measured
    done = precision_script(tmp_path, ISAS="DEFAULT", FP32_WORKS="1")  # bf16 failing beside a measured fp32
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["exit"] for line in done.stdout.splitlines()] == [0, 2]


def test_scripts_run_the_python_that_has_the_packages_else_the_venv(tmp_path: Path) -> None:
    """env.sh picks $PYTHON when it has torch, sentencepiece, sacrebleu, datasets, tqdm and seq2seq (found, no longer
    imported: that took 2 s before every script), else the set-up venv ($VENV, here one whose stamp is current, so
    that setup.sh installs nothing)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest() + " torch==2.13.0"
    (venv / ".seq2seq-installed").write_text(stamp + "\n")
    bare = tmp_path / "bare-python"  # the same Python without its site-packages: no torch
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("SEQ2SEQ_FORCE_VENV", "TORCH_SPEC", "TORCH_INDEX")}

    def chosen(python: Path | str) -> str:
        done = subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/env.sh" && echo "$SEQ2SEQ_PY"'], cwd=tmp_path,
                              env={**env, "PYTHON": str(python), "VENV": str(venv)}, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert chosen(sys.executable) == sys.executable
    assert chosen(bare) == f"{venv}/bin/python"


def test_setup_installs_a_torch_spec_given_into_a_venv_that_has_a_torch(tmp_path: Path) -> None:
    """TORCH_SPEC was installed only where `import torch` failed: set for an existing venv (as README says, "for
    another version") it was written into the stamp and nothing installed. Without it a venv's torch stays."""
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')  # has a torch: every call succeeds
    (venv / "bin/python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "TORCH_INDEX")}

    def setup(**knobs: str) -> list[str]:
        log.write_text("")
        done = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], env={**env, "VENV": str(venv), **knobs},
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return log.read_text().splitlines()

    calls = setup()
    assert calls[0] == "-c import torch" and not any("torch==" in c for c in calls[1:]), calls
    assert calls[-1] == f"-m pip install -q -e {ROOT}[dev,plot,tensorboard,onnx]"
    assert setup() == []  # the stamp is current: nothing to do
    calls = setup(TORCH_SPEC="torch==2.12.0")
    assert calls[0] == "-m pip install -q torch==2.12.0"
    assert (venv / ".seq2seq-installed").read_text().endswith(" torch==2.12.0\n")
