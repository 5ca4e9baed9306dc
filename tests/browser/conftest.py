"""Browser tests: the embed script in real Chromium, on a publisher's page from a second origin.

The app runs on a real loopback port (werkzeug in a thread) with a database of its own, whose data is
committed (a browser cannot join a test's transaction); a tiny static server on another port plays the
publisher. Chromium is the system's (/usr/bin/chromium): without it these tests are skipped. A failing test
leaves a screenshot and the console log of each of its pages under test-artifacts/.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select, text
from werkzeug.serving import make_server

from tests.smtp_helpers import smtp_on_loopback

CHROMIUM = "/usr/bin/chromium"
#: Where a failing browser test leaves its screenshots and console logs (.ci/run names one folder per database).
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
SCHEMA = "browser_tests"


def skip_without_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
                    allow_module_level=True)


def fnv_share(reader_id: str, slug: str) -> float:
    """The number cta.js draws from the reader's id (FNV-1a of "<id>:<slug>") to pick a variant."""
    h = 2166136261
    for ch in f"{reader_id}:{slug}":
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return h / 2**32


@dataclass
class Publisher:
    """The second origin: serves whatever page a test puts at a path."""

    origin: str
    pages: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def publisher():
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            html = pages.get(self.path.split("?")[0].split("#")[0])
            self.send_response(200 if html is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write((html or "not found").encode())

        def log_message(self, *args):  # quiet: pytest shows what matters
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Publisher(f"http://127.0.0.1:{server.server_port}", pages)
    server.shutdown()
    server.server_close()


def _database_url(tmp_path_factory) -> tuple[str, str | None]:
    """A database of the live app's own: a schema of the test database on PostgreSQL (the role may not create
    databases), a file on SQLite."""
    postgres = os.environ.get("TEST_DATABASE_URL")
    if not postgres:
        return f"sqlite:///{tmp_path_factory.mktemp('browser-db') / 'browser.sqlite3'}", None
    engine = create_engine(postgres)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    separator = "&" if "?" in postgres else "?"
    return f"{postgres}{separator}options=-csearch_path%3D{SCHEMA}", postgres


@dataclass
class Mailbox:
    """The live app's SMTP server (aiosmtpd on loopback). ``deliver()`` runs the outbox as the scheduler would
    and returns the emails that arrived since the last call, parsed."""

    host: str
    port: int
    received: list = field(default_factory=list)
    seen: int = 0

    def deliver(self, app) -> list[EmailMessage]:
        from donations.mail.sender import send_due

        with app.app_context():
            send_due()
        new, self.seen = self.received[self.seen:], len(self.received)
        return [BytesParser(policy=default).parsebytes(envelope.content) for envelope in new]


@pytest.fixture(scope="session")
def mail_server():
    with smtp_on_loopback() as (port, received):
        yield Mailbox("127.0.0.1", port, received)


@pytest.fixture
def mailbox(mail_server, live_app):
    """The emails of this test only: what earlier tests left in the outbox is sent and forgotten first."""
    mail_server.deliver(live_app[0])
    return mail_server


@pytest.fixture(scope="session")
def live_app(publisher, mail_server, tmp_path_factory):
    """The app on a real port, its database built by the migrations; yields (app, origin)."""
    from flask_migrate import upgrade

    from donations import create_app
    from donations.config import TestConfig
    from donations.extensions import db

    url, postgres = _database_url(tmp_path_factory)
    server = make_server("127.0.0.1", 0, lambda environ, start_response: [], threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    config = TestConfig(environ={**os.environ, "PUBLIC_URL": origin, "ALLOWED_ORIGINS": publisher.origin},
                        instance_path=str(tmp_path_factory.mktemp("browser-instance")))
    config.SMTP_URL = f"smtp://{mail_server.host}:{mail_server.port}"
    config.SQLALCHEMY_DATABASE_URI = url
    app = create_app(config)
    with app.app_context():
        upgrade()
        db.session.remove()
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, origin
    server.shutdown()
    server.server_close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if postgres:
        engine = create_engine(postgres)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        engine.dispose()


def wipe_committed(app) -> None:
    """Deletes every row a browser journey commits (gifts, emails, the sandbox's objects and clock, staff users
    and their audit trail, exports), children first, so that the next test meets the app as installed; the
    campaigns are the ``campaigns`` fixture's. Table deletes on the connection: the ORM refuses to delete
    audit entries (the log is append-only)."""
    from donations.campaigns.models import Article, AskCount
    from donations.checkout.models import CheckoutAttempt
    from donations.extensions import db
    from donations.ledger.models import (ConsentRecord, Donation, LedgerLine, Payout, ReceiptSequence,
                                         RecurringChange, RecurringDonation, Refund, StripeEvent, Supporter)
    from donations.mail.models import OutboxEmail
    from donations.payments.models import SandboxObject
    from donations.reports.models import ExportChunk, ExportJob
    from donations.staff.models import AuditEntry, StaffSession, StaffUser

    with app.app_context():
        connection = db.session.connection()
        for model in (ExportChunk, ExportJob, AuditEntry, StaffSession, StaffUser, LedgerLine, Payout, Refund,
                      AskCount, OutboxEmail, RecurringChange, Donation, RecurringDonation, CheckoutAttempt,
                      ConsentRecord, Supporter, Article, StripeEvent, SandboxObject, ReceiptSequence):
            connection.execute(delete(model.__table__))
        db.session.commit()


@pytest.fixture
def campaigns(live_app):
    """Starts each test with no campaign at all; yields ``add(slug, variants=[...], translations=[...], **fields)``."""
    from donations.campaigns.models import Campaign, CampaignTranslation, CampaignVariant
    from donations.extensions import db
    from donations.ledger.models import Frequency

    app, _ = live_app

    def clear():
        with app.app_context():
            db.session.execute(delete(Campaign))
            db.session.commit()

    def restore_default():
        # The migrations seed a default campaign, and staff-made campaigns copy its presets: put it back as
        # it was, so that a test running after this one sees the app as installed whatever the order.
        if seeded is not None:
            with app.app_context():
                db.session.add(Campaign(**seeded))
                db.session.commit()

    with app.app_context():
        default = db.session.scalars(select(Campaign).where(Campaign.slug == "default")).one_or_none()
        seeded = None if default is None else {column.key: getattr(default, column.key)
                                               for column in Campaign.__table__.columns if column.key != "id"}

    def add(slug: str, variants: list[dict] | None = None, translations: list[dict] | None = None, **fields) -> None:
        values = {"name": slug, "headline": f"Headline {slug}", "body": f"Body of {slug}", "button_label": "Give now",
                  "presets": {"one_off": {"EUR": [1000, 2500, 5000]}, "monthly": {"EUR": [500]}},
                  "default_frequency": Frequency.ONE_OFF, **fields}
        with app.app_context():
            campaign = Campaign(slug=slug, **values)
            db.session.add(campaign)
            db.session.flush()
            db.session.refresh(campaign)
            for variant in variants or []:
                if variant["key"] == "a":
                    for name, value in variant.items():
                        setattr(campaign.variant("a"), name, value)
                else:
                    db.session.add(CampaignVariant(campaign_id=campaign.id, name=variant["key"], **variant))
            db.session.flush()
            for translation in translations or []:
                translation = dict(translation)
                variant = campaign.variant(translation.pop("variant", "a"))
                db.session.add(CampaignTranslation(variant_id=variant.id, **translation))
            db.session.commit()

    clear()
    yield add
    clear()
    restore_default()


@pytest.fixture(scope="session")
def browser():
    skip_without_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def new_context(browser, request):
    """Makes fresh browser contexts (each its own storage, like another reader's browser); on failure, saves a
    screenshot and the console log of every page they opened."""
    contexts, logs = [], {}

    def make(**kwargs):
        context = browser.new_context(**kwargs)
        context.set_default_timeout(10_000)

        def watch(page):
            log = logs.setdefault(page, [])
            page.on("console", lambda message: log.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: log.append(f"pageerror: {error}"))

        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for index, (page, log) in enumerate(logs.items()):
            stem = ARTIFACTS / f"{name}-{index}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True)
            except Exception as exc:  # a closed page has no picture; the log still helps
                log.append(f"(no screenshot: {exc})")
            stem.with_suffix(".log").write_text("\n".join([page.url, *log]) + "\n")
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()
