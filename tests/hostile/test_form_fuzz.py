"""Every form field of every page, and every path and query argument of every route, with hostile values: the
answer is never a 5xx. Forms and routes are discovered from the app (tests/hostile/forms.py)."""
from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.forms import client_for, endpoints, fill, route_app
from tests.hostile.fuzzing import EXAMPLES, FIELD_EXAMPLES, HOSTILE, HOSTILE_FIELD, hostile_segment, hostile_text

APP = route_app()
POST_ENDPOINTS = endpoints(APP, "POST")
GET_RULES = [r for r in APP.url_map.iter_rules() if "GET" in r.methods and r.endpoint not in ("static", "campaigns.static")]
ARG_RULES = [r for r in APP.url_map.iter_rules() if r.arguments and r.endpoint not in ("static", "campaigns.static")]
#: Query arguments the app reads somewhere, fuzzed on every GET route (names from GET forms are added to these).
QUERY_NAMES = ["page", "after", "before", "cursor", "q", "campaign", "variant", "currency", "frequency", "amount",
               "article_url", "attempt", "session_id", "locale", "from", "to", "start", "end", "year", "month",
               "period", "status", "kind", "format", "next", "sort", "role", "action", "email"]

#: A field value is one hostile text, the field left out, or the field sent several times.
field_values = st.one_of(hostile_text.map(lambda v: [v]), st.just([]),
                         st.lists(hostile_text, min_size=2, max_size=3))


def _check(response, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}\n{response.get_data(as_text=True)[:2000]}"


# First: it posts the pages' one-time tokens (the donation form's) with valid values.
def test_the_walk_finds_the_forms(world):
    """The discovery itself works: the donation form, the staff campaign editor and a manage-link form are found
    with their fields (a walk that found nothing would make the fuzzing above pass for nothing)."""
    by_endpoint = {f.endpoint: f for f in world.forms if f.method == "post"}
    assert {"checkout.donate", "staff.save_campaign", "accounts.act", "staff.login"} <= set(by_endpoint)
    assert {"amount", "email", "currency", "csrf_token"} <= set(by_endpoint["checkout.donate"].names())
    fuzzed = [e for e in POST_ENDPOINTS if world.forms_for(e)]
    fields = sum(len(f.names()) for e in POST_ENDPOINTS for f in world.forms_for(e))
    print(f"\nhostile: {len(fuzzed)}/{len(POST_ENDPOINTS)} POST routes with a discovered form, "
          f"{sum(len(world.forms_for(e)) for e in POST_ENDPOINTS)} forms, {fields} fields, "
          f"{len(GET_RULES)} GET routes, {len(ARG_RULES)} routes with path arguments, {FIELD_EXAMPLES} examples per field, {EXAMPLES} per route; "
          f"blind: {[e for e in POST_ENDPOINTS if not world.forms_for(e)]}")
    assert urlsplit(by_endpoint["checkout.donate"].action).path == "/donate"
    # The valid values taken from the pages pass (CSRF token included), so a fuzzed field is the only wrong one.
    for endpoint in ("checkout.donate", "staff.save_campaign", "staff.create_campaign"):
        # Fresh made-up values: the fuzzing may have used the page's (a slug is taken once).
        answers = []
        for form in world.forms_for(endpoint):  # one per submit button (preview, save…)
            data = {k: [f"fresh{uuid.uuid4().hex[:8]}" if re.fullmatch(r"fuzz[0-9]+", v) else v for v in vs]
                    for k, vs in form.data().items()}
            response = client_for(world, form.page).post(form.action, data=data)
            answers.append((response.status_code, re.findall(r"<li>([^<]*)</li>|<p[^>]*>([^<]*)</p>",
                                                             response.get_data(as_text=True))[:8]))
        assert {302, 303} & {code for code, _ in answers}, (endpoint, answers)


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_every_field_of_every_form_survives_hostile_values(world, endpoint):
    forms = world.forms_for(endpoint)
    if not forms:
        # No page shows this form in the fuzzing world: post hostile fields blind (names and values).
        rule = next(r for r in APP.url_map.iter_rules() if r.endpoint == endpoint and "POST" in r.methods)
        path = fill(rule, world.ids)
        client = client_for(world, path)

        @HOSTILE
        @given(st.dictionaries(st.text(min_size=1, max_size=20), hostile_text, max_size=4))
        def blind(data):
            _check(client.post(path, data=data), f"POST {path} {data!r}")

        blind()
        return
    for form in forms:
        client = client_for(world, form.page)
        valid = form.data()
        for name in form.names():
            @HOSTILE_FIELD
            @given(field_values)
            def one_field(values):
                data = {**valid, name: values}
                _check(client.post(form.action, data=data), f"POST {form.action} {name}={values!r}")

            one_field()


@pytest.mark.parametrize("rule", GET_RULES, ids=lambda r: r.endpoint)
def test_query_arguments_of_every_page_survive_hostile_values(world, rule):
    path = fill(rule, world.ids)
    names = sorted(set(QUERY_NAMES) | {name for f in world.forms if f.method == "get" for name in f.names()})
    client = client_for(world, path)

    @HOSTILE
    @given(st.dictionaries(st.sampled_from(names), hostile_text, min_size=1, max_size=3))
    def query(args):
        _check(client.get(path, query_string=args), f"GET {path} {args!r}")

    query()


@pytest.mark.parametrize("rule", ARG_RULES, ids=lambda r: f"{r.endpoint}-{'-'.join(sorted(r.methods - {'HEAD', 'OPTIONS'}))}")
def test_path_arguments_of_every_route_survive_hostile_values(world, rule):
    method = "GET" if "GET" in rule.methods else "POST"

    @HOSTILE
    @given(st.sampled_from(sorted(rule.arguments)), hostile_segment)
    def segment(name, raw):
        path = fill(rule, world.ids, {name: raw})
        client = client_for(world, path)
        _check(client.open(path, method=method), f"{method} {path}")

    segment()
