"""/staff/reports: the accountant downloads the donations of a period as CSV or XLSX, and it is audited."""
from __future__ import annotations

import csv
import io
from openpyxl import load_workbook
from sqlalchemy import select

from donations.extensions import db
from donations.staff.models import AuditEntry, Role
from tests.dates import recent_days
from tests.staff_helpers import signed_in, webhook_gift


def test_accountant_downloads_the_periods_donations_as_csv(app, client):
    webhook_gift(client)
    signed_in(client, Role.ACCOUNTANT)
    start, end = recent_days()  # yesterday and today: the gift is in it even if midnight passed since

    response = client.get(f"/staff/reports?from={start}&to={end}&format=csv")

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="donations-{start}-{end}.csv"'
    [row] = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert (row["amount"], row["currency"], row["status"]) == ("25.00", "EUR", "succeeded")
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "export")).one()
        assert entry.detail["format"] == "csv" and entry.actor_email


def test_accountant_downloads_xlsx(app, client, tmp_path):
    webhook_gift(client)
    signed_in(client, Role.ACCOUNTANT)
    start, end = recent_days()

    response = client.get(f"/staff/reports?from={start}&to={end}&format=xlsx")

    assert response.status_code == 200
    path = tmp_path / "d.xlsx"
    path.write_bytes(response.data)
    assert load_workbook(path).sheetnames == ["EUR"]


def test_bad_period_is_a_clear_400(client):
    signed_in(client, Role.ADMIN)

    assert client.get("/staff/reports?from=2026-05-01&to=2026-04-01&format=csv").status_code == 400
    response = client.get("/staff/reports?from=yesterday&to=2026-04-01&format=csv")
    assert response.status_code == 400 and "Choose a first and a last day" in response.get_data(as_text=True)


def test_staff_role_cannot_download_reports(client):
    signed_in(client, Role.STAFF)

    assert client.get("/staff/reports").status_code == 403
