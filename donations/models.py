"""Imports every model so that Alembic and the app see all tables."""
from .campaigns.models import Campaign  # noqa: F401
from .checkout.models import CheckoutAttempt  # noqa: F401
from .ledger.models import ClosedPeriod, Dispute, Donation, LedgerLine, Payout, ReceiptSequence, RecurringChange, RecurringDonation, Refund, StripeEvent, Supporter  # noqa: F401
from .mail.models import OutboxEmail  # noqa: F401
from .payments.models import EventSyncCursor, SandboxObject  # noqa: F401
from .reports.models import AnnualStatement, StatementSequence  # noqa: F401
from .staff.models import AuditEntry, StaffSession, StaffUser  # noqa: F401
from .reports.schedule import ReportSchedule  # noqa: F401
from .reports.export_models import ExportJob  # noqa: F401
from .job_runs import JobRun  # noqa: F401
from .leader import SchedulerLock  # noqa: F401
