"""The benchmark results file: each measurement replaces only its own section; the page shows them all."""
from __future__ import annotations

import json

from donations.bench.results import Section, write


def _section(name: str, title: str, figure: float) -> Section:
    return Section(name=name, title=title, intro=f"What {name} measures.", columns=[("what", "What"), ("rps", "Req/s")],
                   rows=[{"what": "thing", "rps": figure}], machine={"cpus": 2, "postgresql": "15.18"})


def test_a_second_measurement_is_added_beside_the_first(tmp_path):
    json_path, md_path = tmp_path / "benchmarks.json", tmp_path / "benchmarks.md"

    write(_section("embed", "Embed traffic", 1500.0), json_path, md_path)
    write(_section("export", "Export", 42.5), json_path, md_path)

    sections = json.loads(json_path.read_text())["sections"]
    assert list(sections) == ["embed", "export"]
    page = md_path.read_text()
    assert page.index("## Embed traffic") < page.index("## Export")
    assert "| thing | 1,500 |" in page and "| thing | 42.50 |" in page


def test_running_a_measurement_again_replaces_only_its_own_figures(tmp_path):
    json_path, md_path = tmp_path / "benchmarks.json", tmp_path / "benchmarks.md"
    write(_section("embed", "Embed traffic", 1500.0), json_path, md_path)
    write(_section("export", "Export", 42.5), json_path, md_path)

    write(_section("embed", "Embed traffic", 1800.0), json_path, md_path)

    sections = json.loads(json_path.read_text())["sections"]
    assert sections["embed"]["rows"][0]["rps"] == 1800.0
    assert sections["export"]["rows"][0]["rps"] == 42.5
    assert "1,500" not in md_path.read_text()
