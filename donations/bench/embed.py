"""Embed traffic: the counting endpoint, the campaigns JSON and the embed script against an empty Flask route.

Every article view of every publisher page reaches these endpoints, so issue 7 promises that the counting
endpoint and the campaigns JSON sustain at least 80% of the throughput of an empty Flask route served by the same
gunicorn settings. Both servers run side by side; runs alternate between the targets, so that whatever else the
machine does (its load is recorded) falls on all of them alike.
"""
from __future__ import annotations

import json
import statistics
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .load import GUNICORN_SETTINGS, Gunicorn, Request, WrkRun, run_wrk, send, wrk_version
from .results import Section, machine_info

#: An impression as cta.js sends it with navigator.sendBeacon: JSON in a text/plain body.
COUNT_BODY = json.dumps({"type": "impression", "campaign": "default", "variant": "a",
                         "url": "https://publisher.example/2026/11/26/the-river-report?utm_source=bench",
                         "section": "Local", "author": "A. Writer", "title": "The river report"})
BEACON_HEADERS = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://publisher.example"}


@dataclass
class Target:
    """One endpoint under load. ``reference`` names the empty route's target it is compared with."""

    name: str
    server: str  #: a key of SERVERS
    request: Request
    reference: str | None = None
    goal: float | None = None  #: the least ratio to the reference that meets the issue's target
    note: str = ""


#: The gunicorn servers the targets run on: the app, the empty Flask app, and the app with a no-op route.
SERVERS = {"app": ("app:app", "/embed/v1/cta.js"), "empty": ("donations.bench.empty_app:app", "/"),
           "floor": ("donations.bench.floor_app:app", "/bench/noop")}

#: The reference first: an empty route, once per method, as the targets use both.
TARGETS = [
    Target("empty route (GET)", "empty", Request("GET", "/")),
    Target("empty route (POST)", "empty", Request("POST", "/", COUNT_BODY, BEACON_HEADERS)),
    Target("the app's floor: a no-op route (GET)", "floor", Request("GET", "/bench/noop"),
           reference="empty route (GET)",
           note="the whole app, every hook, a view that does nothing: what any route pays at least"),
    Target("POST /embed/v1/count", "app", Request("POST", "/embed/v1/count", COUNT_BODY, BEACON_HEADERS),
           reference="empty route (POST)", goal=0.8, note="an impression, as sendBeacon sends it"),
    Target("GET /embed/v1/campaigns.json?locale=en", "app", Request("GET", "/embed/v1/campaigns.json?locale=en"),
           reference="empty route (GET)", goal=0.8,
           note="without If-None-Match: the full answer every time; answered before Flask from the process's "
                "EMBED_CACHE_SECONDS cache (campaigns/embed_endpoint.py), PostgreSQL read once per expiry"),
    Target("GET /embed/v1/cta.js", "app", Request("GET", "/embed/v1/cta.js"), reference="empty route (GET)",
           note="the script, cacheable; a CDN serves most of these; answered before Flask from memory"),
    Target("GET /api/v1/campaigns/default", "app", Request("GET", "/api/v1/campaigns/default"),
           reference="empty route (GET)",
           note="not cached: a Flask view reading PostgreSQL every time (the campaign, then its variants and "
                "their translations lazily: 3 queries, plus the pool's pre-ping). Not on the article path (the "
                "script reads campaigns.json); a short cache like campaigns.json's would lift it to the app's floor"),
]


def select(only: tuple[str, ...] | list[str] = ()) -> list[Target]:
    """The targets whose name holds any of ``only`` (all when empty), with the references they are compared to."""
    chosen = [t for t in TARGETS if not only or any(text.lower() in t.name.lower() for text in only)]
    if not chosen:
        return []
    needed = {t.name for t in chosen} | {t.reference for t in chosen if t.reference}
    return [t for t in TARGETS if t.name in needed]


@dataclass
class Outcome:
    target: Target
    runs: list[WrkRun] = field(default_factory=list)
    missing: bool = False  #: the endpoint is not there (404 before any run): nothing was measured
    probe_status: int | None = None

    @property
    def failed(self) -> bool:
        """Errors are a failed measurement, not a fast one."""
        if self.missing:
            return False
        return (self.probe_status is not None and not 200 <= self.probe_status < 300) or any(
            run.status_errors or run.socket_errors for run in self.runs)

    def median(self, attribute: str) -> float | None:
        values = [getattr(run, attribute) for run in self.runs]
        return statistics.median(values) if values else None


def measure(database_url: str, postgres_version: str | None, *, seconds: int, runs: int, connections: int,
            warmup: int, log_dir: Path, smoke: bool = False, targets: list[Target] = TARGETS,
            echo=print) -> tuple[Section, list[Outcome]]:
    """Serve the app and the empty app with gunicorn, load every target ``runs`` times in turn, and summarise."""
    outcomes = {target.name: Outcome(target) for target in targets}
    # The publisher of the beacons' pages is configured, as in production (the counting endpoint checks it).
    env = {"DATABASE_URL": database_url, "DONATIONS_ENV": "development",
           "ALLOWED_ORIGINS": "https://publisher.example"}
    with ExitStack() as stack:
        ports = {}
        for name in dict.fromkeys(target.server for target in targets):  # only the servers the targets need
            wsgi_app, ready_path = SERVERS[name]
            server = stack.enter_context(Gunicorn(wsgi_app, log_dir / f"bench-{name}.log", env, ready_path))
            ports[name] = server.port
        for outcome in outcomes.values():
            status, body = send(ports[outcome.target.server], outcome.target.request)
            outcome.probe_status = status
            if status == 404:
                outcome.missing = True
                echo(f"  {outcome.target.name}: 404, not measured (the endpoint is not there)")
            elif not 200 <= status < 300:
                echo(f"  {outcome.target.name}: answered {status}, not measured: {body[:200]!r}")
        live = [o for o in outcomes.values() if 200 <= (o.probe_status or 0) < 300]
        for outcome in live if warmup else []:  # warm every worker up: imports, caches, connection pools
            run_wrk(ports[outcome.target.server], outcome.target.request, warmup, connections)
        for number in range(1, runs + 1):
            for outcome in live:
                run = run_wrk(ports[outcome.target.server], outcome.target.request, seconds, connections)
                outcome.runs.append(run)
                echo(f"  run {number}/{runs} {outcome.target.name}: {run.rps:,.0f} requests/s, "
                     f"p99 {run.p99_ms:.1f} ms, errors {run.status_errors + run.socket_errors}, "
                     f"load {run.load_before:.2f}")
    section = summarise(list(outcomes.values()), postgres_version=postgres_version, seconds=seconds, runs=runs,
                        connections=connections, smoke=smoke)
    return section, list(outcomes.values())


def summarise(outcomes: list[Outcome], *, postgres_version: str | None, seconds: int, runs: int,
              connections: int, smoke: bool) -> Section:
    by_name = {outcome.target.name: outcome for outcome in outcomes}
    rows = []
    for outcome in outcomes:
        target = outcome.target
        rps = outcome.median("rps")
        reference = by_name.get(target.reference) if target.reference else None
        # Runs alternate, so run i of a target and run i of its reference saw the same moment's load: the
        # median of these paired ratios is steadier on a busy machine than a ratio of two medians.
        paired = [run.rps / ref.rps for run, ref in zip(outcome.runs, reference.runs) if ref.rps] if reference else []
        ratio = statistics.median(paired) if paired else None
        if outcome.missing:
            verdict = "not measured: the endpoint is not there (404)"
        elif outcome.failed:
            verdict = f"failed: answered {outcome.probe_status}" if not outcome.runs else "failed: errors"
        elif target.goal is None:
            verdict = "reference" if target.server == "empty" else "no target (diagnostic)"
        elif smoke:
            verdict = "not judged (smoke run)"
        else:
            verdict = "met" if ratio is not None and ratio >= target.goal else "not met"
        rows.append({
            "target": target.name,
            "requests_per_s": rps,
            "ratio": round(ratio, 3) if ratio is not None else None,
            "ratio_range": f"{min(paired):.2f}–{max(paired):.2f}" if paired else None,
            "goal": f"≥ {target.goal}" if target.goal else None,
            "verdict": verdict,
            "p50_ms": outcome.median("p50_ms"),
            "p99_ms": outcome.median("p99_ms"),
            "errors": sum(run.status_errors + run.socket_errors for run in outcome.runs),
            "requests": sum(run.requests for run in outcome.runs),
            "probe_status": outcome.probe_status,
            "runs_rps": [round(run.rps, 1) for run in outcome.runs],
            "note": target.note,
        })
    loads = [run.load_before for outcome in outcomes for run in outcome.runs]
    return Section(
        name="embed",
        title="Embed traffic: counting, campaigns JSON and script versus an empty Flask route",
        intro=("Both apps are served by gunicorn with the same settings on loopback and loaded by wrk; runs "
               "alternate between the targets. Ratio = the median over the runs of the target's requests/s "
               "divided by the empty route's (same method) in the same round of runs. Errors are answers of 400 "
               "and above and socket errors; a target with errors is a failed measurement, not a fast one."),
        columns=[("target", "Target"), ("requests_per_s", "Requests/s (median)"), ("ratio", "Ratio to empty"),
                 ("ratio_range", "Ratio range"),
                 ("goal", "Target ratio"), ("verdict", "Verdict"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
                 ("errors", "Errors"), ("note", "Note")],
        rows=rows,
        settings={"gunicorn": f"{GUNICORN_SETTINGS['workers']} {GUNICORN_SETTINGS['worker_class']} workers "
                              f"of {GUNICORN_SETTINGS['threads']} threads",
                  "wrk": f"1 thread, {connections} connections", "seconds per run": seconds, "runs": runs},
        notes=[f"Load average (1 min) as the runs started: {min(loads):.2f} to {max(loads):.2f} "
               f"(median {statistics.median(loads):.2f}) on {machine_info()['cpus']} CPUs; wrk, gunicorn and "
               "PostgreSQL share them." if loads else "No run was made."],
        machine=machine_info(postgres_version, wrk=wrk_version(), gunicorn=_gunicorn_version()),
        smoke=smoke,
    )


def _gunicorn_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gunicorn")
    except PackageNotFoundError:
        return None
