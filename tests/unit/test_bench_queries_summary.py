"""The queries benchmark's arithmetic and verdicts (no database): percentiles, medians of runs, met or not."""
from __future__ import annotations

import pytest

from donations.bench.queries import Kind, percentile, summarise


def test_percentile_interpolates_between_closest_ranks():
    values = [float(v) for v in range(1, 101)]  # 1..100

    assert percentile(values, 50) == 50.5
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0 and percentile([3.0, 1.0, 2.0], 100) == 3.0


def kind(name: str, target: float, runs: list[list[float]], failures=()) -> Kind:
    return Kind(name, target, [("/x", None, None)], times_ms=runs, failures=list(failures))


def summary(*kinds: Kind, smoke: bool = False):
    return summarise(list(kinds), [[1.0, 2.0]], {}, counts={"donations": 10, "supporters": 2},
                     postgres_version="15", requests=2, runs=len(kinds[0].times_ms), smoke=smoke)


def test_a_target_is_met_only_when_the_p95_is_within_it():
    fast = kind("fast", 50, [[10.0] * 19 + [40.0]] * 3)
    slow_tail = kind("slow tail", 50, [[10.0] * 18 + [60.0, 70.0]] * 3)

    rows = {row["target"]: row for row in summary(fast, slow_tail).rows}

    assert rows["fast"]["verdict"] == "met"
    assert rows["slow tail"]["p50_ms"] == 10.0 and rows["slow tail"]["verdict"] == "not met"
    assert rows["slow tail"]["requests"] == 60


def test_figures_are_medians_of_the_runs_percentiles():
    row = summary(kind("k", 300, [[100.0, 100.0], [200.0, 200.0], [900.0, 900.0]])).rows[0]

    assert row["p50_ms"] == 200.0 and row["p95_ms"] == 200.0 and row["max_ms"] == 900.0
    assert row["runs_p95_ms"] == [100.0, 200.0, 900.0]


def test_wrong_answers_fail_and_smoke_runs_are_not_judged():
    rows = summary(kind("wrong", 50, [[1.0]], failures=["/x: answered 500"]), kind("right", 50, [[1.0]]),
                   smoke=True).rows

    assert rows[0]["verdict"] == "failed: 1 wrong answer(s)"
    assert rows[1]["verdict"] == "not judged (smoke run)"
    assert rows[-1]["target"].startswith("SELECT 1") and rows[-1]["verdict"] == "context"
