"""`flask --app app bench seed`: fill PostgreSQL with a big publisher's data, fast and reproducibly.

Rows are written with COPY (psycopg 3 ``cursor.copy``), a chunk of donations at a time, with the ids chosen
here; the sequences are set after. What one seed writes is a function of ``--seed`` and the day it runs
(the data ends today). The books reconcile: every succeeded gift has its gift and fee lines, refunds and
lost disputes theirs, and each day's lines of a currency are paid out the next day by one payout whose
amount is the sum of its lines.
"""
from __future__ import annotations

import json

import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from ..ledger.operations import FIRST_GIFTS_SQL
from ..money import currency_exponent

#: Currency, share of gifts, presets in minor units.
CURRENCIES = (
    ("EUR", 0.60, (500, 1000, 2000, 3000, 5000, 10000)),
    ("USD", 0.20, (500, 1000, 2500, 5000, 10000)),
    ("GBP", 0.15, (300, 500, 1000, 2000, 5000)),
    ("JPY", 0.05, (500, 1000, 3000, 5000, 10000)),  # yen: no minor unit
)
#: Tables --force empties (the campaigns stay: the seed adds its own, bench-01…, after them).
#: The dashboard's snapshots hold totals of donations that --force deletes: they go with them.
TABLES = ("dashboard_snapshot_articles", "dashboard_snapshots",
          "ledger_lines", "payouts", "disputes", "refunds", "donations", "recurring_donations",
          "checkout_attempts", "ask_counts", "articles",
          "consent_records", "supporters", "receipt_sequences")
SEQUENCES = ("supporters", "recurring_donations", "donations", "refunds", "disputes", "payouts",
             "ledger_lines", "consent_records", "campaigns", "campaign_variants", "articles")
DAYS = 3 * 365
#: Refunds and disputes come up to this many days after the gift, past today for the newest ones.
LATE_DAYS = 60
CHUNK = 50_000
SECTIONS = ("politics", "climate", "culture", "science", "sport", "business", "opinion", "world")
CONSENT_WORDING = "Yes, tell me by email about our journalism and how to support it."


class SeedRefused(RuntimeError):
    """The database is not one the seed may fill (not PostgreSQL, or holding data without --force)."""


def _fee(amount: int, currency: str) -> int:
    """Stripe-like card fee in minor units: 1.5 % + a fixed part (3.6 % for yen)."""
    if currency_exponent(currency) == 0:
        return max(1, round(amount * 0.036))
    return round(amount * 0.015) + 25


def _ts(day: date, rng: random.Random) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))


class Seeder:
    def __init__(self, conn, *, donations: int, supporters: int, seed: int, today: date, echo=print):
        self.conn = conn  # a psycopg 3 connection, in one transaction
        self.n_donations, self.n_supporters = donations, supporters
        self.rng = random.Random(seed)
        self.uuid_rng = random.Random(seed + 1)
        self.end = today
        self.start = today - timedelta(days=DAYS)
        self.echo = echo
        self.counts: dict[str, int] = defaultdict(int)
        self.ids: dict[str, int] = defaultdict(int)
        self.receipts: dict[int, int] = defaultdict(int)
        self.payouts: dict[tuple[str, date], int] = {}

    # --- helpers -------------------------------------------------------------------------------
    def _id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.uuid_rng.getrandbits(128), version=4))

    def _copy(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.counts[table] += len(rows)

    def _day(self) -> date:
        return self.start + timedelta(days=self.rng.randrange(DAYS))

    def _currency(self) -> tuple[str, tuple[int, ...]]:
        x, acc = self.rng.random(), 0.0
        for code, share, presets in CURRENCIES:
            acc += share
            if x < acc:
                return code, presets
        return CURRENCIES[0][0], CURRENCIES[0][2]

    def _amount(self, presets: tuple[int, ...]) -> int:
        if self.rng.random() < 0.85:
            return self.rng.choice(presets)
        return self.rng.randrange(presets[0], presets[-1] * 2)

    def _payout_id(self, currency: str, day: date) -> int:
        """The payout that takes ``day``'s balance in ``currency`` to the bank."""
        return self.payouts[(currency, day)]

    def payout_rows(self) -> None:
        """One payout per currency and day, written before the lines that name it (its amount comes last)."""
        rows = []
        for offset in range(DAYS + LATE_DAYS + 1):
            day = self.start + timedelta(days=offset)
            created = datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
            arrival = day + timedelta(days=2)
            for currency, _, _ in CURRENCIES:
                pid = self._id("payouts")
                self.payouts[(currency, day)] = pid
                rows.append((pid, f"po_bench{pid}", 0, currency, "paid" if arrival <= self.end else "in_transit",
                             created, arrival, created, created, arrival, f"txn_bench_po{pid}"))
        self._copy("payouts", ("id", "stripe_payout_id", "amount", "currency", "status", "created", "arrival_date",
                               "reconciled_at", "status_at", "booked_on", "stripe_balance_transaction_id"), rows)

    # --- the reference data ----------------------------------------------------------------------
    def reference_data(self) -> None:
        rng, now = self.rng, datetime.combine(self.start, datetime.min.time(), UTC)
        self.campaigns, self.variants = [], {}
        campaign_rows, variant_rows = [], []
        # The shape the app reads: {frequency: {currency: [minor units…]}}, for every currency the seed uses.
        presets_json = json.dumps({
            "one_off": {code: list(presets[:3]) for code, _, presets in CURRENCIES},
            "monthly": {code: [p // 2 for p in presets[:3]] for code, _, presets in CURRENCIES},
            "yearly": {code: [p * 5 for p in presets[:3]] for code, _, presets in CURRENCIES}})
        for i in range(1, 13):
            cid = self._id("campaigns")
            currency = CURRENCIES[(i - 1) % len(CURRENCIES)][0]
            campaign_rows.append((
                cid, f"bench-{i:02d}", f"Bench campaign {i}", f"Support independent journalism ({i})",
                "Our reporting is free for everyone, paid for by readers.", "Give now",
                presets_json,
                rng.choice(("one_off", "monthly")), currency, i <= 8, now, now, i, "month",
                "split" if i % 2 else "thompson"))
            self.campaigns.append(cid)
            self.variants[cid] = []
            for key in ("a", "b", "c")[: 2 + i % 2]:
                vid = self._id("campaign_variants")
                variant_rows.append((vid, cid, key, f"Variant {key.upper()}", 1, True,
                                     f"Headline {key.upper()} of campaign {i}", now))
                self.variants[cid].append(vid)
        self._copy("campaigns", ("id", "slug", "name", "headline", "body", "button_label", "presets",
                                 "default_frequency", "default_currency", "active", "created_at", "updated_at",
                                 "priority", "goal_period", "allocation"), campaign_rows)
        self._copy("campaign_variants", ("id", "campaign_id", "key", "name", "weight", "active", "headline",
                                         "created_at"), variant_rows)
        self.articles = []
        rows = []
        for i in range(1, max(50, self.n_donations // 200) + 1):
            aid = self._id("articles")
            section = SECTIONS[i % len(SECTIONS)]
            url = f"https://news.example/{section}/{i}-bench-article"
            rows.append((aid, url, section, f"Author {i % 97}", f"Bench article {i}", _ts(self._day(), rng)))
            self.articles.append((aid, url))
        self._copy("articles", ("id", "url", "section", "author", "title", "created_at"), rows)
        # Daily ask statistics of the last 90 days: every variant on a sample of articles.
        rows = []
        sample = self.articles[:20]
        for offset in range(90):
            day = self.end - timedelta(days=offset)
            for cid in self.campaigns[:8]:
                for vid in self.variants[cid]:
                    for aid, _ in sample:
                        impressions = rng.randrange(50, 5000)
                        rows.append((day, cid, vid, aid, impressions, rng.randrange(0, impressions // 20 + 1)))
        self._copy("ask_counts", ("day", "campaign_id", "variant_id", "article_id", "impressions", "clicks"), rows)

    def supporters(self) -> None:
        rng = self.rng
        rows, consents = [], []
        self.supporter_email = {}
        for _ in range(self.n_supporters):
            sid = self._id("supporters")
            created = _ts(self._day(), rng)
            email = f"supporter{sid}@bench.example"
            consent_at = source = None
            if rng.random() < 0.35:
                consent_at, source = created, "checkout"
                consents.append((self._id("consent_records"), sid, "given", CONSENT_WORDING, source, created))
                if rng.random() < 0.1:
                    withdrawn = created + timedelta(days=rng.randrange(1, 300))
                    consents.append((self._id("consent_records"), sid, "withdrawn", CONSENT_WORDING,
                                     "account", withdrawn))
                    consent_at = source = None
            rows.append((sid, email, f"Supporter {sid}", f"cus_bench{sid}", created, consent_at, source))
            if len(rows) >= CHUNK:
                self._copy("supporters", ("id", "email", "name", "stripe_customer_id", "created_at",
                                          "mailing_consent_at", "mailing_consent_source"), rows)
                rows = []
        self._copy("supporters", ("id", "email", "name", "stripe_customer_id", "created_at",
                                  "mailing_consent_at", "mailing_consent_source"), rows)
        self._copy("consent_records", ("id", "supporter_id", "action", "wording", "source", "at"), consents)

    # --- the gifts -------------------------------------------------------------------------------
    def gifts(self) -> None:
        """Recurring gifts (with their renewals) take about 30 % of the donations; one-off gifts the rest."""
        rng = self.rng
        plan: list[tuple] = []  # ("r", months) for a recurring gift, ("o",) for a one-off
        renewals = 0
        while renewals < self.n_donations * 0.3:
            months = rng.randint(1, 24)
            plan.append(("r", months))
            renewals += months
        plan.extend(("o",) for _ in range(max(0, self.n_donations - renewals)))
        rng.shuffle(plan)
        buf = self._buffers()
        made = 0
        for item in plan:
            if made >= self.n_donations:
                break
            if item[0] == "o":
                self._one_off(buf)
                made += 1
            else:
                made += self._recurring(buf, min(item[1], self.n_donations - made))
            if len(buf["donations"]) >= CHUNK:
                self._flush(buf)
                buf = self._buffers()
                self.echo(f"  {made:,} donations…")
        self._flush(buf)

    @staticmethod
    def _buffers() -> dict[str, list]:
        return {name: [] for name in ("checkout_attempts", "recurring_donations", "donations", "refunds",
                                      "disputes", "ledger_lines")}

    def _where(self) -> tuple[int, int, int, str]:
        cid = self.rng.choice(self.campaigns)
        aid, url = self.rng.choice(self.articles)
        return cid, self.rng.choice(self.variants[cid]), aid, url

    def _attempt(self, buf, sid, cid, vid, aid, url, amount, currency, frequency, at, status="completed") -> str:
        aid_ = self._uuid()
        buf["checkout_attempts"].append((
            aid_, cid, f"supporter{sid}@bench.example", f"Supporter {sid}", amount, currency, frequency, url,
            "en", "stripe", f"cs_bench_{aid_}", status, at, 1, vid, aid))
        return aid_

    def _one_off(self, buf) -> None:
        rng = self.rng
        sid = rng.randint(1, self.n_supporters)
        cid, vid, aid, url = self._where()
        currency, presets = self._currency()
        amount = self._amount(presets)
        day = self._day()
        at = _ts(day, rng)
        if rng.random() < 0.03:  # abandoned checkouts: an expired attempt, no donation
            self._attempt(buf, sid, cid, vid, aid, url, amount, currency, "one_off", at, "expired")
        attempt = self._attempt(buf, sid, cid, vid, aid, url, amount, currency, "one_off", at)
        self._donation(buf, sid, cid, vid, aid, url, amount, currency, "one_off", at,
                       attempt=attempt, session=f"cs_bench_{attempt}")

    def _recurring(self, buf, months: int) -> int:
        rng = self.rng
        sid = rng.randint(1, self.n_supporters)
        cid, vid, aid, url = self._where()
        currency, presets = self._currency()
        amount = rng.choice(presets[:3])
        first = self.end - timedelta(days=30 * months + rng.randrange(30))
        if first < self.start:
            first = self.start
        at = _ts(first, rng)
        attempt = self._attempt(buf, sid, cid, vid, aid, url, amount, currency, "monthly", at)
        rid = self._id("recurring_donations")
        subscription = f"sub_bench{rid}"
        canceled = rng.random() < 0.2
        last = at + timedelta(days=30 * (months - 1))
        status = "canceled" if canceled else ("past_due" if rng.random() < 0.03 else "active")
        buf["recurring_donations"].append((
            rid, sid, cid, attempt, amount, currency, "monthly", status, url, subscription, f"cus_bench{sid}",
            last + timedelta(days=30), False, at, at, last + timedelta(days=3) if canceled else None, at, vid, aid))
        for k in range(months):
            paid = at + timedelta(days=30 * k)
            self._donation(buf, sid, cid, vid, aid, url, amount, currency, "monthly", paid,
                           attempt=attempt if k == 0 else None, invoice=f"in_bench{rid}_{k}",
                           subscription=subscription, recurring=rid)
        return months

    def _donation(self, buf, sid, cid, vid, aid, url, amount, currency, frequency, at, *, attempt=None,
                  session=None, invoice=None, subscription=None, recurring=None) -> None:
        rng = self.rng
        did = self._id("donations")
        intent = f"pi_bench{did}"
        roll = rng.random()
        if roll < 0.02:  # a declined card: no receipt, no money
            buf["donations"].append((
                did, sid, cid, attempt, amount, currency, 0, frequency, "failed", url, session, intent, invoice,
                subscription, None, None, 0, None, None, at, at, recurring, None, None, None, None, None, vid, aid))
            return
        fee = _fee(amount, currency)
        day = at.date()
        self.receipts[at.year] += 1
        receipt = f"{at.year}-{self.receipts[at.year]:06d}"
        status, refunded, refunded_at = "succeeded", 0, None
        lines = buf["ledger_lines"]
        txn = f"txn_bench_ch{did}"
        payout = self._payout_id(currency, day)
        lines.append((self._id("ledger_lines"), f"{txn}:amount", "gift", amount, currency, at, day, txn,
                      f"ch_bench{did}", did, None, payout, at))
        lines.append((self._id("ledger_lines"), f"{txn}:fee", "fee", -fee, currency, at, day, txn,
                      f"ch_bench{did}", did, None, payout, at))
        if roll < 0.035:  # refunded, in full or in part, some days later
            refunded = amount if rng.random() < 0.7 else max(1, amount // 2)
            refunded_at = at + timedelta(days=rng.randrange(1, 20))
            status = "refunded" if refunded == amount else "partially_refunded"
            rid = self._id("refunds")
            buf["refunds"].append((rid, did, refunded, currency, refunded_at))
            rtxn = f"txn_bench_re{rid}"
            lines.append((self._id("ledger_lines"), f"{rtxn}:amount", "refund", -refunded, currency, refunded_at,
                          refunded_at.date(), rtxn, f"re_bench{rid}", did, None,
                          self._payout_id(currency, refunded_at.date()), refunded_at))
        elif roll < 0.037:  # a few disputes, lost: the amount and Stripe's dispute fee leave the balance
            status = "disputed"
            opened = at + timedelta(days=rng.randrange(5, 40))
            dpid = self._id("disputes")
            buf["disputes"].append((dpid, did, f"dp_bench{dpid}", amount, currency, "fraudulent", "lost",
                                    opened, opened + timedelta(days=30)))
            dtxn = f"txn_bench_dp{dpid}"
            payout_d = self._payout_id(currency, opened.date())
            lines.append((self._id("ledger_lines"), f"{dtxn}:amount", "dispute", -amount, currency, opened,
                          opened.date(), dtxn, f"dp_bench{dpid}", did, dpid, payout_d, opened))
            lines.append((self._id("ledger_lines"), f"{dtxn}:fee", "dispute_fee",
                          -(2000 if currency_exponent(currency) == 0 else 1500), currency, opened,
                          opened.date(), dtxn, f"dp_bench{dpid}", did, dpid, payout_d, opened))
        buf["donations"].append((
            did, sid, cid, attempt, amount, currency, 0, frequency, status, url, session, intent, invoice,
            subscription, fee, amount - fee, refunded, receipt, at, at, refunded_at or at, recurring, refunded_at,
            currency, None, day, None, vid, aid))

    def _flush(self, buf) -> None:
        self._copy("checkout_attempts", (
            "id", "campaign_id", "email", "name", "amount", "currency", "frequency", "article_url", "locale",
            "gateway", "checkout_session_id", "status", "created_at", "gateway_tries", "variant_id", "article_id"),
            buf["checkout_attempts"])
        self._copy("recurring_donations", (
            "id", "supporter_id", "campaign_id", "attempt_id", "amount", "currency", "frequency", "status",
            "article_url", "stripe_subscription_id", "stripe_customer_id", "current_period_end",
            "cancel_at_period_end", "status_at", "terms_at", "canceled_at", "created_at", "variant_id",
            "article_id"), buf["recurring_donations"])
        self._copy("donations", (
            "id", "supporter_id", "campaign_id", "attempt_id", "amount", "currency", "covered_fee", "frequency",
            "status", "article_url", "stripe_checkout_session_id", "stripe_payment_intent_id",
            "stripe_invoice_id", "stripe_subscription_id", "fee", "net", "amount_refunded", "receipt_number",
            "paid_at", "created_at", "updated_at", "recurring_donation_id", "refunded_at", "settlement_currency",
            "exchange_rate", "booked_on", "booking_note", "variant_id", "article_id"), buf["donations"])
        self._copy("refunds", ("id", "donation_id", "amount", "currency", "refunded_at"), buf["refunds"])
        self._copy("disputes", ("id", "donation_id", "stripe_dispute_id", "amount", "currency", "reason",
                                "status", "opened_at", "closed_at"), buf["disputes"])
        self._copy("ledger_lines", ("id", "key", "kind", "amount", "currency", "occurred_at", "booked_on",
                                    "stripe_balance_transaction_id", "stripe_source_id", "donation_id",
                                    "dispute_id", "payout_id", "created_at"), buf["ledger_lines"])

    # --- the payouts and the counters ------------------------------------------------------------
    def payouts_and_counters(self) -> None:
        """Each payout's amount is the sum of its lines; it gets its own (negative) payout line."""
        with self.conn.cursor() as cur:
            cur.execute("DELETE FROM payouts p WHERE NOT EXISTS (SELECT 1 FROM ledger_lines l WHERE l.payout_id = p.id)")
            # A day whose refunds and disputes outweigh its gifts leaves a negative balance that Stripe takes
            # from the bank; the payout's amount is still the sum of its lines, so the books reconcile.
            cur.execute("""
                UPDATE payouts p SET amount = t.total, lines_total = t.total, lines_count = t.n
                FROM (SELECT payout_id, sum(amount) AS total, count(*) AS n FROM ledger_lines
                      WHERE payout_id IS NOT NULL GROUP BY payout_id) t
                WHERE p.id = t.payout_id""")
            first = self.ids["ledger_lines"]
            cur.execute("""
                INSERT INTO ledger_lines (id, key, kind, amount, currency, occurred_at, booked_on,
                    stripe_balance_transaction_id, stripe_source_id, payout_id, created_at)
                SELECT %s + row_number() OVER (ORDER BY id), stripe_balance_transaction_id || ':amount', 'payout',
                    -amount, currency, created, arrival_date, stripe_balance_transaction_id, stripe_payout_id, id,
                    created
                FROM payouts WHERE amount <> 0""", (first,))
            self.counts["ledger_lines"] += cur.rowcount
            cur.execute("SELECT count(*) FROM payouts")
            self.counts["payouts"] = cur.fetchone()[0]
        with self.conn.cursor() as cur:
            for year, last in sorted(self.receipts.items()):
                cur.execute("INSERT INTO receipt_sequences (year, last_number) VALUES (%s, %s) "
                            "ON CONFLICT (year) DO UPDATE SET last_number = EXCLUDED.last_number", (year, last))
            for table in SEQUENCES:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")

    def run(self) -> dict[str, int]:
        with self.conn.cursor() as cur:  # ids follow what is there (the migrations make a first campaign)
            for table in SEQUENCES:
                cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
                self.ids[table] = cur.fetchone()[0]
        self.reference_data()
        self.supporters()
        self.payout_rows()
        self.gifts()
        self.payouts_and_counters()
        return dict(self.counts)


def holds(engine, *, donations: int, supporters: int) -> bool:
    """Whether a PostgreSQL database holds exactly this many donations and supporters (a seed to reuse)."""
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.connect() as conn:
            return (conn.execute(text("SELECT count(*) FROM donations")).scalar_one() == donations
                    and conn.execute(text("SELECT count(*) FROM supporters")).scalar_one() == supporters)
    except ProgrammingError:  # no tables yet
        return False


def check_database(engine, *, force: bool) -> None:
    """Refuse SQLite (the benchmarks measure PostgreSQL) and a database holding data, unless forced."""
    if engine.dialect.name != "postgresql":
        raise SeedRefused(
            f"bench seed fills PostgreSQL, the database the benchmarks measure, and DATABASE_URL names "
            f"{engine.dialect.name}: set DATABASE_URL=postgresql+psycopg://user:password@127.0.0.1:5432/db "
            "(a database of its own, upgraded with `flask --app app db upgrade`)")
    try:
        with engine.connect() as conn:
            held = {t: conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {t})")).scalar_one()
                    for t in ("supporters", "donations", "payouts")}
    except ProgrammingError:
        raise SeedRefused("the database has no tables yet: run `flask --app app db upgrade` first") from None
    if any(held.values()) and not force:
        names = ", ".join(t for t, has in held.items() if has)
        raise SeedRefused(f"the database already holds data ({names}); bench seed fills an empty database. "
                          "Use --force to empty the seeded tables first (this deletes their rows).")


def seed(engine, *, donations: int, supporters: int, seed: int, force: bool, today: date | None = None,
         echo=print) -> tuple[dict[str, int], float]:
    """Fill the database; returns the rows written per table and the seconds it took."""
    check_database(engine, force=force)
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            if force:
                cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
                cur.execute("DELETE FROM campaigns WHERE slug LIKE 'bench-%'")
        seeder = Seeder(conn, donations=donations, supporters=supporters, seed=seed,
                        today=today or datetime.now(UTC).date(), echo=echo)
        counts = seeder.run()
        with conn.cursor() as cur:  # written by COPY, not through mark_succeeded: the first gifts from the rows
            cur.execute(FIRST_GIFTS_SQL)
        conn.commit()
        conn.autocommit = True  # fresh statistics for the planner; ANALYZE needs no transaction
        try:
            with conn.cursor() as cur:
                cur.execute("ANALYZE")
        finally:
            conn.autocommit = False  # the connection goes back to the pool as it came
    except BaseException:
        raw.driver_connection.rollback()
        raise
    finally:
        raw.close()
    return counts, time.perf_counter() - started
