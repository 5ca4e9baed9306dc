"""Real processes on loopback for fault-injection tests: the app served over HTTP, and a flaky path to PostgreSQL.

``LiveApp`` runs ``flask --app app run`` (Werkzeug's threaded server: one thread per request, so concurrent
deliveries really race inside one process), or gunicorn as in production (``server="gunicorn"``), in its own
process group, so that a test can stop it cleanly or ``kill -9`` it in the middle of a request. Its database
connections carry an ``application_name`` of their own, so a test can find them in ``pg_stat_activity`` (and
terminate them) without touching anybody else's.

``FlakyProxy`` stands between that process and PostgreSQL: ``down()`` cuts every open connection and refuses new
ones, as a restarting server does, and ``up()`` lets them through again, all without disturbing the
PostgreSQL server that other databases share.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.factories import signed

ROOT = Path(__file__).resolve().parent.parent
#: The live app's webhook secret: tests sign their events with it.
LIVE_WEBHOOK_SECRET = "whsec_live_process_tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Answer:
    """One HTTP answer: its status, content type and body (parsed when it is JSON)."""

    status: int
    content_type: str
    body: bytes

    @property
    def json(self) -> dict | None:
        return json.loads(self.body) if self.content_type.startswith("application/json") else None


class ProcessGroup:
    """A child process in a process group of its own, logging to ``log_path``: stopped, killed and read the
    same way by every test that starts one (web hosts, schedulers)."""

    process: subprocess.Popen
    log_path: Path
    _log: object
    #: How long a SIGTERM may take before the group is killed.
    STOP_SECONDS = 10

    def kill9(self) -> None:
        """SIGKILL the whole process group: no handler, no rollback, no goodbye to the database."""
        self._signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        self._log.close()

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]


class LiveApp(ProcessGroup):
    """The app in a process of its own, serving HTTP on a free loopback port."""

    def __init__(self, database_url: str, log_path: Path, environ: dict[str, str] | None = None,
                 server: str = "flask"):
        self.port = free_port()
        self.application_name = f"donations-live-{secrets.token_hex(4)}"
        url = make_url(database_url).update_query_dict({"application_name": self.application_name})
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("STRIPE_", "SMTP_", "FLASK_")) and k not in ("DATABASE_URL", "DONATIONS_ENV")}
        env.update({
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "STRIPE_WEBHOOK_SECRET": LIVE_WEBHOOK_SECRET,  # no STRIPE_SECRET_KEY: the sandbox gateway
            "DONATIONS_ENV": "development",
            "EXPORT_DIR": str(log_path.parent / "exports"),
            "PYTHONUNBUFFERED": "1",
            **(environ or {}),
        })
        self.log_path = log_path
        self._log = open(log_path, "ab")
        if server == "gunicorn":  # as in production: two forked workers of four threads each
            # No control socket: by default every gunicorn on the machine would share ~/.gunicorn/gunicorn.ctl.
            command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
                       "--worker-class", "gthread", "--threads", "4", "--no-control-socket", "app:app"]
        else:
            command = [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1",
                       "--port", str(self.port), "--no-reload", "--no-debugger", "--with-threads"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops everything it started
        )

    def wait_until_ready(self, timeout: float = 30) -> LiveApp:
        """Block until the server answers HTTP; fails with the server's log if it exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.request("GET", "/stripe/webhook", timeout=2).status == 405:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the app did not answer within {timeout}s:\n{self.log()}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Answer(response.status, response.getheader("Content-Type") or "", response.read())
        finally:
            conn.close()

    def deliver(self, evt: dict, timeout: float = 60) -> Answer:
        """POST a Stripe-signed event to /stripe/webhook, as Stripe does."""
        body, headers = signed(evt, LIVE_WEBHOOK_SECRET)
        return self.request("POST", "/stripe/webhook", body, headers, timeout=timeout)



class FlakyProxy:
    """A TCP proxy on loopback in front of PostgreSQL that a test can take down and bring back."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        #: How many connections were refused or cut while down.
        self.refused = 0
        self.cut = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url_for(self, database_url: str) -> str:
        """``database_url`` with the proxy in the server's place."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def down(self) -> None:
        """Cut every open connection (both ends) and refuse new ones, as a restarting server would."""
        self._up.clear()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            self.cut += 1
            _close(sock)

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.down()
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
