"""The load generator (wrk) and the servers under load (gunicorn), started and stopped by the harness.

wrk, not a Python client: one wrk thread sends tens of thousands of requests a second, so the server, not the
client, is what a run measures. A Lua script sets the method, body and headers and prints wrk's summary as one
JSON line, so nothing depends on wrk's human-readable output.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .results import ROOT

WRK_MISSING = ("the benchmark needs wrk (an HTTP load generator) and it is not installed: "
               "on Debian or Ubuntu `sudo apt-get install wrk`, on macOS `brew install wrk`, "
               "elsewhere build it from https://github.com/wg/wrk")

#: The same gunicorn settings for the app and the reference: what the ratio compares is the app's own work.
#: gthread, not sync: its workers keep connections alive, so a run measures requests rather than TCP set-up
#: (sync workers close every connection, and that fixed cost would flatter every ratio). One worker per CPU,
#: at least two; a few threads each so that a request waiting on PostgreSQL does not idle the worker.
GUNICORN_SETTINGS = {"worker_class": "gthread", "workers": max(2, os.cpu_count() or 1), "threads": 4}

_MARK = "WRK_RESULT "
_LUA = """
wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('%(mark)s{"requests": %%.0f, "duration_us": %%.0f, "status_errors": %%.0f, '
    .. '"connect_errors": %%.0f, "read_errors": %%.0f, "write_errors": %%.0f, "timeouts": %%.0f, '
    .. '"p50_us": %%.0f, "p90_us": %%.0f, "p99_us": %%.0f, "max_us": %%.0f}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a valid Lua string literal


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str | None:
    path = wrk_path()
    if not path:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" [")[0] if first else None


@dataclass
class Request:
    """What every request of a run sends."""

    method: str = "GET"
    path: str = "/"
    body: str = ""
    headers: dict[str, str] | None = None


@dataclass
class WrkRun:
    """One wrk run's summary: requests per second, latency percentiles, and every kind of error."""

    requests: int
    seconds: float
    status_errors: int  #: answers with a status of 400 or above
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    load_before: float  #: the machine's 1-minute load average as the run started

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(port: int, request: Request, seconds: int, connections: int, threads: int = 1) -> WrkRun:
    """Send ``request`` over ``connections`` keep-alive connections to 127.0.0.1:port for ``seconds``."""
    headers = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
                        for k, v in (request.headers or {}).items())
    script = _LUA % {"method": _lua_string(request.method), "body": _lua_string(request.body) if request.body
                     else "nil", "headers": headers, "mark": _MARK}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        load_before = os.getloadavg()[0]
        out = subprocess.run(
            [wrk_path() or "wrk", "-t", str(threads), "-c", str(max(connections, threads)), "-d", f"{seconds}s",
             "--timeout", "10s", "-s", lua.name, f"http://127.0.0.1:{port}{request.path}"],
            capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(lua.name)
    line = next((line for line in out.stdout.splitlines() if line.startswith(_MARK)), None)
    if out.returncode or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    data = json.loads(line[len(_MARK):])
    return WrkRun(
        requests=int(data["requests"]), seconds=data["duration_us"] / 1e6, status_errors=int(data["status_errors"]),
        socket_errors=int(data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"]),
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        load_before=load_before)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send(port: int, request: Request, timeout: float = 10) -> tuple[int, bytes]:
    """One request, as wrk will send it: its status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(request.method, request.path, body=request.body.encode() or None, headers=request.headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Gunicorn:
    """A gunicorn server on a free loopback port, in its own process group; a context manager."""

    def __init__(self, wsgi_app: str, log_path: Path, environ: dict[str, str] | None = None,
                 ready_path: str = "/"):
        self.wsgi_app = wsgi_app
        self.port = free_port()
        self.log_path = log_path
        self.ready_path = ready_path
        self.environ = {**os.environ, **(environ or {}), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT), "--bind", f"127.0.0.1:{self.port}",
             "--worker-class", GUNICORN_SETTINGS["worker_class"], "--workers", str(GUNICORN_SETTINGS["workers"]),
             "--threads", str(GUNICORN_SETTINGS["threads"]),
             "--log-level", "warning", self.wsgi_app],
            cwd=ROOT, env=self.environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.wsgi_app} exited ({self.process.returncode}); "
                                   f"see {self.log_path}")
            try:
                send(self.port, Request(path=self.ready_path), timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn {self.wsgi_app} did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the master and its workers, nothing else
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
