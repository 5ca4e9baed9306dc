"""Small helpers for driving HTML forms through the test client."""
from __future__ import annotations

import re


def hidden_value(html: str, name: str) -> str:
    """The value of a hidden input, whatever the attribute order."""
    for tag in re.findall(r"<input[^>]*>", html):
        if re.search(rf'name="{re.escape(name)}"', tag):
            match = re.search(r'value="([^"]*)"', tag)
            return match.group(1) if match else ""
    raise AssertionError(f"no input named {name!r}")


def csp_directives(response) -> dict[str, str]:
    """The response's Content-Security-Policy as {directive: sources}."""
    policy = response.headers.get("Content-Security-Policy", "")
    return {name: rest.strip() for name, _, rest in
            (part.strip().partition(" ") for part in policy.split(";") if part.strip())}


def frame_ancestors(response) -> str | None:
    """Who may frame the page, as its Content-Security-Policy says."""
    return csp_directives(response).get("frame-ancestors")
