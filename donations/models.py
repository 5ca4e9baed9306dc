"""Imports every model so that Alembic and the app see all tables."""
from .campaigns.models import Campaign  # noqa: F401
from .checkout.models import CheckoutAttempt  # noqa: F401
from .job_runs import JobRun  # noqa: F401
from .leader import SchedulerLock  # noqa: F401
from .ledger.models import (  # noqa: F401
    ClosedPeriod,
    ConsentRecord,
    Dispute,
    Donation,
    Erasure,
    LedgerLine,
    Payout,
    ReceiptSequence,
    RecurringChange,
    RecurringDonation,
    Refund,
    StripeEvent,
    Supporter,
)
from .mail.models import OutboxEmail  # noqa: F401
from .payments.models import EventSyncCursor, SandboxObject  # noqa: F401
from .reports.models import AnnualStatement, ExportJob, ReportSchedule, StatementSequence  # noqa: F401
from .staff.models import AuditEntry, DashboardSnapshot, DashboardSnapshotArticle, StaffSession, StaffUser  # noqa: F401
from .security.models import SecurityState  # noqa: F401
