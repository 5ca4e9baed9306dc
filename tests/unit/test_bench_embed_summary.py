"""The embed benchmark's verdicts: paired ratios, and errors or a missing endpoint never count as fast."""
from __future__ import annotations

from donations.bench.embed import Outcome, Target, summarise
from donations.bench.load import Request, WrkRun


def _run(rps: float, status_errors: int = 0) -> WrkRun:
    return WrkRun(requests=int(rps * 10), seconds=10.0, status_errors=status_errors, socket_errors=0,
                  p50_ms=1.0, p90_ms=2.0, p99_ms=3.0, load_before=0.5)


EMPTY = Target("empty", "empty", Request())
COUNT = Target("count", "app", Request("POST", "/embed/v1/count"), reference="empty", goal=0.8)


def _rows(*outcomes: Outcome) -> dict[str, dict]:
    section = summarise(list(outcomes), postgres_version="15", seconds=10, runs=3, connections=16, smoke=False)
    return {row["target"]: row for row in section.rows}


def test_the_ratio_pairs_each_run_with_the_references_run_of_the_same_round():
    # The machine got busier in round 2: both slowed down, the paired ratio stays 0.9.
    empty = Outcome(EMPTY, [_run(1000), _run(500), _run(1000)], probe_status=204)
    count = Outcome(COUNT, [_run(900), _run(450), _run(900)], probe_status=204)

    row = _rows(empty, count)["count"]

    assert row["ratio"] == 0.9
    assert row["verdict"] == "met"
    assert row["requests_per_s"] == 900


def test_a_ratio_below_the_goal_is_not_met():
    empty = Outcome(EMPTY, [_run(1000)], probe_status=204)
    count = Outcome(COUNT, [_run(700)], probe_status=204)

    assert _rows(empty, count)["count"]["verdict"] == "not met"


def test_error_answers_fail_the_measurement_however_fast():
    empty = Outcome(EMPTY, [_run(1000)], probe_status=204)
    count = Outcome(COUNT, [_run(5000, status_errors=12)], probe_status=204)

    row = _rows(empty, count)["count"]

    assert count.failed
    assert row["verdict"] == "failed: errors"
    assert row["errors"] == 12


def test_a_missing_endpoint_is_reported_as_not_measured():
    empty = Outcome(EMPTY, [_run(1000)], probe_status=204)
    count = Outcome(COUNT, [], missing=True, probe_status=404)

    row = _rows(empty, count)["count"]

    assert row["verdict"].startswith("not measured")
    assert row["ratio"] is None and row["requests_per_s"] is None
