"""Donations: reader support for independent publishers."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, g, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from .config import Config
from .extensions import babel, cors, csrf, db, limiter, migrate
from .security import headers as security_headers
from .security.logging import configure_logging

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a client is asked to wait when the database is away (a restart or failover takes about that long).
DATABASE_RETRY_AFTER = 30


def create_app(config: Config | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
    )
    config = config or Config(instance_path=app.instance_path)
    config.validate()
    app.config.from_object(config)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure_logging(app)  # JSON lines or text, scrubbed of secrets and personal data

    db.init_app(app)
    from .reports import replica

    replica.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    from . import i18n

    babel.init_app(app, locale_selector=i18n.select_locale,
                   default_translation_directories=str(i18n.TRANSLATIONS))
    i18n.init_app(app)
    from .staff.auth import login_manager

    login_manager.init_app(app)
    _spare_sessionless_requests(app, login_manager)
    origins = app.config["ALLOWED_ORIGINS"]
    cors.init_app(app, resources={r"/api/v1/*": {"origins": origins}, r"/embed/cta/*": {"origins": origins}})

    from . import models  # noqa: F401  (every table registered before migrations compare)
    from .accounts.views import bp as accounts_bp
    from .staff.views import bp as staff_bp
    # Routes kept in modules of their own join the staff blueprint before it is registered.
    from .staff import article_views, book_views, job_views, schedule_views, statement_views  # noqa: F401
    from .campaigns.views import bp as campaigns_bp
    from .campaigns import counting
    from .campaigns.count_views import CountEndpoint
    from .campaigns.embed_endpoint import EmbedEndpoint
    from .checkout.views import bp as checkout_bp
    from .health import bp as health_bp
    from .payments.gateway import init_gateway
    from .payments.views import bp as sandbox_bp
    from .payments.webhooks import bp as webhooks_bp

    from .reports import operations as export_ops
    from .reports import statements

    init_gateway(app)
    statements.register_attachments()
    export_ops.register_attachments()
    counting.configure(app)
    for blueprint in (health_bp, campaigns_bp, checkout_bp, webhooks_bp, sandbox_bp, accounts_bp, staff_bp):
        app.register_blueprint(blueprint)

    from .cli import register_cli

    register_cli(app)
    _register_error_handlers(app)
    security_headers.init_app(app)
    _refuse_nul_characters(app)

    @app.template_filter("longdate")
    def longdate(moment) -> str:
        """26 November 2026, in the locale of the page (or of the email being rendered, under force_locale)."""
        from .i18n import format_day

        return format_day(moment)
    app.wsgi_app = CountEndpoint(app, app.wsgi_app)  # the embed's beacons, answered before Flask
    # The embed script and (from this process's few seconds of cache) campaigns.json, likewise.
    app.wsgi_app = EmbedEndpoint(app, app.wsgi_app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Client addresses (rate limits, audit log) from X-Forwarded-For, only as far as our own proxies go.
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    return app


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building a signer for a request that carries no session cookie."""

    def open_session(self, app: Flask, request):
        # Most requests (every embed and beacon from a publisher's pages) carry no cookie; the answer is the same
        # empty session Flask would return, minus the cost of setting up itsdangerous on each of them.
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def _spare_sessionless_requests(app: Flask, login_manager) -> None:
    """Keep the session out of requests that have none: the public embed answers are shared by every reader.

    Flask-Login looks into the session after every request to refresh a "remember me" cookie. Merely looking
    marks the session accessed, and Flask then adds ``Vary: Cookie`` to the response, so a CDN would not share the
    embed script or the campaigns JSON between readers. Without a session cookie there is nothing to refresh
    (the app never sets "remember me"), so the hook runs only for requests that bring one.
    """
    from flask import request

    app.session_interface = _SessionInterface()
    hooks = app.after_request_funcs[None]
    refresh = hooks[hooks.index(login_manager._update_remember_cookie)]
    cookie_name = app.session_interface.get_cookie_name(app)

    def refresh_remember_cookie(response):
        return refresh(response) if cookie_name in request.cookies else response

    hooks[hooks.index(refresh)] = refresh_remember_cookie


def _refuse_nul_characters(app: Flask) -> None:
    """A NUL character in the path or a query argument is refused with 400 before any view runs.

    No honest browser sends one, PostgreSQL's text columns cannot hold one (psycopg refuses the query, a 500),
    and every view would otherwise have to check each argument it passes on. Form fields are checked by the
    forms themselves (with a message next to the field). Manage links keep their own answer ("This link is
    not valid."): their token is checked by its signature before anything reaches the database."""
    from flask import abort, request

    @app.before_request
    def refuse_nul():
        in_path = "\x00" in request.path and not (request.endpoint or "").startswith("accounts.")
        if in_path or any("\x00" in key or "\x00" in value for key, values in request.args.lists()
                          for value in values):
            abort(400, description="The address contains a NUL character.")


def _register_error_handlers(app: Flask) -> None:
    from flask_babel import gettext
    from flask_wtf.csrf import CSRFError
    from werkzeug.exceptions import NotFound

    from .web import wants_json

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template("error.html", code=400,
                               message=gettext("This form has expired. Please go back, reload the page and try again.")), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            return jsonify(error=exc.description), exc.code
        message = exc.description
        if isinstance(exc, NotFound) and message == NotFound.description:
            message = gettext("There is no page at this address.")  # werkzeug's own words are for developers
        return render_template("error.html", code=exc.code, message=message), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from .db import database_unavailable, discard_transaction, short_reason

        discard_transaction(db.session)
        if database_unavailable(exc):
            # Not a bug of ours: the database is restarting, cut the connection or is out of connections. Say
            # so with a 503 that asks to come back (nothing of the request was kept), and log no traceback.
            app.logger.warning("database unavailable on %s %s: %s", request.method, request.path, short_reason(exc))
            headers = {"Retry-After": str(DATABASE_RETRY_AFTER)}
            # The page must not ask the database who is signed in (Flask-Login loads the user when a template
            # reads current_user): it would fail again, inside this handler, and leave a bare 500.
            g._login_user = app.login_manager.anonymous_user()
            if wants_json():
                return jsonify(error="The database is unavailable; nothing was stored. Please try again."), 503, headers
            return render_template("error.html", code=503, message=gettext(
                "We cannot reach our records just now. Nothing was charged; please try again in a minute.")), 503, headers
        app.logger.exception("unhandled error")
        if wants_json():
            return jsonify(error="Something went wrong on our side. Nothing was charged."), 500
        return render_template("error.html", code=500,
                               message=gettext("Something went wrong on our side. Nothing was charged.")), 500
