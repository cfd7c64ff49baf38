"""The side-by-side timer of docs/speed.md (issue 27's "two cores" idea): what it runs, and one tiny run."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from seq2seq.devtools.core_overlap import lstm_pass, main, one_after_the_other, side_by_side


@pytest.fixture
def threads_kept():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # main sets 2: the suite's own count back


def test_side_by_side_runs_each_part_once_in_its_own_thread_on_one_core(threads_kept) -> None:
    seen: list[tuple[str, int, int]] = []
    barrier = threading.Barrier(2, timeout=10)  # both parts must be running at once, or this times out

    def part(name: str):
        def run() -> None:
            barrier.wait()
            seen.append((name, threading.get_ident(), torch.get_num_threads()))

        return run

    torch.set_num_threads(2)
    side_by_side((part("a"), part("b")))
    assert torch.get_num_threads() == 2  # the process's count is given back
    assert sorted(name for name, _, _ in seen) == ["a", "b"]
    assert len({ident for _, ident, _ in seen} | {threading.get_ident()}) == 3
    assert [threads for _, _, threads in seen] == [1, 1]


def test_an_error_in_either_part_is_raised_by_side_by_side() -> None:
    def fails() -> None:
        raise ValueError("broken part")

    with pytest.raises(ValueError, match="broken part"):
        side_by_side((lambda: None, fails))


def test_side_by_side_gives_the_gradients_of_one_after_the_other() -> None:
    torch.manual_seed(0)
    lstms = [torch.nn.LSTM(8, 4, batch_first=True) for _ in range(2)]
    x = torch.randn(3, 5, 8)
    parts = (lstm_pass(lstms[0], x), lstm_pass(lstms[1], x))
    one_after_the_other(parts, 2)
    expected = [p.grad.clone() for m in lstms for p in m.parameters()]
    for m in lstms:
        m.zero_grad()
    side_by_side(parts)
    for got, want in zip((p.grad for m in lstms for p in m.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_a_tiny_run_prints_each_pairs_three_times_and_its_gain(capsys, threads_kept) -> None:
    argv = ["--batch", "2", "--src-len", "3", "--tgt-len", "2", "--vocab", "16", "--rounds", "2", "--repeats", "1"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    for pair in ("encoder_directions", "decoder_and_output_weight_grad"):
        times = out[pair]
        assert min(times["one_after_the_other_ms"], times["side_by_side_ms"], times["one_thread_ms"]) > 0
        assert times["side_by_side_saves"] == pytest.approx(
            1 - times["side_by_side_ms"] / times["one_after_the_other_ms"], abs=1e-3
        )


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--rounds", "-1"], ["--batch", "100000", "--tgt-len", "100000"]])
def test_sizes_that_make_no_sense_or_do_not_fit_are_refused(argv, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert "must be in [1, 100000]" in err_text or "over 2^28 elements" in err_text
