"""How the renewal-day section judges its runs: exactness first, paired ratios, smoke runs not judged."""
from __future__ import annotations

from donations.bench.renewals import Books, Delivery, Outcome, summarise


def delivery(ok: int, seconds: float, other: int = 0) -> Delivery:
    return Delivery(ok=ok, other=other, socket_errors=0, seconds=seconds, p50_ms=1.0, p99_ms=2.0, load_before=0.5)


def outcome(**kwargs) -> Outcome:
    return Outcome(app=[delivery(100, 4.0), delivery(100, 2.0)], empty=[delivery(100, 0.1), delivery(100, 0.1)],
                   books=[Books(100, 100, 4.1), Books(100, 100, 2.2)], **kwargs)


def rows(section) -> tuple[dict, dict]:
    empty, app = section.rows
    return empty, app


def test_exact_runs_are_met_and_the_ratio_is_the_median_of_paired_runs():
    section = summarise(outcome(), postgres_version="15", events=100, clients=16, runs=2, smoke=False)
    empty, app = rows(section)
    assert section.name == "renewals"
    assert app["verdict"].startswith("met")
    assert app["ratio"] == round((25 / 1000 + 50 / 1000) / 2, 3)  # median of two paired ratios: their mean
    assert app["events_per_s"] == 37.5 and empty["events_per_s"] == 1000
    assert app["in_books_s"] == 3.15 and app["donations"] == [100, 100] and app["receipts"] == [100, 100]
    assert empty["verdict"] == "reference"


def test_a_failed_correctness_check_is_the_verdict_even_in_a_smoke_run():
    section = summarise(outcome(problems=["run 1: 99 donations booked, not exactly 100"]), postgres_version="15",
                        events=100, clients=16, runs=2, smoke=True)
    _, app = rows(section)
    assert app["verdict"] == "failed: run 1: 99 donations booked, not exactly 100"
    assert any("99 donations booked" in note for note in section.notes)


def test_a_smoke_run_is_not_judged():
    section = summarise(outcome(), postgres_version="15", events=100, clients=16, runs=2, smoke=True)
    _, app = rows(section)
    assert app["verdict"] == "not judged (smoke run)" and section.smoke


def test_signatures_are_spread_over_the_run_in_sending_order_and_verify(tmp_path):
    import stripe

    from donations.bench.renewals import SIGNATURE_SPREAD, WEBHOOK_SECRET, Gift, write_events
    from donations.payments.webhooks import verify_event

    gifts = [Gift(n, f"sub_renew{n}", f"cus_renew{n}", 500, "eur", False) for n in range(10)]
    path = tmp_path / "events.tsv"
    write_events(path, gifts, 1, __import__("datetime").datetime(2026, 11, 1))
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    stamps = [int(header.split(",")[0].removeprefix("t=")) for header, _ in lines]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] == SIGNATURE_SPREAD * 9 // 10
    for header, body in lines:  # each verifies with the webhook's own check, at the moment it was signed for
        stripe.WebhookSignature.verify_header(body, header, WEBHOOK_SECRET, None)
    header, body = lines[-1]
    assert verify_event(body.encode(), header, WEBHOOK_SECRET, now=stamps[-1])["type"] == "invoice.paid"


def test_waiting_for_the_receipt_counter_is_the_median_over_runs_of_each_runs_mean():
    runs = outcome()
    runs.books[0].counter_waits, runs.books[1].counter_waits = [0, 2], [4, 4, 4]
    section = summarise(runs, postgres_version="15", events=100, clients=16, runs=2, smoke=False)
    empty, app = rows(section)
    assert app["counter_waiting"] == 2.5 and empty["counter_waiting"] is None
    assert "counter_waiting" in [key for key, _ in section.columns]
