"""Field checks shared by the donation form and the JSON API: what the reader typed, cleaned or refused."""
from __future__ import annotations

import pytest

from donations.checkout.validation import clean_article_url, clean_email, clean_name

# --- email --------------------------------------------------------------------------------------


def test_email_is_trimmed_and_lower_cased():
    assert clean_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize("value", [None, "", "   ", 42])
def test_missing_email_asks_for_one(value):
    with pytest.raises(ValueError, match="Enter your email address"):
        clean_email(value)


@pytest.mark.parametrize("value", [
    "ada", "ada@", "@example.com", "ada@example..com", "ada lovelace@example.com",
    "ada@example.com,bob@example.com", "Ada <ada@example.com>", "ada@localhost",
])
def test_malformed_email_is_refused_with_an_example(value):
    with pytest.raises(ValueError, match="such as name@example.com"):
        clean_email(value)


@pytest.mark.parametrize("value", [
    "a@b.com\r\nBcc: x@y.z",  # header injection into the receipt email
    "a@b.com\nBcc: x@y.z",
    "a@b.com\x00",
    "a\x00@b.com",
    "a\u200b@b.com",  # zero-width space: looks identical, is another address
])
def test_email_with_control_characters_is_refused(value):
    with pytest.raises(ValueError, match="Enter a valid email address"):
        clean_email(value)


def test_email_longer_than_254_characters_is_refused():
    too_long = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example"  # 255 characters
    assert len(too_long) == 255
    with pytest.raises(ValueError, match="Enter a valid email address"):
        clean_email(too_long)


def test_longest_local_part_is_accepted():
    address = "a" * 64 + "@example.com"
    assert clean_email(address) == address


# --- name ---------------------------------------------------------------------------------------


def test_name_whitespace_is_collapsed():
    assert clean_name("  Ada \t  Lovelace\r\n ") == "Ada Lovelace"


def test_names_in_any_script_are_kept():
    assert clean_name("Zoë Ångström") == "Zoë Ångström"
    assert clean_name("山田 太郎") == "山田 太郎"


@pytest.mark.parametrize("value", [None, "", "   \t\n"])
def test_empty_name_is_no_name(value):
    assert clean_name(value) is None


def test_name_of_10000_characters_is_refused():
    with pytest.raises(ValueError, match="at most 200 characters"):
        clean_name("x" * 10_000)


def test_name_of_200_characters_is_accepted():
    assert clean_name("x" * 200) == "x" * 200


@pytest.mark.parametrize("value", ["Ada\x00Lovelace", "Ada\u202eecalevoL", "Ada\u200bLovelace"])
def test_name_with_control_or_invisible_characters_is_refused(value):
    with pytest.raises(ValueError, match="not allowed"):
        clean_name(value)


def test_name_that_is_not_text_is_refused():
    with pytest.raises(ValueError, match="must be text"):
        clean_name(["Ada"])


# --- article URL --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "http://publisher.example/news/1",
    "https://publisher.example/news/1?utm_source=x#comments",
])
def test_http_and_https_article_urls_are_kept_as_given(value):
    assert clean_article_url(value) == value


@pytest.mark.parametrize("value", [None, ""])
def test_missing_article_url_is_none(value):
    assert clean_article_url(value) is None


@pytest.mark.parametrize("value", [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://publisher.example/news/1",
    "/news/1",
    "news/1",
    "//publisher.example/news/1",
    "https://",
    "https://publisher.example/news 1",
    " https://publisher.example/news/1",
    "https://publisher.example/news/1\r\nX-Injected: 1",
    "https://publisher.example/news/1\x00",
    "https://publisher.example/\tnews",
    "https://publisher.example/" + "a" * 2000,
    42,
])
def test_article_url_other_than_absolute_http_is_refused(value):
    with pytest.raises(ValueError, match="Article URL must be an http or https address"):
        clean_article_url(value)


def test_article_url_with_a_broken_host_is_refused_with_the_usual_message():
    with pytest.raises(ValueError, match="Article URL must be an http or https address"):
        clean_article_url("https://[publisher.example/news/1")


def test_internationalised_addresses_that_many_servers_cannot_deliver_are_refused():
    with pytest.raises(ValueError, match="valid email"):
        clean_email("jörg@exämple.de")
