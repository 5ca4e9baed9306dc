"""Shared Hypothesis settings and hostile strategies for the hostile suite.

The ``hostile`` profile runs a modest number of examples per field (HOSTILE_EXAMPLES, 20 by default), derandomized
so that CI sees the same inputs on every run; raise HOSTILE_EXAMPLES locally for a longer hunt.
"""
from __future__ import annotations

import os
from urllib.parse import quote

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "20"))
#: Each field of each form is fuzzed on its own (about 150 fields): half as many examples there keeps the suite
#: under a minute on SQLite.
FIELD_EXAMPLES = max(1, EXAMPLES // 2)

settings.register_profile(
    "hostile",
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # One app and one rolled-back database transaction serve every example of a test.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
HOSTILE = settings.get_profile("hostile")
HOSTILE_FIELD = settings(HOSTILE, max_examples=FIELD_EXAMPLES)

#: Characters that break naive code: NUL and other controls, line ends, bidi overrides, a lone surrogate's
#: neighbours, zero-width and combining marks, full-width digits, the BOM.
ODD_CHARS = "\x00\x01\x07\x08\t\n\r\x0b\x0c\x1b\x7f\x85\u00a0\u200b\u200d\u202e\u2028\u2029\ufeff\ufffd\u0301" \
            "\uff11\u0661\U0001f4a9\U0010ffff"

odd_text = st.text(alphabet=st.sampled_from(ODD_CHARS) | st.characters(codec="utf-8"), max_size=40)
huge_text = st.sampled_from([10, 255, 256, 2001, 10_000, 100_000]).map(lambda n: "A" * n) | st.builds(
    lambda c, n: c * n, st.sampled_from(["\x00", "é", "\U0001f4a9", "9", "%", "<"]), st.sampled_from([300, 5000]))
numbers_as_text = st.one_of(
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.sampled_from(["0", "-0", "-1", "2147483647", "2147483648", "9223372036854775808", "1e309", "-1e309", "NaN",
                     "Infinity", "-inf", "1e-400", "0x10", "1_000", "1,5", "25.005", " 25 ", "٣", "１０",
                     "99999999999999999999.99", "0.0000001"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
dates_as_text = st.sampled_from(["0000-00-00", "0001-01-01", "9999-12-31", "10000-01-01", "2026-02-30",
                                 "2026-13-01", "-2026-01-01", "1969-12-31", "2026-1-1", "20260101",
                                 "2026-01-01T25:00", "yesterday", "2147483648", "-1", "0"])
junk_encoded = st.sampled_from(["%00", "%", "%zz", "%C0%AF", "%FF%FE", "%2e%2e%2f", "..%2f..%2fetc%2fpasswd",
                                "%0d%0aSet-Cookie:x=1", "%E2%80%AE", "%25%30%30"])
markup = st.sampled_from(["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)",
                          "{{7*7}}", "${7*7}", "' OR 1=1 --", "'; DROP TABLE supporters; --", "\\", "//evil.example",
                          "https://pub@evil.example", "/\\evil.example"])

#: A hostile value for a form field or a query argument: always a string (that is all HTML forms send).
hostile_text = st.one_of(st.just(""), odd_text, huge_text, numbers_as_text, dates_as_text, junk_encoded, markup)

#: A hostile value in a JSON document: wrong types, nesting, out-of-range numbers, and hostile text.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
                         st.floats(allow_nan=False, allow_infinity=False), hostile_text)
hostile_json = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=6)

#: A hostile path segment (already URL-encoded, as it would travel).
hostile_segment = st.one_of(
    hostile_text.filter(bool).map(lambda s: quote(s, safe="")),
    junk_encoded,
    st.sampled_from(["-1", "0", "2147483648", "99999999999999999999", "1.5", "1e3", "abc", "%00", "..", "%2F"]),
)
