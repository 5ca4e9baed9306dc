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
