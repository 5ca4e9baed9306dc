"""Benchmark results: one JSON file holding every measurement's section, and the Markdown page rendered from it.

The JSON file is the record; the Markdown page is always rendered from the whole of it. A measurement writes only
its own section (by name), so the embed figures and, later, the renewal, export or outbox figures each keep the
machine, date and commit they were measured with.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Section:
    """One measurement: a table of figures and what they were measured with."""

    name: str  #: key in the JSON file, e.g. "embed"
    title: str
    intro: str
    columns: list[tuple[str, str]]  #: (row key, column heading)
    rows: list[dict]
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    smoke: bool = False  #: a smoke run checks that the harness works; its figures are not measurements


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(postgres_version: str | None = None, **extra) -> dict:
    """What the figures depend on: CPUs, memory, OS, Python, PostgreSQL, date, commit, and the load seen."""
    cpuinfo = _read(Path("/proc/cpuinfo")) or ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    meminfo = _read(Path("/proc/meminfo")) or ""
    mem_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), None)
    os_release = _read(Path("/etc/os-release")) or ""
    os_name = next((line.split("=", 1)[1].strip('"') for line in os_release.splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.platform())
    commit = _git("rev-parse", "--short=12", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "os": f"{os_name} ({platform.system()} {platform.release()})",
        "python": platform.python_version(),
        "postgresql": postgres_version,
        **extra,
    }


def load(path: Path) -> dict:
    """The results file as a dict; an empty record when there is none yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"sections": {}}
    if not isinstance(data, dict) or not isinstance(data.get("sections"), dict):
        raise ValueError(f"{path} is not a benchmark results file")
    return data


def write(section: Section, json_path: Path, md_path: Path) -> None:
    """Put ``section`` into the JSON record (replacing its earlier figures only) and render the Markdown page."""
    data = load(json_path)
    data["sections"][section.name] = asdict(section)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render(data))


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


MACHINE_LABELS = [("date", "Date (UTC)"), ("commit", "Commit"), ("cpus", "CPUs"), ("cpu_model", "CPU"),
                  ("memory_gb", "Memory (GB)"), ("os", "OS"), ("python", "Python"), ("postgresql", "PostgreSQL")]


def render(data: dict) -> str:
    """The Markdown page for the whole record: each section with its machine, settings, table and notes."""
    out = ["# Benchmarks", "",
           "Written by `make bench` (`flask --app app bench …`); the same figures are in `benchmarks.json`. "
           "Each figure is the median of several runs, measured side by side with its reference on the same "
           "machine, so the ratio matters more than the absolute number.", ""]
    for section in data["sections"].values():
        out += [f"## {section['title']}", ""]
        if section.get("smoke"):
            out += ["**Smoke run**: about a second per target, one run. It shows that the harness works; "
                    "its figures are not measurements and are not judged.", ""]
        out += [section["intro"], ""]
        machine = section.get("machine", {})
        shown = [(label, machine[key]) for key, label in MACHINE_LABELS if machine.get(key) is not None]
        extra = [(key.replace("_", " ").capitalize(), value) for key, value in machine.items()
                 if key not in dict(MACHINE_LABELS)]
        out += ["| Machine | |", "|---|---|"] + [f"| {label} | {_cell(value)} |" for label, value in shown + extra]
        out.append("")
        if section.get("settings"):
            out += ["Settings: " + ", ".join(f"{key} {_cell(value)}" for key, value in section["settings"].items()),
                    ""]
        columns = section["columns"]
        out.append("| " + " | ".join(heading for _, heading in columns) + " |")
        out.append("|" + "---|" * len(columns))
        for row in section["rows"]:
            out.append("| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |")
        out.append("")
        out += [f"- {note}" for note in section.get("notes", [])]
        if section.get("notes"):
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
