"""Configuration from the environment: one Config class, TestConfig beside it."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_local_only"


class ConfigError(RuntimeError):
    """The environment asks for something the app refuses to run with."""


def _csv(value: str | None, default: str) -> list[str]:
    raw = value if value is not None else default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _per_currency(value: str | None) -> dict[str, str]:
    """Parse ``EUR:25,USD:30`` into ``{"EUR": "25", "USD": "30"}``."""
    result: dict[str, str] = {}
    for item in _csv(value, ""):
        code, sep, amount = item.partition(":")
        if not sep:
            raise ConfigError(f"expected CODE:AMOUNT, got {item!r}")
        result[code.strip().upper()] = amount.strip()
    return result


#: Accounts of the ledger export: the Stripe balance is a clearing account between income and the bank.
DEFAULT_LEDGER_ACCOUNTS = {
    "stripe": "1210 Stripe balance",
    "bank": "1200 Bank",
    "donations": "4000 Donations",
    "refunds": "4010 Refunds",
    "disputes": "4020 Chargebacks",
    "fees": "6100 Stripe fees",
    "other": "1290 Stripe suspense",
}


def _number(env: dict[str, str], name: str, default: str, kind: type[int] | type[float]) -> int | float:
    """A numeric setting; a value that is not a number stops the start with the setting's name."""
    raw = env.get(name, default).strip()
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}") from None


def _pairs(value: str | None) -> dict[str, str]:
    """Parse ``bank=1200 Bank;fees=6100 Fees`` into a dict (names may hold spaces and commas)."""
    result: dict[str, str] = {}
    for item in (value or "").split(";"):
        if not item.strip():
            continue
        key, sep, name = item.partition("=")
        if not sep:
            raise ConfigError(f"LEDGER_ACCOUNTS: expected role=account name, got {item.strip()!r}")
        result[key.strip().lower()] = name.strip()
    return result


class Config:
    """Every setting, read from the environment at construction time."""

    TESTING = False

    def __init__(self, environ: dict[str, str] | None = None, instance_path: str | None = None):
        env = dict(os.environ if environ is None else environ)
        instance = Path(instance_path or Path.cwd() / "instance")
        self.DONATIONS_ENV = env.get("DONATIONS_ENV", "development")
        self.SECRET_KEY = env.get("SECRET_KEY", DEFAULT_SECRET_KEY)
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or f"sqlite:///{instance / 'donations.sqlite3'}"
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        #: Reports and exports read through this database (a streaming replica) when set; see reports/replica.py.
        self.REPORTS_DATABASE_URL = env.get("REPORTS_DATABASE_URL", "").strip() or None
        self.SQLALCHEMY_BINDS = ({"reports": {"url": self.REPORTS_DATABASE_URL, "pool_pre_ping": True}}
                                 if self.REPORTS_DATABASE_URL else {})
        self.PUBLIC_URL = env.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/")
        self.PUBLICATION_NAME = env.get("PUBLICATION_NAME", "The Riverside Chronicle")
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY") or None
        self.STRIPE_WEBHOOK_SECRET = env.get("STRIPE_WEBHOOK_SECRET") or None
        self.STRIPE_API_BASE = env.get("STRIPE_API_BASE") or None
        self.SMTP_URL = env.get("SMTP_URL") or None
        self.MAIL_FROM = env.get("MAIL_FROM", f"donations@{_host(self.PUBLIC_URL)}")
        self.CURRENCIES = [c.upper() for c in _csv(env.get("CURRENCIES"), "EUR,USD,GBP")]
        self.ALLOWED_ORIGINS = [o.rstrip("/") for o in _csv(env.get("ALLOWED_ORIGINS"), "")]
        #: Largest gift per currency in major units; currencies not named get MAX_AMOUNT_DEFAULT.
        self.MAX_AMOUNTS = _per_currency(env.get("MAX_AMOUNTS"))
        self.MAX_AMOUNT_DEFAULT = env.get("MAX_AMOUNT_DEFAULT", "10000")
        #: "Cover the processing fee": percent of the total plus a fixed part per currency (minor units).
        self.FEE_PERCENT = env.get("FEE_PERCENT", "1.5")
        self.FEE_FIXED = _per_currency(env.get("FEE_FIXED", "EUR:25,USD:30,GBP:20"))
        #: The month the publisher's fiscal year starts in (1 = January, 4 = April).
        self.FISCAL_YEAR_START_MONTH = int(env.get("FISCAL_YEAR_START_MONTH", "1"))
        #: The ledger export's accounts, by role; override some or all with
        #: LEDGER_ACCOUNTS="bank=1200 Bank;fees=6150 Payment fees" (names as in your chart of accounts).
        self.LEDGER_ACCOUNTS = {**DEFAULT_LEDGER_ACCOUNTS, **_pairs(env.get("LEDGER_ACCOUNTS"))}
        #: The currency of the publisher's books (and of its Stripe balance): the Xero and QuickBooks ledgers
        #: hold its lines. Xero's tax rate name for these lines, as in its tax settings.
        self.BOOKS_CURRENCY = (env.get("BOOKS_CURRENCY") or (self.CURRENCIES or ["EUR"])[0]).strip().upper()
        self.XERO_TAX_RATE = env.get("XERO_TAX_RATE", "Tax Exempt").strip()
        #: The publisher as named on annual donation statements (legal name, postal address, tax or charity
        #: numbers); empty lines are left out of the document.
        self.PUBLISHER_LEGAL_NAME = env.get("PUBLISHER_LEGAL_NAME") or self.PUBLICATION_NAME
        self.PUBLISHER_ADDRESS = env.get("PUBLISHER_ADDRESS", "").replace("\\n", "\n").strip()
        self.PUBLISHER_TAX_ID = env.get("PUBLISHER_TAX_ID", "").strip()
        self.PUBLISHER_REGISTRATION = env.get("PUBLISHER_REGISTRATION", "").strip()
        #: MM-DD: from this day each year the scheduler issues statements for the fiscal year that ended before it.
        self.ANNUAL_STATEMENTS_DATE = env.get("ANNUAL_STATEMENTS_DATE", "01-31").strip()
        #: Each process keeps the embed's campaigns.json this long (seconds), so most article views cost no query.
        self.EMBED_CACHE_SECONDS = float(env.get("EMBED_CACHE_SECONDS", "5"))
        self.OUTBOX_INTERVAL_SECONDS = int(env.get("OUTBOX_INTERVAL_SECONDS", "5"))
        #: One scheduler acts at a time; others wait as standbys and look for the lock this often.
        self.SCHEDULER_STANDBY_POLL_SECONDS = float(env.get("SCHEDULER_STANDBY_POLL_SECONDS", "10"))
        #: How often the leader checks that it still holds the lock (and renews the SQLite lock row).
        self.SCHEDULER_HEARTBEAT_SECONDS = float(env.get("SCHEDULER_HEARTBEAT_SECONDS", "5"))
        #: SQLite only: a leader whose heartbeat is older than this is taken to be dead, and a standby takes over.
        self.SCHEDULER_LEADER_TIMEOUT_SECONDS = float(env.get("SCHEDULER_LEADER_TIMEOUT_SECONDS", "30"))
        #: Tests and development only: every job runs every N seconds instead of its own schedule.
        tick = env.get("SCHEDULER_TICK_SECONDS", "").strip()
        self.SCHEDULER_TICK_SECONDS = float(tick) if tick else None
        #: Job runs (shown on /staff/jobs) older than this many days are deleted.
        self.JOB_RUNS_KEEP_DAYS = int(env.get("JOB_RUNS_KEEP_DAYS", "30"))
        #: The ask's impressions and clicks are added up in memory and written in batches: every this many seconds
        #: per web process, or sooner when the buffer holds COUNT_FLUSH_EVENTS distinct keys; 0 writes after
        #: every counting request (tests, a development server without the background thread).
        self.COUNT_FLUSH_SECONDS = _number(env, "COUNT_FLUSH_SECONDS", "2", float)
        self.COUNT_FLUSH_EVENTS = _number(env, "COUNT_FLUSH_EVENTS", "1000", int)
        #: At most this many distinct keys wait in memory (while the database is away); counts beyond are dropped
        #: and logged, so an outage cannot exhaust a web process's memory.
        self.COUNT_BUFFER_MAX = _number(env, "COUNT_BUFFER_MAX", "100000", int)
        #: How often the scheduler asks Stripe for events whose webhook never arrived, and how many days back
        #: its first run looks (Stripe keeps events for 30 days).
        self.STRIPE_SYNC_INTERVAL_SECONDS = int(env.get("STRIPE_SYNC_INTERVAL_SECONDS", "300"))
        self.STRIPE_SYNC_FIRST_DAYS = int(env.get("STRIPE_SYNC_FIRST_DAYS", "3"))
        #: Where background exports are written, how often the scheduler looks for new ones, and how many hours
        #: a finished file is kept (it holds personal data).
        self.EXPORT_DIR = env.get("EXPORT_DIR") or str(instance / "exports")
        self.EXPORT_INTERVAL_SECONDS = int(env.get("EXPORT_INTERVAL_SECONDS", "5"))
        self.EXPORT_KEEP_HOURS = int(env.get("EXPORT_KEEP_HOURS", "24"))
        #: Exports up to this many rows download at once from /staff/reports; larger ones run in the background.
        self.EXPORT_DIRECT_MAX_ROWS = int(env.get("EXPORT_DIRECT_MAX_ROWS", "10000"))
        #: How long a "manage your donation" link in an email keeps working.
        self.MANAGE_LINK_MAX_AGE_DAYS = int(env.get("MANAGE_LINK_MAX_AGE_DAYS", "30"))
        #: How many reverse proxies in front of the app set X-Forwarded-For; 0 trusts none of it.
        self.TRUSTED_PROXIES = int(env.get("TRUSTED_PROXIES", "0"))
        #: Flask-Limiter storage: memory for one process, e.g. redis://localhost:6379 for several.
        self.RATELIMIT_STORAGE_URI = env.get("RATELIMIT_STORAGE_URI", "memory://")
        # --- Issue 8: anti-fraud (checkout) -------------------------------------------------------------------
        #: Flask-Limiter limit strings ("5 per minute;30 per hour") on creating checkout sessions (/donate POST and
        #: the API): per client address, per email address and for everyone together. A request over any limit
        #: gets 429 with Retry-After and no call to Stripe.
        self.CHECKOUT_LIMIT_PER_IP = env.get("CHECKOUT_LIMIT_PER_IP", "5 per minute;30 per hour")
        self.CHECKOUT_LIMIT_PER_EMAIL = env.get("CHECKOUT_LIMIT_PER_EMAIL", "3 per minute;10 per hour")
        self.CHECKOUT_LIMIT_GLOBAL = env.get("CHECKOUT_LIMIT_GLOBAL", "120 per minute")
        #: A human takes a few seconds to fill in the donation form; a faster submission is refused.
        self.FORM_MIN_SECONDS = _number(env, "FORM_MIN_SECONDS", "3", float)
        #: Smallest gift per currency in major units (EUR:1,USD:1); currencies not named: Stripe's minimum.
        self.MIN_AMOUNTS = _per_currency(env.get("MIN_AMOUNTS", "EUR:1,USD:1,GBP:1"))
        #: Optional CAPTCHA: "" (none), "turnstile" or "hcaptcha", with the provider's keys. Verified on the
        #: server; a verification that cannot be made refuses the gift (fails closed).
        self.CAPTCHA_PROVIDER = env.get("CAPTCHA_PROVIDER", "").strip().lower()
        self.CAPTCHA_SITE_KEY = env.get("CAPTCHA_SITE_KEY", "")
        self.CAPTCHA_SECRET_KEY = env.get("CAPTCHA_SECRET_KEY", "")
        #: The provider's verification endpoint; empty = the provider's own (tests point it at loopback).
        self.CAPTCHA_VERIFY_URL = env.get("CAPTCHA_VERIFY_URL", "")
        #: "always": every gift needs the CAPTCHA; "attack" (default): only while attack mode is on.
        self.CAPTCHA_MODE = env.get("CAPTCHA_MODE", "attack").strip().lower()
        #: Attack mode: switched on when, among at least ATTACK_MIN_ATTEMPTS checkouts started in the last
        #: ATTACK_WINDOW_MINUTES, the share declined or abandoned reaches ATTACK_FAILURE_SHARE; it ends by itself
        #: ATTACK_MODE_MINUTES after the last time the spike was seen (or when an admin ends it on /staff/jobs).
        self.ATTACK_WINDOW_MINUTES = _number(env, "ATTACK_WINDOW_MINUTES", "10", int)
        self.ATTACK_MIN_ATTEMPTS = _number(env, "ATTACK_MIN_ATTEMPTS", "30", int)
        self.ATTACK_FAILURE_SHARE = _number(env, "ATTACK_FAILURE_SHARE", "0.6", float)
        self.ATTACK_MODE_MINUTES = _number(env, "ATTACK_MODE_MINUTES", "60", int)
        #: A spike is measured against the usual share: over the ATTACK_BASELINE_DAYS before the window (when
        #: they hold at least ATTACK_MIN_ATTEMPTS checkouts), the window's share must also exceed it by
        #: ATTACK_BASELINE_MARGIN, so a publication whose readers often leave the checkout page is not in attack
        #: mode all day.
        self.ATTACK_BASELINE_DAYS = _number(env, "ATTACK_BASELINE_DAYS", "7", int)
        self.ATTACK_BASELINE_MARGIN = _number(env, "ATTACK_BASELINE_MARGIN", "0.2", float)
        #: Where attack-mode alerts go; empty = every active staff admin.
        self.SECURITY_ALERT_EMAILS = _csv(env.get("SECURITY_ALERT_EMAILS"), "")
        # --- Issue 8: privacy ------------------------------------------------------------------------------
        #: Secret salt of the keyed hash (HMAC-SHA256) under which client IP addresses are stored; empty =
        #: derived from SECRET_KEY. Changing it makes stored hashes unmatchable (that is all they are used for).
        self.IP_HASH_SALT = env.get("IP_HASH_SALT", "")
        #: Hashed IP addresses are deleted (set to NULL) after this many days by the scheduler.
        self.IP_RETENTION_DAYS = _number(env, "IP_RETENTION_DAYS", "30", int)
        # --- Issue 8: web layer ----------------------------------------------------------------------------
        #: Log format: "json" (one JSON object per line; the default in production) or "text".
        self.LOG_FORMAT = env.get("LOG_FORMAT", "json" if self.DONATIONS_ENV == "production" else "text").strip().lower()
        #: Strict-Transport-Security outside local development (always when PUBLIC_URL is https).
        self.HSTS_ENABLED = self.PUBLIC_URL.startswith("https://") or self.DONATIONS_ENV != "development"
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.PUBLIC_URL.startswith("https://") or self.DONATIONS_ENV == "production"
        #: Staff sessions end after this long without a request, and this long after sign-in whatever happens.
        self.STAFF_IDLE_MINUTES = int(env.get("STAFF_IDLE_MINUTES", "30"))
        self.STAFF_ABSOLUTE_HOURS = int(env.get("STAFF_ABSOLUTE_HOURS", "12"))
        #: A/B tests: no winner is named before every variant has AB_MIN_IMPRESSIONS impressions and the test
        #: AB_MIN_GIFTS gifts, and then only a variant at least AB_WINNER_PROBABILITY likely to convert best.
        self.AB_MIN_IMPRESSIONS = int(env.get("AB_MIN_IMPRESSIONS", "1000"))
        self.AB_MIN_GIFTS = int(env.get("AB_MIN_GIFTS", "10"))
        self.AB_WINNER_PROBABILITY = float(env.get("AB_WINNER_PROBABILITY", "0.95"))
        #: argon2-cffi parameter profile for staff passwords (argon2.profiles).
        self.ARGON2_PROFILE = "RFC_9106_LOW_MEMORY"
        if not self.STRIPE_SECRET_KEY and not self.STRIPE_WEBHOOK_SECRET:
            # The sandbox signs its events with a local secret, so the real intake path verifies them.
            self.STRIPE_WEBHOOK_SECRET = SANDBOX_WEBHOOK_SECRET

    def _validate_amounts(self) -> None:
        """Fee and maximum settings must be readable, or every gift that uses them fails."""
        from decimal import Decimal, InvalidOperation

        from .money import Money, MoneyError

        try:
            percent = Decimal(self.FEE_PERCENT)
        except InvalidOperation:
            raise ConfigError(f"FEE_PERCENT must be a number, not {self.FEE_PERCENT!r}") from None
        if not (0 <= percent < 50):
            raise ConfigError("FEE_PERCENT must be at least 0 and below 50")
        for code, fixed in self.FEE_FIXED.items():
            if not fixed.isdigit():
                raise ConfigError(f"FEE_FIXED: {code} needs a whole number of minor units (25 for 0.25), not {fixed!r}")
        for code in self.CURRENCIES:
            try:
                Money.from_major(self.MAX_AMOUNTS.get(code, self.MAX_AMOUNT_DEFAULT), code)
            except MoneyError as exc:
                raise ConfigError(f"MAX_AMOUNTS / MAX_AMOUNT_DEFAULT for {code}: {exc}") from None

    def _validate_reports_database(self) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not self.REPORTS_DATABASE_URL:
            return
        try:
            reports = make_url(self.REPORTS_DATABASE_URL)
        except ArgumentError:
            raise ConfigError("REPORTS_DATABASE_URL is not a database URL (such as "
                              "postgresql+psycopg://user:pass@replica/donations)") from None
        if reports.get_backend_name() != make_url(self.SQLALCHEMY_DATABASE_URI).get_backend_name():
            raise ConfigError("REPORTS_DATABASE_URL must be the same kind of database as DATABASE_URL "
                              "(a replica of it)")

    def _validate_scheduler(self) -> None:
        """A heartbeat that is not well inside the timeout would let a standby take over from a live leader."""
        if self.SCHEDULER_STANDBY_POLL_SECONDS <= 0 or self.SCHEDULER_HEARTBEAT_SECONDS <= 0:
            raise ConfigError("SCHEDULER_STANDBY_POLL_SECONDS and SCHEDULER_HEARTBEAT_SECONDS must be above 0")
        if self.SCHEDULER_LEADER_TIMEOUT_SECONDS < 2 * self.SCHEDULER_HEARTBEAT_SECONDS:
            raise ConfigError("SCHEDULER_LEADER_TIMEOUT_SECONDS must be at least twice SCHEDULER_HEARTBEAT_SECONDS")
        if self.SCHEDULER_TICK_SECONDS is not None and self.SCHEDULER_TICK_SECONDS <= 0:
            raise ConfigError("SCHEDULER_TICK_SECONDS must be above 0 when set")
        if self.JOB_RUNS_KEEP_DAYS < 1:
            raise ConfigError("JOB_RUNS_KEEP_DAYS must be at least 1")

    def _validate_counting(self) -> None:
        """A buffer smaller than one batch would drop counts before the batch that writes them is due."""
        if self.COUNT_FLUSH_SECONDS < 0:
            raise ConfigError("COUNT_FLUSH_SECONDS must be 0 (write after every request) or more")
        if self.COUNT_FLUSH_EVENTS < 1:
            raise ConfigError("COUNT_FLUSH_EVENTS must be at least 1")
        if self.COUNT_BUFFER_MAX < self.COUNT_FLUSH_EVENTS:
            raise ConfigError("COUNT_BUFFER_MAX must be at least COUNT_FLUSH_EVENTS")

    def _validate_antifraud(self) -> None:
        """Limits, minimums and the CAPTCHA must be usable, or the defences would fail on the first gift."""
        from limits import parse_many

        from .money import Money, MoneyError

        for name in ("CHECKOUT_LIMIT_PER_IP", "CHECKOUT_LIMIT_PER_EMAIL", "CHECKOUT_LIMIT_GLOBAL"):
            try:
                if not parse_many(getattr(self, name)):
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{name} must be limits such as '5 per minute;30 per hour', "
                                  f"not {getattr(self, name)!r}") from None
        if self.FORM_MIN_SECONDS < 0:
            raise ConfigError("FORM_MIN_SECONDS must be 0 (no check) or more")
        for code, major in self.MIN_AMOUNTS.items():
            try:
                if Money.from_major(major, code).amount <= 0:
                    raise MoneyError("must be above 0")
            except MoneyError as exc:
                raise ConfigError(f"MIN_AMOUNTS for {code}: {exc}") from None
        if self.CAPTCHA_PROVIDER not in ("", "turnstile", "hcaptcha"):
            raise ConfigError(f"CAPTCHA_PROVIDER must be turnstile, hcaptcha or empty, not {self.CAPTCHA_PROVIDER!r}")
        if self.CAPTCHA_PROVIDER and not (self.CAPTCHA_SITE_KEY and self.CAPTCHA_SECRET_KEY):
            raise ConfigError(f"CAPTCHA_PROVIDER={self.CAPTCHA_PROVIDER} needs CAPTCHA_SITE_KEY and CAPTCHA_SECRET_KEY")
        if self.CAPTCHA_MODE not in ("always", "attack"):
            raise ConfigError(f"CAPTCHA_MODE must be always or attack, not {self.CAPTCHA_MODE!r}")
        if self.CAPTCHA_MODE == "always" and not self.CAPTCHA_PROVIDER:
            raise ConfigError("CAPTCHA_MODE=always needs CAPTCHA_PROVIDER (turnstile or hcaptcha) and its keys")
        if self.ATTACK_WINDOW_MINUTES < 1 or self.ATTACK_MODE_MINUTES < 1 or self.ATTACK_MIN_ATTEMPTS < 1:
            raise ConfigError("ATTACK_WINDOW_MINUTES, ATTACK_MODE_MINUTES and ATTACK_MIN_ATTEMPTS must be at least 1")
        if not 0 < self.ATTACK_FAILURE_SHARE <= 1:
            raise ConfigError("ATTACK_FAILURE_SHARE must be above 0 and at most 1 (such as 0.6)")
        if self.ATTACK_BASELINE_DAYS < 0:
            raise ConfigError("ATTACK_BASELINE_DAYS must be 0 (no baseline) or more")
        if not 0 <= self.ATTACK_BASELINE_MARGIN < 1:
            raise ConfigError("ATTACK_BASELINE_MARGIN must be at least 0 and below 1 (such as 0.2)")

    @property
    def PAYMENT_GATEWAY(self) -> str:
        return "stripe" if self.STRIPE_SECRET_KEY else "sandbox"

    def validate(self) -> None:
        """Refuse to start production with development defaults."""
        from .money import MINIMUM_CHARGE, UnknownCurrency, currency_exponent

        if self.DONATIONS_ENV not in ("development", "production"):
            raise ConfigError(f"DONATIONS_ENV must be development or production, not {self.DONATIONS_ENV!r}")
        if not 1 <= self.FISCAL_YEAR_START_MONTH <= 12:
            raise ConfigError("FISCAL_YEAR_START_MONTH must be a month number from 1 to 12")
        unknown = sorted(set(self.LEDGER_ACCOUNTS) - set(DEFAULT_LEDGER_ACCOUNTS))
        if unknown:
            raise ConfigError(f"LEDGER_ACCOUNTS: unknown role {unknown[0]!r}; the roles are "
                              f"{', '.join(DEFAULT_LEDGER_ACCOUNTS)}")
        try:
            currency_exponent(self.BOOKS_CURRENCY)
        except UnknownCurrency as exc:
            raise ConfigError(f"BOOKS_CURRENCY: {exc}") from None
        if not self.XERO_TAX_RATE:
            raise ConfigError("XERO_TAX_RATE: name a tax rate as Xero's tax settings do, e.g. Tax Exempt")
        if not all(name.strip() for name in self.LEDGER_ACCOUNTS.values()):
            raise ConfigError("LEDGER_ACCOUNTS: every role needs an account name, as in role=1200 Bank")
        try:
            statements_day(self.ANNUAL_STATEMENTS_DATE, 2001)
        except ValueError:
            raise ConfigError(f"ANNUAL_STATEMENTS_DATE must be a day as MM-DD (such as 01-31), "
                              f"not {self.ANNUAL_STATEMENTS_DATE!r}") from None
        if self.STRIPE_SYNC_INTERVAL_SECONDS < 1:
            raise ConfigError("STRIPE_SYNC_INTERVAL_SECONDS must be at least 1")
        if not 1 <= self.STRIPE_SYNC_FIRST_DAYS <= 30:
            raise ConfigError("STRIPE_SYNC_FIRST_DAYS must be from 1 to 30 (Stripe keeps events for 30 days)")
        if not self.CURRENCIES:
            raise ConfigError("CURRENCIES: name at least one currency, such as EUR")
        for code in self.CURRENCIES:
            try:
                currency_exponent(code)
            except UnknownCurrency as exc:
                raise ConfigError(f"CURRENCIES: {exc}") from None
            if code not in MINIMUM_CHARGE:
                raise ConfigError(f"CURRENCIES: Stripe's minimum charge for {code} is not known")
        self._validate_reports_database()
        self._validate_amounts()
        self._validate_scheduler()
        self._validate_counting()
        self._validate_antifraud()
        if self.AB_MIN_IMPRESSIONS < 0 or self.AB_MIN_GIFTS < 0:
            raise ConfigError("AB_MIN_IMPRESSIONS and AB_MIN_GIFTS must be 0 or more")
        if not 0.5 < self.AB_WINNER_PROBABILITY < 1:
            raise ConfigError("AB_WINNER_PROBABILITY must be above 0.5 and below 1 (such as 0.95)")
        if self.DONATIONS_ENV == "production":
            missing = [
                name
                for name, value in (
                    ("STRIPE_SECRET_KEY", self.STRIPE_SECRET_KEY),
                    ("STRIPE_WEBHOOK_SECRET", self.STRIPE_WEBHOOK_SECRET),
                )
                if not value
            ]
            if missing:
                raise ConfigError(f"production needs {', '.join(missing)} (the sandbox is refused in production)")
            if not self.SMTP_URL:
                raise ConfigError("production needs SMTP_URL (without it receipts would only reach the log)")
            if self.STRIPE_WEBHOOK_SECRET == SANDBOX_WEBHOOK_SECRET:
                raise ConfigError("production needs a real STRIPE_WEBHOOK_SECRET")
            if self.SECRET_KEY == DEFAULT_SECRET_KEY or len(self.SECRET_KEY) < 32:
                raise ConfigError("production needs a SECRET_KEY of at least 32 random characters")
            if self.SCHEDULER_TICK_SECONDS is not None:
                raise ConfigError("SCHEDULER_TICK_SECONDS is for tests only: production runs every job on its schedule")


class TestConfig(Config):
    """Tests: a database from TEST_DATABASE_URL or a temporary SQLite file, the sandbox, no SMTP."""

    TESTING = True

    def __init__(self, environ: dict[str, str] | None = None, instance_path: str | None = None):
        env = {k: v for k, v in (os.environ if environ is None else environ).items()
               if not k.startswith(("STRIPE_", "SMTP_")) and k not in ("DATABASE_URL", "DONATIONS_ENV")}
        env.setdefault("PUBLIC_URL", "http://donations.test")
        env.setdefault("ALLOWED_ORIGINS", "https://publisher.example")
        env.setdefault("EMBED_CACHE_SECONDS", "0")  # tests change campaigns and look at once
        super().__init__(env, instance_path)
        self.WTF_CSRF_ENABLED = True
        # The anti-fraud defaults would refuse most tests' quick, repeated gifts; the hostile suite (and any test
        # that needs them) sets them back through ``environ``.
        self.FORM_MIN_SECONDS = _number(env, "FORM_MIN_SECONDS", "0", float)
        for name in ("CHECKOUT_LIMIT_PER_IP", "CHECKOUT_LIMIT_PER_EMAIL", "CHECKOUT_LIMIT_GLOBAL"):
            setattr(self, name, env.get(name, "10000 per minute"))
        #: No background thread in tests: counts are written by the request, or by counting.flush() itself.
        self.COUNT_FLUSH_SECONDS = 0
        self.ARGON2_PROFILE = "CHEAPEST"  # hashing speed only; the production profile has a test of its own


def statements_day(value: str, year: int):
    """The day of ``year`` that ANNUAL_STATEMENTS_DATE (``MM-DD``) names; ValueError when it names none.

    Checked against 2001, a year without 29 February, so the setting works every year.
    """
    from datetime import date

    month, sep, day = value.partition("-")
    if not (sep and len(month) == 2 and len(day) == 2 and month.isdigit() and day.isdigit()):
        raise ValueError(value)
    return date(year, int(month), int(day))


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "localhost"
