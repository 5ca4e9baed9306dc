"""A failing browser test leaves what CI keeps: a screenshot and the console log of each page it opened."""
from __future__ import annotations

from pathlib import Path

from tests.browser.conftest import skip_without_chromium

skip_without_chromium()

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def test_a_failing_browser_test_leaves_a_screenshot_and_the_console_log(pytester, monkeypatch, tmp_path):
    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv("TEST_ARTIFACTS", str(artifacts))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest("from tests.browser.conftest import *  # noqa: F401,F403\n")
    pytester.makepyfile(test_probe="""
def test_probe(new_context):
    page = new_context().new_page()
    page.set_content("<p>Probe page</p><script>console.error('the probe broke')</script>")
    page.get_by_text("Probe page").wait_for()
    assert False, "fails on purpose"

def test_passing(new_context):
    new_context().new_page().set_content("<p>fine</p>")
""")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    assert sorted(p.name for p in artifacts.iterdir()) == ["test_probe-0.log", "test_probe-0.png"]
    assert (artifacts / "test_probe-0.png").read_bytes().startswith(b"\x89PNG")
    assert "error: the probe broke" in (artifacts / "test_probe-0.log").read_text()
