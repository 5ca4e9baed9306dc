"""Every page the walk opens (staff as an admin, the manage link as its supporter, the reader's pages) names each
id once, and every label and aria-describedby names an element that is there: assistive technology follows
those references, and a repeated id sends it to the wrong field."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from collections import Counter

from tests.hostile.forms import client_for, fill, rules


def _pages(app, world):
    for rule in rules(app, "GET"):
        path = fill(rule, world.ids)
        response = client_for(world, path).get(path)
        if response.status_code == 200 and "html" in (response.mimetype or ""):
            yield path, response.get_data(as_text=True)


def test_every_id_on_every_page_is_unique_and_every_reference_names_one(app, world):
    pages, wrong = [], []
    for path, html in _pages(app, world):
        pages.append(path)
        ids = re.findall(r'\sid="([^"]+)"', html)
        wrong += [(path, "repeated id", i) for i, n in Counter(ids).items() if n > 1]
        wrong += [(path, "label for", target) for target in re.findall(r'<label[^>]*\sfor="([^"]+)"', html)
                  if target not in ids]
        wrong += [(path, "aria", target) for names in re.findall(r'\saria-(?:describedby|labelledby)="([^"]+)"', html)
                  for target in names.split() if target not in ids]
    assert wrong == []
    # The walk reached the pages with several forms: the manage page, the staff supporter page, the schedules.
    assert {"/donate", f"/account/{world.ids['token']}", f"/staff/supporters/{world.ids['supporter_id']}",
            "/staff/reports/schedule", "/staff/users", "/staff/emails"} <= set(pages), pages


class _Outline(HTMLParser):
    """The page's h1 elements and the text of each table header cell (text inside hidden-from-sight spans counts:
    a screen reader reads it)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.h1s, self.headers, self._th = 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "h1":
            self.h1s += 1
        elif tag == "th":
            self._th = ""
        elif self._th is not None:
            label = dict(attrs).get("aria-label") or dict(attrs).get("alt") or ""
            self._th += label

    def handle_endtag(self, tag):
        if tag == "th" and self._th is not None:
            self.headers.append(self._th.strip())
            self._th = None

    def handle_data(self, data):
        if self._th is not None:
            self._th += data


def test_every_page_has_one_h1_and_no_empty_table_header(app, world):
    """A screen reader's user jumps to the h1 to learn where they are, and hears a column's header before each of
    its cells: an empty header is read as nothing. Fragments (the ask inserted into a publisher's page, whose own
    h1 it sits under) are not documents and are left out: they start with no <html>."""
    documents, wrong = [], []
    for path, html in _pages(app, world):
        if "<html" not in html[:500].lower():
            continue
        documents.append(path)
        outline = _Outline()
        outline.feed(html)
        if outline.h1s != 1:
            wrong.append((path, f"{outline.h1s} h1"))
        wrong += [(path, "empty th") for text in outline.headers if not text]
    assert wrong == [], "\n".join(map(str, wrong))
    # The walk reached the iframe's page and the staff tables that had a header without a name.
    assert {f"/staff/supporters/{world.ids['supporter_id']}", "/staff/users", "/staff/emails", "/staff/"} <= set(
        documents), documents
    assert any(p.startswith("/embed/") for p in documents), documents
