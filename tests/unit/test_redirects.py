"""safe_next: redirect targets from user input go to our own paths or an allowlisted origin, nowhere else."""
from __future__ import annotations

import pytest

from donations.security.redirects import safe_next

ALLOWED = ["https://publisher.example", "http://donations.test"]

#: The issue's list, then the tricks browsers and URL parsers add to it.
HOSTILE = [
    "https://evil.example", "//evil", "/\\evil", "https:evil", "javascript:", "%2F%2Fevil", "https://pub@evil",
    "https://publisher.example@evil.example", "https://publisher.example.evil.example/",
    "https://evil.example/https://publisher.example", "\\\\evil", "\\/evil", "http:/\\evil", "http:\\\\evil",
    "/%5Cevil", "/%5cevil", "%2f%2fevil", "%252F%252Fevil", "/%2F/evil", "/\t/evil", "/\n/evil", "\t//evil",
    " //evil", "/ /evil", "/%09/evil", "/%0d%0aSet-Cookie:x=1", "JAVASCRIPT:alert(1)", "javascript:alert(1)",
    "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "HTTPS://evil.example",
    "https://evil.example:443@publisher.example", "https:/evil.example", "https:///evil.example",
    "ftp://publisher.example/", "https://publisher.example:8443/", "https://publisher.examplé/",
    "https://publisher.example\\@evil.example", "http://donations.test\x00.evil/", "", "evil", "staff/",
    "https://publisher.example%2F@evil.example", "https://publisher.example%40evil.example",
]

GOOD = [
    "/staff/", "/staff/supporters?q=ada&status=active", "/donate?campaign=default#form",
    "https://publisher.example", "https://publisher.example/", "https://publisher.example/thanks?x=1",
    "https://publisher.example/thanks?session={CHECKOUT_SESSION_ID}", "http://donations.test/thanks",
    "/staff/supporters?q=a%20b",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_targets_are_refused(target):
    assert safe_next(target, ALLOWED) is None


@pytest.mark.parametrize("target", GOOD)
def test_our_paths_and_allowlisted_origins_are_kept_as_given(target):
    assert safe_next(target, ALLOWED) == target


def test_without_an_allowlist_only_paths_pass():
    assert safe_next("https://publisher.example/", []) is None
    assert safe_next("/donate", []) == "/donate"


def test_a_path_prefix_keeps_staff_sign_in_on_staff_pages():
    assert safe_next("/staff/donations", path_prefix="/staff/") == "/staff/donations"
    assert safe_next("/donate", path_prefix="/staff/") is None
    assert safe_next("https://publisher.example/staff/", path_prefix="/staff/") is None  # sign-in names no origins


@pytest.mark.parametrize("target", [None, 1, ["/staff/"], "/" + "a" * 2001])
def test_anything_but_a_reasonable_string_is_refused(target):
    assert safe_next(target, ALLOWED) is None
