"""The warehouse load benchmark's harness, on a small workload: it runs, ours loads every row, the figures add up."""

from __future__ import annotations

import pytest

from benchmarks.warehouse_load import BATCH_SIZE, main, run


def test_the_benchmark_runs_and_reports_consistent_figures() -> None:
    figures = run(count=2 * BATCH_SIZE, rounds=1, seed=1)  # asserts inside that ours loaded every row
    assert figures.events == 2 * BATCH_SIZE
    assert figures.ours_rows_per_s == 2 * figures.ours_events_per_s  # tracks + the event's table
    assert figures.ratio_same_rows == figures.ours_rows_per_s / figures.bare_same_rows_per_s
    assert min(figures.bare_same_rows_per_s, figures.bare_one_table_rows_per_s) > 0


def test_the_command_line_prints_both_sides_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", str(BATCH_SIZE), "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "ours" in out and "bare psycopg COPY" in out and "ratio, same rows" in out
