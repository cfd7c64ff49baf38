"""The truncation sweep and the cost study of the memory-span lab (issue 31), on tiny sizes."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING

import pytest

from seq2seq.config import ConfigError
from seq2seq.science.span_cost import measure
from seq2seq.science.span_tbptt import format_sweep, reach, run_tbptt_sweep

if TYPE_CHECKING:
    from pathlib import Path


def test_a_loss_at_the_last_step_reaches_back_through_the_last_chunk_only() -> None:
    assert reach(104, 50) == 4  # chunks [0, 50) [50, 100) [100, 104)
    assert reach(100, 50) == 50 and reach(100, 0) == reach(100, 100) == reach(100, 500) == 100
    assert reach(10, 4) == 2


def test_activations_held_grow_with_t_under_full_bptt_and_stay_put_under_truncation() -> None:
    full = [measure("lstm", t, 8, 0, "copy", batch=4, repeats=1)["saved_bytes"] for t in (40, 80, 120)]
    cut = [measure("lstm", t, 8, 10, "copy", batch=4, repeats=1)["saved_bytes"] for t in (40, 80)]
    end = [measure("gru", t, 8, 10, "adding", batch=4, repeats=1)["saved_bytes"] for t in (40, 80)]
    step1, step2 = full[1] - full[0], full[2] - full[1]
    assert step1 > 0 and abs(step2 - step1) <= 0.05 * step1  # O(T): about the same bytes for every 40 more steps
    assert cut[0] == cut[1] < full[0]  # O(K): one chunk's at a time
    assert end[0] == end[1] > 0  # loss at the end: only the last chunk builds a graph
    row = measure("rnn", 30, 8, 0, "copy", batch=4, repeats=2)
    assert row["cpu_s"] > 0 and row["wall_s"] > 0 and (row["T"], row["H"], row["K"]) == (30, 8, 0)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_the_sweep_runs_every_truncation_and_tabulates_them(tmp_path) -> None:  # noqa: ANN001
    summary = run_tbptt_sweep(tmp_path, ks=(3, 0), tasks=("adding",), cells=("lstm",), quick=True)
    saved = json.loads((tmp_path / "tbptt_sweep.json").read_text(encoding="utf-8"))
    assert list(saved["largest"]) == ["3", "full"] and set(saved["largest"]["3"]["adding"]) == {"lstm"}
    k3 = json.loads((tmp_path / "k3" / "memory_span.json").read_text(encoding="utf-8"))
    assert k3["settings"]["tbptt"] == 3 and all(r["tbptt"] == 3 for r in k3["rows"])
    assert (tmp_path / "tbptt_sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert format_sweep(summary).splitlines()[0] == "| task | cell | K = 3 | K = full |"
    before = (tmp_path / "k3" / "memory_span.json").stat().st_mtime_ns
    again = run_tbptt_sweep(tmp_path, ks=(3, 0), tasks=("adding",), cells=("lstm",), quick=True, existing="resume")
    assert again["largest"] == summary["largest"] and again["scores"] == summary["scores"]
    assert (tmp_path / "k3" / "memory_span.json").stat().st_mtime_ns == before  # read, not run again
    with pytest.raises(ConfigError, match="K >= 0"):
        run_tbptt_sweep(tmp_path, ks=(-1,))


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_a_finished_sweep_is_read_only_when_it_was_run_as_asked(tmp_path, capsys) -> None:  # noqa: ANN001
    """--resume read any k*/memory_span.json: a --quick smoke run's numbers under the full study's headings."""
    from seq2seq.errors import OutputError
    from seq2seq.science.span_tbptt import main

    run_tbptt_sweep(tmp_path, ks=(3,), tasks=("adding",), cells=("lstm",), quick=True)
    with pytest.raises(OutputError, match="already holds a sweep: add --resume"):  # neither resume nor overwrite
        run_tbptt_sweep(tmp_path, ks=(3,), tasks=("adding",), cells=("lstm",), quick=True)
    with pytest.raises(ConfigError, match=r"--resume: .*k3.* was run with other settings \(hidden 12 there, 64"):
        run_tbptt_sweep(tmp_path, ks=(3,), tasks=("adding",), cells=("lstm",), existing="resume")
    with pytest.raises(ConfigError, match="was run with no adding/gru"):
        run_tbptt_sweep(tmp_path, ks=(3,), tasks=("adding",), cells=("gru", "lstm"), quick=True, existing="resume")
    with pytest.raises(ConfigError, match=r"was run with no D = 4 for adding/lstm, which a sweep of --delays 4 16 "
                                          "tries first"):  # fmt: skip
        run_tbptt_sweep(tmp_path, ks=(3,), tasks=("adding",), cells=("lstm",), delays=[4, 16], quick=True,
                        existing="resume")  # fmt: skip
    with pytest.raises(SystemExit) as stop:  # every K checked before the first trains: K = 3 is not run again
        main(
            ["--out", str(tmp_path / "late"), "--quick", "--ks", "3", "2000000", "--task", "adding", "--cells", "lstm"]
        )
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "tbptt" in err, err
    assert not (tmp_path / "late").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--lengths", "10"], "--lengths must be in [22,"),
        (["--repeats", "0"], "--repeats must be in [1,"),
        (["--cells", "foo"], "unknown or no cell(s) ['foo']"),
        (["--k", "-3"], "--k must be in [1,"),
        (["--lengths", "100000", "--hiddens", "4096"], "needs about"),
    ],
)
def test_the_cost_study_refuses_bad_values_in_one_line_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    from seq2seq.science.span_cost import main

    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "c"), *flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_a_finished_sweep_that_never_tried_a_larger_delay_asked_for_is_not_read_as_its_failure(tmp_path) -> None:  # noqa: ANN001
    """A sweep of D = 2 that solved it, resumed with --delays 2 8, was read as "span 2": as if D = 8 had failed."""
    first = run_tbptt_sweep(tmp_path, ks=(0,), tasks=("adding",), cells=("rnn",), delays=[2], quick=True)
    assert first["largest"]["full"]["adding"]["rnn"] == 2  # solved: a sweep of 2 8 would go on to 8
    with pytest.raises(ConfigError, match=r"no D = 8 for adding/rnn, which a sweep of --delays 2 8 tries after "
                                          "solving D = 2"):  # fmt: skip
        run_tbptt_sweep(tmp_path, ks=(0,), tasks=("adding",), cells=("rnn",), delays=[2, 8], quick=True,
                        existing="resume")  # fmt: skip
    again = run_tbptt_sweep(tmp_path, ks=(0,), tasks=("adding",), cells=("rnn",), delays=[2], quick=True,
                            existing="resume")  # fmt: skip
    assert again["largest"] == first["largest"]
    longer = dict(ks=(0,), tasks=("adding",), cells=("rnn",), quick=True)
    run_tbptt_sweep(tmp_path / "b", delays=[2, 8], **longer)  # solves 2 as above, so it tries 8 too
    with pytest.raises(ConfigError, match=r"was run with delays \[8\] for adding/rnn, not asked for"):
        run_tbptt_sweep(tmp_path / "b", delays=[2], existing="resume", **longer)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_the_cost_study_measures_the_adding_problem_under_full_bptt_too(tmp_path: Path) -> None:
    """Truncation's time gain on the adding problem was judged against the copy task's full BPTT: not like with
    like (adding's full backward carries decaying gradients down to subnormal floats). Each task has both now."""
    from seq2seq.science.span_cost import run_cost, slopes

    result = run_cost(tmp_path, cells=("rnn",), lengths=(22, 30), hiddens=(4,), k=10, hidden=4, length=22, repeats=1)
    measured = {(p["T"], p["K"], p["task"]) for p in result["points"] if p["H"] == 4}
    assert {(t, k, task) for t in (22, 30) for k in (0, 10) for task in ("copy", "adding")} <= measured
    saved = json.loads((tmp_path / "span_cost.json").read_text(encoding="utf-8"))
    assert {(p["K"], p["task"]) for p in saved["points"]} == {(0, "copy"), (10, "copy"), (0, "adding"), (10, "adding")}
    assert any(line.startswith("rnn K=full adding: slope against T (22->30)") for line in slopes(result))
    flushed = [p for p in saved["points"] if p["flush"] is not False]  # full BPTT on adding, once more, flushed
    assert {(p["T"], p["K"], p["task"]) for p in flushed} == {(22, 0, "adding"), (30, 0, "adding")}


def test_the_flushed_points_run_with_subnormals_flushed_and_leave_the_process_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """How much of truncation's gain on adding is the subnormal slowdown: full BPTT measured with them flushed."""
    import torch

    from seq2seq.science import span_cost

    def subnormal_survives() -> bool:
        return torch.tensor([1e-40]).mul(1.0).item() != 0.0

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    torch.set_flush_denormal(False)
    seen = []
    monkeypatch.setattr(span_cost, "_measure", lambda *args: seen.append(subnormal_survives()) or {"cpu_s": 1.0})
    assert span_cost.measure("rnn", 30, 4, 0, "adding", flush=True)["flush"] is True
    assert span_cost.measure("rnn", 30, 4, 0, "adding")["flush"] is False
    assert seen == [False, True] and subnormal_survives()


@pytest.mark.parametrize("study", ["cost", "tbptt"])
def test_an_out_that_is_a_file_or_holds_a_folder_in_place_of_a_result_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, study: str
) -> None:
    """The cost study's --out naming a file was a FileExistsError traceback after all the measuring."""
    pytest.importorskip("matplotlib")
    from seq2seq.science import memory_span, span_cost, span_tbptt

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started before the refusal")

    monkeypatch.setattr(span_cost, "measure", started)
    monkeypatch.setattr(memory_span, "sweep", started)
    if study == "cost":
        main, flags, result = (
            span_cost.main,
            ["--cells", "rnn", "--lengths", "22", "--hiddens", "4", "--k", "10"],
            "span_cost",
        )
    else:
        main, flags, result = span_tbptt.main, ["--quick", "--task", "adding", "--cells", "lstm"], "tbptt_sweep"
    (tmp_path / "file").write_text("mine\n")
    (tmp_path / "dir" / f"{result}.png").mkdir(parents=True)
    for out, says in ((tmp_path / "file", "it is a file, not a folder"), (tmp_path / "dir", "it is a folder")):
        with pytest.raises(SystemExit) as stop:
            main(["--out", str(out), *flags])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and says in err, err
    assert (tmp_path / "file").read_text() == "mine\n"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs seq2seq-nmt[plot]")
def test_a_diverged_score_is_written_null_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run at --lr 1e30 scored NaN, written as NaN into memory_span.json and tbptt_sweep.json: not JSON."""
    from seq2seq.science import memory_span

    monkeypatch.setattr(memory_span, "_score", lambda *args, **kwargs: float("nan"))  # a diverged model's score
    flags = dict(ks=(0,), tasks=("adding",), cells=("lstm",), delays=[2], quick=True)

    def strict(path: Path) -> dict:
        def refuse(constant: str) -> None:
            raise AssertionError(f"{path} holds {constant}")

        return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)

    run_tbptt_sweep(tmp_path, **flags)
    row = strict(tmp_path / "kfull" / "memory_span.json")["rows"][0]
    assert row["score"] is None and row["solved"] is False and all(v is None for _, v in row["curve"])
    assert strict(tmp_path / "tbptt_sweep.json")["scores"]["full"][0]["score"] is None
    again = run_tbptt_sweep(tmp_path, existing="resume", **flags)  # the null read back, and drawn as a gap
    assert again["scores"]["full"][0]["score"] is None and again["largest"]["full"]["adding"]["lstm"] is None
