"""Auto-discovery of every form and route of the app, for the hostile suite.

Nothing here lists the app's forms by hand: every GET route of ``app.url_map`` is opened (path arguments filled
from a small world of real rows), as an admin for ``/staff`` pages, with a valid manage link for ``/account``
pages and as an anonymous reader elsewhere, and every ``<form>`` on those pages is parsed (fields, their valid
values, the CSRF token). A route added later is picked up by the same walk.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import AnyConverter, IntegerConverter, Rule

#: Routes that serve files, not pages (walking them proves nothing about forms).
SKIP_ENDPOINTS = {"static", "campaigns.static"}


@dataclass
class Form:
    action: str               # the path the form posts to (query string kept)
    method: str               # "get" or "post"
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, valid value), in page order
    buttons: list[tuple[str, str]] = field(default_factory=list)  # named submit buttons (one is sent)
    endpoint: str = ""
    page: str = ""            # the page it was found on

    def names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.fields))

    def data(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.fields:
            out.setdefault(name, []).append(value)
        return out


#: A value a person would type into an empty field, by input type (a required text field gets a word).
PLAUSIBLE = {"email": "fuzz-reader@example.com", "url": "https://publisher.example/news/fuzz",
             "number": "10", "date": "2026-01-15", "month": "2026-01", "password": "correct horse battery staple",
             "tel": "+44 20 7946 0000"}


_SERIAL = itertools.count(1)


def plausible(name: str, kind: str, attrs: dict) -> str:
    if kind == "number" and attrs.get("min"):
        return attrs["min"]
    if kind in PLAUSIBLE:
        return PLAUSIBLE[kind]
    if "email" in name:
        return PLAUSIBLE["email"]
    return f"fuzz{next(_SERIAL)}"  # unique, for fields that must be (slugs, keys)


class _FormParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._select_value: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None
        self._text = ""
        self._radios: dict[str, str] = {}
        self._button_taken = False

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action") or self.page, method=(a.get("method") or "get").lower(),
                              page=self.page)
            self._radios, self._button_taken = {}, False
            return
        if self._form is None or "name" not in a or "disabled" in a:
            return
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind in ("checkbox",):
                if "checked" in a:
                    self._form.fields.append((name, a.get("value", "on")))
            elif kind == "radio":
                if "checked" in a or name not in self._radios:
                    self._radios[name] = a.get("value", "on")
            elif kind in ("submit", "image", "button", "reset", "file"):
                if kind == "submit":
                    self._form.buttons.append((name, a.get("value", "")))
            else:
                value = a.get("value", "")
                if not value and ("required" in a or kind in PLAUSIBLE):
                    value = plausible(name, kind, a)
                self._form.fields.append((name, value))
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._form.buttons.append((name, a.get("value", "")))
        elif tag == "select":
            self._select, self._select_value, self._select_first = name, None, None
        elif tag == "textarea":
            self._textarea, self._text = name, ""
            self._textarea_required = "required" in a

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag):
        if self._form is None:
            return
        if tag == "textarea" and self._textarea is not None:
            text = self._text.removeprefix("\r").removeprefix("\n")  # a leading line end is dropped, as browsers do
            if not text and self._textarea_required:
                text = "Fuzzing text"
            self._form.fields.append((self._textarea, text))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            self._form.fields.append((self._select, self._select_value if self._select_value is not None
                                      else (self._select_first or "")))
            self._select = None
        elif tag == "form":
            self._form.fields.extend(self._radios.items())
            self.forms.append(self._form)
            self._form = None

    # <option> inside a <select>
    def unknown_decl(self, data):  # pragma: no cover - HTMLParser hook, nothing to do
        pass


class _OptionParser(_FormParser):
    def handle_starttag(self, tag, attrs):
        if tag == "option" and self._select is not None:
            a = {k: (v or "") for k, v in attrs}
            value = a.get("value")
            self._pending_option = value
            if value is not None:
                if self._select_first is None:
                    self._select_first = value
                if "selected" in a:
                    self._select_value = value
            return
        super().handle_starttag(tag, attrs)


def parse_forms(html: str, page: str) -> list[Form]:
    parser = _OptionParser(page)
    parser.feed(html)
    parser.close()
    return parser.forms


# -- routes and their arguments --------------------------------------------------------------------

def endpoints(app: Flask, method: str) -> list[str]:
    return sorted({r.endpoint for r in app.url_map.iter_rules()
                   if method in r.methods and r.endpoint not in SKIP_ENDPOINTS})


def rules(app: Flask, method: str) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if method in r.methods and r.endpoint not in SKIP_ENDPOINTS]


def _valid(rule: Rule, name: str, ids: dict[str, object]) -> object:
    converter = rule._converters[name]
    if name in ids:
        return ids[name]
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0] if hasattr(converter, "items") else converter.regex.strip("()").split("|")[0]
    return 1 if isinstance(converter, IntegerConverter) else "x"


def fill(rule: Rule, ids: dict[str, object], override: dict[str, str] | None = None) -> str:
    """The path of ``rule`` with each argument taken from ``ids`` (by name; ints default to 1), or from
    ``override`` (already URL-encoded text, put in as it is)."""
    override = override or {}
    values, marks = {}, {}
    for index, name in enumerate(rule.arguments):
        if name in override:
            converter = rule._converters[name]
            mark = 987654300 + index if isinstance(converter, IntegerConverter) else f"HOSTILEMARK{index}"
            if isinstance(converter, AnyConverter):
                mark = _valid(rule, name, ids)
            values[name], marks[str(mark)] = mark, override[name]
        else:
            values[name] = _valid(rule, name, ids)
    path = rule.map.bind("localhost").build(rule.endpoint, values, method=next(iter(rule.methods - {"HEAD", "OPTIONS"})),
                                            append_unknown=False)
    for mark, raw in marks.items():
        path = path.replace(mark, raw, 1)
    return path


def endpoint_of(app: Flask, action: str, method: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _ = adapter.match(urlsplit(action).path, method=method.upper())
    except Exception:  # noqa: BLE001 - not a route of ours (an external action) or a redirect
        return None
    return endpoint


def client_for(world, path: str) -> FlaskClient:
    """The browser a page is opened with: the admin for /staff (a visitor of its own for the sign-in page), the
    supporter for their manage link, an anonymous reader otherwise."""
    if path.startswith("/staff/login"):
        return world.visitor  # the sign-in page starts a new session: the reader's CSRF token would change
    if path.startswith("/staff"):
        return world.staff
    if path.startswith("/account/"):
        return world.supporter
    return world.reader


def crawl(app: Flask, world) -> list[Form]:
    """Open every GET route once and collect every form on the pages that answer 200 with HTML."""
    forms: list[Form] = []
    for rule in rules(app, "GET"):
        path = fill(rule, world.ids)
        response = client_for(world, path).get(path)
        if response.status_code != 200 or "html" not in (response.mimetype or ""):
            continue
        for form in parse_forms(response.get_data(as_text=True), path):
            if urlsplit(form.action).netloc:
                continue
            form.endpoint = endpoint_of(app, form.action, form.method) or ""
            if not form.endpoint:
                continue
            # A form with several named submit buttons (preview, save…) is one form per button.
            for button in dict.fromkeys(form.buttons) or [None]:
                forms.append(replace(form, fields=form.fields + ([button] if button else [])))
    return forms


_ROUTE_APP = None


def route_app() -> Flask:
    """An app built at collection time, only to read its URL map (tests are parametrized by route)."""
    global _ROUTE_APP
    if _ROUTE_APP is None:
        import os
        import tempfile

        from donations import create_app
        from donations.config import TestConfig

        config = TestConfig(environ={**os.environ, "DATABASE_URL": "sqlite://"}, instance_path=tempfile.mkdtemp())
        config.SQLALCHEMY_DATABASE_URI = "sqlite://"
        _ROUTE_APP = create_app(config)
    return _ROUTE_APP
