"""Every page the walk opens (staff as an admin, the manage link as its supporter, the reader's pages) names each
id once, and every label and aria-describedby names an element that is there: assistive technology follows
those references, and a repeated id sends it to the wrong field."""
from __future__ import annotations

import re
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
