"""The export registry: every downloadable export (CLI, /staff/reports, background jobs) is one ExportKind.

To add an export, build an :class:`ExportKind` and pass it to :func:`register` in a module listed in
``KIND_MODULES`` (imported the first time the kinds are asked for):

``name``
    the command-line word (``flask --app app export NAME``) and the web form's value.
``columns``
    the header row, in order.
``count(params) -> int``
    how many rows ``rows(params)`` will yield, as one SQL COUNT: the length of the CLI's progress bar
    and the web job's ``rows_total``.
``rows(params) -> Iterator[list]``
    the rows, streamed (``yield_per``, the result in a ``with`` so that a writer stopping early closes the
    cursor), each a list of *typed* cells, one per column:
    ``str`` (text; defused here, never by the kind; line ends become LF), ``int``, ``Decimal``, :class:`~donations.money.Money`
    (written as a number in its currency's minor-unit precision), ``datetime`` (timezone-aware; written
    as UTC), ``date``, ``bool`` (``yes``/``no``) or ``None`` (empty).
``sheet_column``
    the column whose value picks the XLSX sheet (``"currency"``: one sheet per currency, so amounts
    never mix); None for one sheet.
``sheet_of``
    optional, instead of ``sheet_column``: ``sheet_of(row) -> str`` names the sheet of a row whose amounts
    are in more than one currency column.
``csv_lines(params) -> Iterator[str] | None``
    optional, a fast path for CSV on PostgreSQL: the same rows as finished CSV lines (no line end) made by
    the database, byte for byte what ``rows`` gives through :func:`csv_cell` and ``csv.writer``; None when
    these params need the Python path after all. SQLite always takes ``rows``.
``by_payout``
    True when the kind reads ``params.payout_id`` (``--payout po_…``); the others refuse it.

:class:`ExportParams` is the one parameter object: ``start``/``end`` (UTC days, both included) or
``payout_id``. :func:`write_csv` and :func:`write_xlsx` turn any kind into a file the same way, and call
``progress(rows_done)`` every ``every`` rows and once at the end.

The same writers serve the CLI, the direct download and the scheduler's background jobs, so formula
defusing (a leading ``=``, ``+``, ``-``, ``@``, tab or CR gets a ``'`` in front), number and date types
and the per-currency sheets are the same everywhere.
"""
from __future__ import annotations

import csv
import importlib
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import IO, Any, Callable, Iterator

from ..money import Money

#: Modules that register kinds when imported. Add yours here.
KIND_MODULES = ["donations.reports.exports", "donations.reports.books"]

KINDS: dict[str, "ExportKind"] = {}

Progress = Callable[[int], None]

#: A payout id as Stripe makes them (``po_1OaBcD…``) and as the demo does (``po_demo_eur_20261116``): letters,
#: digits and underscores after ``po_``; never spaces, quotes or control characters. The CLI's ``--payout``,
#: the /staff/reports form and link and the background jobs all pass through :func:`make_params`.
PAYOUT_ID = re.compile(r"po_[A-Za-z0-9_]{1,250}")


@dataclass(frozen=True)
class ExportParams:
    """What to export: a period of UTC days (both included), or the transactions of one Stripe payout."""

    start: date | None = None
    end: date | None = None
    payout_id: str | None = None

    @property
    def since(self) -> datetime:
        """The period's first moment, UTC."""
        return datetime.combine(self.start, time.min, timezone.utc)

    @property
    def until(self) -> datetime:
        """The first moment after the period, UTC."""
        return datetime.combine(self.end + timedelta(days=1), time.min, timezone.utc)

    def to_json(self) -> dict[str, str | None]:
        return {"start": self.start and self.start.isoformat(), "end": self.end and self.end.isoformat(),
                "payout_id": self.payout_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportParams:
        return cls(start=date.fromisoformat(data["start"]) if data.get("start") else None,
                   end=date.fromisoformat(data["end"]) if data.get("end") else None,
                   payout_id=data.get("payout_id"))

    def label(self) -> str:
        """For file names and pages: ``2026-03-01-2026-03-31`` or ``po_123``."""
        return self.payout_id or f"{self.start}-{self.end}"


@dataclass(frozen=True)
class ExportKind:
    name: str
    title: str
    #: One sentence for the reports page and ``--help``.
    description: str
    columns: list[str]
    count: Callable[[ExportParams], int]
    rows: Callable[[ExportParams], Iterator[list]]
    sheet_column: str | None = "currency"
    by_payout: bool = False
    #: Instead of ``sheet_column``: the sheet a row goes to, for kinds whose amounts are in two columns'
    #: currencies (a gift in USD with its fee in EUR goes to "USD in EUR").
    sheet_of: Callable[[list], str | None] | None = None
    #: Optional: finished CSV lines built in SQL, for PostgreSQL (see the module docstring).
    csv_lines: Callable[[ExportParams], Iterator[str] | None] | None = None


def register(kind: ExportKind) -> ExportKind:
    KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, ExportKind]:
    """Every registered kind, by name, in registration order."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return KINDS


class ExportParamError(ValueError):
    """An export asked for with parameters that do not fit; ``field`` names the option."""

    def __init__(self, field: str, message: str, missing: bool = False):
        super().__init__(message)
        self.field = field
        self.missing = missing


def fiscal_year_days(year: int, start_month: int) -> tuple[date, date]:
    """First and last day of the fiscal year that starts in ``start_month`` of ``year`` (April: Apr 1 – Mar 31)."""
    first = date(year, start_month, 1)
    following = date(year + 1, start_month, 1)
    return first, following - timedelta(days=1)


def make_params(kind: ExportKind, *, start: date | None = None, end: date | None = None,
                fiscal_year: int | None = None, payout_id: str | None = None,
                fiscal_start_month: int = 1) -> ExportParams:
    """Check a request's range against the kind: a period (dates or a fiscal year) or, for kinds that
    read payouts, a payout id instead (spaces around it, as pasted, are dropped). Raises ExportParamError
    with the option at fault."""
    payout_id = payout_id.strip() if payout_id else None
    if payout_id:
        if not kind.by_payout:
            payout_kinds = ", ".join(k.name for k in kinds().values() if k.by_payout) or "none yet"
            raise ExportParamError("payout", f"the {kind.name} export has no payout filter "
                                             f"(exports by payout: {payout_kinds})")
        if not PAYOUT_ID.fullmatch(payout_id):
            raise ExportParamError("payout", f"{payout_id[:60]!r} is not a Stripe payout id (po_…)")
        if start or end or fiscal_year is not None:
            raise ExportParamError("payout", "give a payout or a period, not both")
        return ExportParams(payout_id=payout_id)
    if fiscal_year is not None:
        if start or end:
            raise ExportParamError("fiscal-year", "give a fiscal year or first and last days, not both")
        start, end = fiscal_year_days(fiscal_year, fiscal_start_month)
    if start is None:
        raise ExportParamError("from", "or give a fiscal year" + (" or a payout" if kind.by_payout else ""),
                               missing=True)
    if end is None:
        raise ExportParamError("to", "or give a fiscal year" + (" or a payout" if kind.by_payout else ""),
                               missing=True)
    if end < start:
        raise ExportParamError("to", "the last day is before the first")
    return ExportParams(start=start, end=end)


# -- cells ------------------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: str | None) -> str:
    """Text for spreadsheets: a leading = + - @ tab or CR would make a formula (CSV injection), so it
    gets a ' in front, as OWASP advises; the text itself is kept."""
    value = value or ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def text_cell(value: str | None) -> str:
    """Text as both formats write it: defused, and with every line end as LF (XLSX, being XML, cannot keep a
    CR, so the CSV does not either and both read back the same)."""
    return defuse(value).replace("\r\n", "\n").replace("\r", "\n")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def csv_cell(value: object) -> str:
    """One typed cell as CSV text."""
    if type(value) is str:  # the most common cell first: a million rows pass through here
        return text_cell(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Money):
        return value.major_str()
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, Decimal)):
        return str(value)
    return text_cell(str(value))


def _progress_every(rows: Iterator[list], progress: Progress | None, every: int) -> Iterator[list]:
    done = 0
    try:
        for row in rows:
            yield row
            done += 1
            if progress and done % every == 0:
                progress(done)
    finally:
        close = getattr(rows, "close", None)
        if close:  # a kind's generator lets go of its cursor now, even when the writing failed
            close()
    if progress and done % every:
        progress(done)


def sql_csv_lines(kind: ExportKind, params: ExportParams) -> Iterator[str] | None:
    """The kind's CSV lines made by PostgreSQL (``kind.csv_lines``), or None for the Python path: on SQLite,
    for kinds without one, and when the kind declines these params."""
    from .replica import reads

    if kind.csv_lines is None or reads().get_bind().dialect.name != "postgresql":
        return None
    return kind.csv_lines(params)


def write_csv(kind: ExportKind, out: IO[str], params: ExportParams, progress: Progress | None = None,
              every: int = 1000) -> int:
    """Write ``kind`` as CSV (RFC 4180: CRLF, quotes where needed) to the text stream ``out``; returns the
    number of rows. The caller opens ``out`` with ``newline=""`` and picks UTF-8, with or without a BOM."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(kind.columns)
    count = 0
    lines = sql_csv_lines(kind, params)
    if lines is not None:
        for line in _progress_every(lines, progress, every):
            out.write(line)
            out.write("\r\n")
            count += 1
        return count
    for row in _progress_every(kind.rows(params), progress, every):
        writer.writerow([csv_cell(value) for value in row])
        count += 1
    return count


def csv_chunks(kind: ExportKind, params: ExportParams, bom: bool = False, size: int = 64 * 1024) -> Iterator[str]:
    """The CSV in pieces of about ``size`` characters, for a streamed HTTP response."""
    import io

    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(kind.columns)
    lines = sql_csv_lines(kind, params)
    for row in kind.rows(params) if lines is None else lines:
        if lines is None:
            writer.writerow([csv_cell(value) for value in row])
        else:
            buffer.write(row)
            buffer.write("\r\n")
        if buffer.tell() > size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_xlsx(kind: ExportKind, path: str | IO[bytes], params: ExportParams, progress: Progress | None = None,
               every: int = 1000) -> int:
    """Write ``kind`` as XLSX: one sheet per value of ``kind.sheet_column`` (amounts never mix), numbers as
    numbers, times as dates (UTC), text defused as in the CSV. openpyxl's write-only mode keeps memory flat."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheets: dict[str, Any] = {}
    split = kind.columns.index(kind.sheet_column) if kind.sheet_column else None

    def sheet_for(key: str):
        if key not in sheets:
            sheets[key] = book.create_sheet(title=re.sub(r"[\[\]:*?/\\]", " ", key)[:31])
            sheets[key].append(kind.columns)
        return sheets[key]

    def cell(sheet, value):
        if value is None:
            return None
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, Money):
            result = WriteOnlyCell(sheet, value=value.as_decimal())
            result.number_format = "#,##0" + ("." + "0" * value.exponent if value.exponent else "")
            return result
        if isinstance(value, datetime):
            result = WriteOnlyCell(sheet, value=value.astimezone(timezone.utc).replace(tzinfo=None))
            result.number_format = "yyyy-mm-dd hh:mm:ss"
            return result
        if isinstance(value, date):
            result = WriteOnlyCell(sheet, value=value)
            result.number_format = "yyyy-mm-dd"
            return result
        if isinstance(value, (int, Decimal)):
            return value
        # A defused text never starts with "=", so openpyxl stores it as a string, not a formula. Control
        # characters that XML cannot hold (a name from Stripe could have one) would fail the whole file.
        # Stripped before defusing: a "\x0b=HYPERLINK(…)" must not lose its first character after the check.
        return text_cell(ILLEGAL_CHARACTERS_RE.sub("", str(value)))

    count = 0
    for row in _progress_every(kind.rows(params), progress, every):
        if kind.sheet_of is not None:
            key = kind.sheet_of(row) or kind.title
        else:
            key = (str(row[split]) if split is not None and row[split] else None) or kind.title
        sheet = sheet_for(key)
        sheet.append([cell(sheet, value) for value in row])
        count += 1
    if not sheets:
        sheet_for(kind.title)
    book.save(path)
    return count
