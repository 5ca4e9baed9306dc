"""The app's own pages open in Chromium without an error in the console and without a request that fails
(a missing favicon, a script blocked by the Content-Security-Policy, a stylesheet that 404s)."""
from __future__ import annotations

import pytest

from tests.browser.conftest import skip_without_chromium

skip_without_chromium()


@pytest.mark.parametrize("path", ["/", "/donate", "/donate?frequency=monthly&locale=de", "/account",
                                  "/staff/login"])
def test_a_page_opens_without_console_errors_or_failed_requests(new_context, live_app, path):
    _, origin = live_app
    page = new_context().new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url} {request.failure}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)

    page.goto(origin + path)
    page.wait_for_load_state("networkidle")

    assert page.locator("main").count() == 1
    assert problems == []
