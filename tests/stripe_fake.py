"""A tiny fake of Stripe's HTTP API, served on loopback, for testing the Stripe gateway end to end.

Only what this app calls is implemented: ``POST /v1/checkout/sessions``
(https://docs.stripe.com/api/checkout/sessions/create) and ``DELETE /v1/customers/{id}``
(https://docs.stripe.com/api/customers/delete: a customer in ``customers`` is deleted once; any other,
or a second delete, answers 404 ``resource_missing`` as Stripe does). It behaves like Stripe where the app
depends on it:

* requests are form-encoded with bracketed keys; they are recorded flat, as sent
  (``line_items[0][price_data][unit_amount]``), so tests assert on the wire format;
* a secret key is required (``Authorization: Bearer sk_...``), else 401;
* idempotency (https://docs.stripe.com/api/idempotent_requests): a repeated ``Idempotency-Key``
  gets the saved response again (with ``Idempotent-Replayed: true``), and a key reused with
  other parameters gets a 400 ``idempotency_error``;
* errors have Stripe's shape, ``{"error": {"type", "code", "message", ...}}``
  (https://docs.stripe.com/api/errors).

Use it through the ``fake_stripe`` fixture; import it into a test module to register it::

    from tests.stripe_fake import fake_stripe  # noqa: F401
"""
from __future__ import annotations

import json
import secrets
import threading
from contextlib import contextmanager
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
import stripe
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

#: The error Stripe sends for each status when a test does not give its own.
DEFAULT_ERRORS = {
    400: {"type": "invalid_request_error", "code": "parameter_invalid", "message": "Invalid request."},
    401: {"type": "invalid_request_error", "message": "Invalid API Key provided."},
    402: {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
          "message": "Your card was declined."},
    429: {"type": "invalid_request_error", "code": "rate_limit",
          "message": "Too many requests hit the API too quickly."},
}
SERVER_ERROR = {"type": "api_error", "message": "An unknown error occurred. (fake Stripe: injected failure)"}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: Case-insensitive, like HTTP: ``headers["idempotency-key"]`` works.
    headers: Headers
    #: The form body, flat, with Stripe's bracketed keys as they were sent.
    form: dict[str, str]
    #: The query string of a GET, flat in the same way (``expand[0]``, ``limit``).
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    error: dict
    should_retry: bool | None
    saved: bool


@dataclass
class Hold:
    """A request kept waiting inside the fake Stripe: ``arrived`` is set when it comes, it answers on ``release``."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakeStripe:
    url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    #: Checkout Sessions made, by id.
    sessions: dict[str, dict] = field(default_factory=dict)
    #: Customers Stripe holds, by id (tests add them); deleted ones are removed and listed in ``deleted``.
    customers: dict[str, dict] = field(default_factory=dict)
    deleted_customers: list[str] = field(default_factory=list)
    _failures: deque[_Failure] = field(default_factory=deque)
    _holds: deque[Hold] = field(default_factory=deque)
    _held: list[Hold] = field(default_factory=list)
    #: Idempotency-Key -> (parameters, status, body, headers) of the first request made with it.
    _saved: dict[str, tuple[dict, int, dict, dict]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests use ---------------------------------------------------------------------------

    def fail_next(self, status: int = 500, error: dict | None = None, *, times: int = 1,
                  should_retry: bool | None = False, saved: bool = False) -> None:
        """Answer the next ``times`` API requests with ``status`` and a Stripe-shaped error.

        ``error`` is the inside of ``{"error": ...}``; by default, Stripe's for the status.
        ``should_retry`` becomes the ``Stripe-Should-Retry`` header that the SDK obeys
        (False by default, so one failure is one request; None sends no header).
        ``saved=False`` is a failure before the endpoint runs (an outage, a rate limit):
        nothing is remembered for the idempotency key. ``saved=True`` is a failure while it
        runs, which Stripe saves and replays for every later request with the same key.
        """
        body = error or DEFAULT_ERRORS.get(status) or SERVER_ERROR
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, dict(body), should_retry, saved))

    def hold_next(self) -> Hold:
        """Keep the next API request waiting (as a slow Stripe would) until the test releases it."""
        hold = Hold()
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        """Let every held or still to be held request answer (the fixture does this at the end)."""
        with self._lock:
            holds, self._holds = [*self._held, *self._holds], deque()
        for hold in holds:
            hold.release.set()

    def calls(self, method: str = "POST", path: str = "/v1/checkout/sessions") -> list[RecordedRequest]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    # -- the WSGI app -----------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        form = dict(parse_qsl(request.get_data(as_text=True), keep_blank_values=True))
        recorded = RecordedRequest(request.method, request.path, Headers(list(request.headers.items())), form,
                                   dict(request.args.items()))
        with self._lock:
            self.requests.append(recorded)
            hold = self._holds.popleft() if self._holds else None
            if hold is not None:
                self._held.append(hold)
        if hold is not None:
            hold.arrived.set()
            hold.release.wait(10)
        with self._lock:
            response = self._respond(recorded)
        return response(environ, start_response)

    def _respond(self, req: RecordedRequest) -> Response:
        if not req.headers.get("Authorization", "").startswith(("Bearer sk_test_", "Bearer sk_live_")):
            return _error(401, DEFAULT_ERRORS[401])
        key = req.headers.get("Idempotency-Key")
        if self._failures:
            failure = self._failures.popleft()
            body = {"error": {**failure.error, "request_log_url": "https://dashboard.stripe.com/test/logs"}}
            headers = {}
            if failure.should_retry is not None:
                headers["Stripe-Should-Retry"] = "true" if failure.should_retry else "false"
            if failure.saved and key:
                self._saved[key] = (req.form, failure.status, body, headers)
            return _json(failure.status, body, headers)
        if key and key in self._saved:
            params, status, body, headers = self._saved[key]
            if params != req.form:
                return _error(400, {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same parameters they "
                               "were first used with. Try using a key other than '%s' if you meant to execute "
                               "a different request." % key,
                })
            return _json(status, body, {**headers, "Idempotent-Replayed": "true"})
        if req.method == "DELETE" and req.path.startswith("/v1/customers/"):
            return self._delete_customer(req.path.removeprefix("/v1/customers/"))
        if (req.method, req.path) != ("POST", "/v1/checkout/sessions"):
            return _error(404, {"type": "invalid_request_error",
                                "message": f"Unrecognized request URL ({req.method}: {req.path})."})
        status, body = 200, self._create_checkout_session(req.form)
        if key:
            self._saved[key] = (req.form, status, body, {})
        return _json(status, body)

    def _delete_customer(self, customer_id: str) -> Response:
        if self.customers.pop(customer_id, None) is None:
            return _error(404, {"type": "invalid_request_error", "code": "resource_missing", "param": "id",
                                "message": f"No such customer: '{customer_id}'"})
        self.deleted_customers.append(customer_id)
        return _json(200, {"id": customer_id, "object": "customer", "deleted": True})

    def _create_checkout_session(self, form: dict[str, str]) -> dict:
        session_id = f"cs_test_{secrets.token_hex(16)}"
        amount = sum(
            int(value) * int(form.get(name.replace("[price_data][unit_amount]", "[quantity]"), "1"))
            for name, value in form.items()
            if name.startswith("line_items[") and name.endswith("[price_data][unit_amount]")
        )
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "submit_type": form.get("submit_type"),
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": amount,
            "amount_total": amount,
            "currency": form.get("line_items[0][price_data][currency]"),
            "customer": None,
            "customer_email": form.get("customer_email"),
            "customer_details": None,
            "client_reference_id": form.get("client_reference_id"),
            "metadata": _sub_dict(form, "metadata"),
            "payment_intent": None,
            "invoice": None,
            "subscription": None,
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "livemode": False,
            "created": now,
            "expires_at": now + 24 * 3600,
        }
        self.sessions[session_id] = session
        return session


def _sub_dict(form: dict[str, str], prefix: str) -> dict[str, str]:
    """``metadata[attempt_id]=…`` -> ``{"attempt_id": …}``."""
    start = f"{prefix}["
    return {name[len(start):-1]: value for name, value in form.items()
            if name.startswith(start) and name.endswith("]") and "][" not in name}


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Request-Id"] = f"req_{secrets.token_hex(7)}"
    response.headers["Stripe-Version"] = stripe.api_version
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error(status: int, error: dict) -> Response:
    return _json(status, {"error": error})


@contextmanager
def serving(fake: FakeStripe, monkeypatch):
    """Serve ``fake`` on a free loopback port for the length of the block; sets ``fake.url``."""
    # The SDK would otherwise write a telemetry id under the home directory.
    monkeypatch.setattr(stripe, "enable_telemetry", False)
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"fake-{type(fake).__name__}", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release_all()
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture
def fake_stripe(monkeypatch):
    """A fake Stripe API on a free loopback port, running for one test; yields the FakeStripe."""
    with serving(FakeStripe(), monkeypatch) as fake:
        yield fake
