"""The matmul-shape timer of docs/speed.md: its FLOP count, its row sets, and one tiny run."""

from __future__ import annotations

import json

import pytest

from seq2seq.devtools.matmul_shapes import flops, main, row_sets


def test_flops_count_the_forward_and_both_backward_products() -> None:
    # (2 x 3) @ (3 x 5): 2 * 5 outputs of 3 multiply-adds, 2 FLOPs each = 60; three such products
    assert flops(2, 3, 5) == 180


def test_row_sets_vary_stay_fixed_and_round_up_to_the_bucket() -> None:
    sets = row_sets(2000, 2700, 40, 128, seed=3)
    assert all(2000 <= n <= 2700 for n in sets["varying"]) and len(set(sets["varying"])) > 10
    assert len(set(sets["fixed"])) == 1 and len(sets["fixed"]) == 40
    for n, b in zip(sets["varying"], sets["bucketed"], strict=True):
        assert b % 128 == 0 and n <= b < n + 128
    assert row_sets(5, 5, 3, 4)["bucketed"] == [8, 8, 8]


def test_a_tiny_run_prints_gflop_s_for_each_set(capsys) -> None:
    argv = ["--rows-min", "8", "--rows-max", "24", "--hidden", "16", "--vocab", "32", "--repeats", "4",
            "--bucket", "8", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["fp32"]) == {"varying", "fixed", "bucketed"}
    assert all(v > 0 for v in result["fp32"].values())
    assert "skipped" in result["bf16"] or all(v > 0 for v in result["bf16"].values())


def test_sizes_that_make_no_sense_are_refused() -> None:
    with pytest.raises(SystemExit) as err:
        main(["--rows-min", "30", "--rows-max", "20"])
    assert err.value.code == 2


def test_a_cpu_without_bf16_gets_the_benchmarks_skip_line_not_a_crash(monkeypatch, capsys) -> None:
    import seq2seq.devtools.matmul_shapes as shapes

    monkeypatch.setattr(shapes, "bf16_skipped", lambda: {"skipped": "no bf16 here"})
    argv = ["--rows-min", "4", "--rows-max", "8", "--hidden", "8", "--vocab", "8", "--repeats", "2", "--threads", "1"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bf16"] == {"skipped": "no bf16 here"} and result["fp32"]["fixed"] > 0
