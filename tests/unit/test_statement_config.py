"""Settings of the annual statements: the publisher's details and the day statements go out."""
from __future__ import annotations

from datetime import date

import pytest

from donations.config import Config, ConfigError
from donations.reports.statements import due_fiscal_year, last_ended_fiscal_year


def config(environ: dict, tmp_path) -> Config:
    return Config(environ=environ, instance_path=str(tmp_path / "instance"))


def test_defaults_name_the_publication_and_leave_the_rest_out(tmp_path):
    cfg = config({"PUBLICATION_NAME": "The Valley Post"}, tmp_path)

    assert cfg.PUBLISHER_LEGAL_NAME == "The Valley Post"
    assert (cfg.PUBLISHER_ADDRESS, cfg.PUBLISHER_TAX_ID, cfg.PUBLISHER_REGISTRATION) == ("", "", "")
    assert cfg.ANNUAL_STATEMENTS_DATE == "01-31"
    cfg.validate()


def test_publisher_details_are_read_and_an_escaped_newline_breaks_the_address(tmp_path):
    cfg = config({"PUBLISHER_LEGAL_NAME": "Valley Media Ltd", "PUBLISHER_ADDRESS": r"1 Mill Lane\nLeeds LS1 1AA",
                  "PUBLISHER_TAX_ID": " GB123 ", "PUBLISHER_REGISTRATION": "Charity 1234567"}, tmp_path)

    assert cfg.PUBLISHER_LEGAL_NAME == "Valley Media Ltd"
    assert cfg.PUBLISHER_ADDRESS == "1 Mill Lane\nLeeds LS1 1AA"
    assert (cfg.PUBLISHER_TAX_ID, cfg.PUBLISHER_REGISTRATION) == ("GB123", "Charity 1234567")


@pytest.mark.parametrize("value", ["31-01", "1-31", "01/31", "02-29", "13-01", "", "0131", "01-3a"])
def test_an_unusable_statements_date_is_refused_at_start(tmp_path, value):
    with pytest.raises(ConfigError, match="ANNUAL_STATEMENTS_DATE must be a day as MM-DD"):
        config({"ANNUAL_STATEMENTS_DATE": value}, tmp_path).validate()


@pytest.mark.parametrize("start_month,statements_date,today,expected", [
    (1, "01-31", date(2027, 1, 30), None),  # not yet this year
    (1, "01-31", date(2027, 1, 31), 2026),
    (1, "01-31", date(2027, 12, 31), 2026),
    (4, "04-30", date(2027, 4, 30), 2026),  # April 2026 – March 2027
    (4, "04-30", date(2027, 4, 29), None),
    (4, "01-31", date(2027, 2, 1), 2025),  # a day inside a fiscal year: the one that ended before it
])
def test_the_fiscal_year_due_follows_the_start_month_and_the_date(app, monkeypatch, start_month, statements_date,
                                                                  today, expected):
    monkeypatch.setitem(app.config, "FISCAL_YEAR_START_MONTH", start_month)
    monkeypatch.setitem(app.config, "ANNUAL_STATEMENTS_DATE", statements_date)
    with app.app_context():
        assert due_fiscal_year(today) == expected
        assert last_ended_fiscal_year(date(2027, 4, 1)) == 2026  # both end before 1 April 2027
        assert last_ended_fiscal_year(date(2027, 3, 31)) == (2026 if start_month == 1 else 2025)
