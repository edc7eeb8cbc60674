"""TwoStep: the application factory, its configuration and its command-line commands."""

import json
import os
import secrets
import time
from pathlib import Path

import click
from flask import Flask, g, request, session, url_for
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from itsdangerous import TimestampSigner, URLSafeTimedSerializer, want_bytes
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin
from peewee import InterfaceError as PeeweeInterfaceError
from peewee import OperationalError as PeeweeOperationalError
from peewee import SqliteDatabase
from playhouse.pool import MaxConnectionsExceeded
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import models
from blueprints import (
    admin,
    api,
    auth,
    challenge,
    dev,
    health,
    home,
    language_choice,
    methods,
    passwords,
    profile,
    recovery,
    request_log,
    webhooks,
)
from blueprints.api import answers_api, error_response
from blueprints.api.core import problem
from blueprints.extensions import babel, csrf, htmx, limiter, login_manager
from blueprints.language_choice import select_locale
from blueprints.templating import install as install_template_callables
from blueprints.web import (
    PENDING_ALLOWED,
    asking,
    current_session,
    fail,
    htmx_response,
    pending_session,
    redirect_to,
    render,
)
from models import crypto, migrations
from models.sessions import ACTIVE
from services import housekeeping, language
from services.account import accounts
from services.methods import BY_KIND, deliveries, delivery_reports, enrolment
from services.security import client, devices

# Every blueprint of the app, registered in this order.
BLUEPRINTS = (
    admin,
    api,
    auth,
    challenge,
    dev,
    health,
    home,
    language_choice,
    methods,
    passwords,
    profile,
    recovery,
    webhooks,
)

DEFAULTS = {
    "PRODUCT_NAME": "TwoStep",
    "TOTP_ISSUER": "TwoStep",
    "TWOSTEP_ENV": "development",
    "SESSION_COOKIE_NAME": "twostep_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    # The cookie is written when the session changes (sign-in, a new CSRF token), not again on
    # every request: its 12 hours then run from the sign-in, like SESSION_MAX_HOURS on the
    # server, which also ends idle sessions. Saves signing a cookie on every page.
    "SESSION_REFRESH_EACH_REQUEST": False,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    "RATELIMIT_STORAGE_URI": "memory://",
    # When the limits' storage (Redis) fails or hangs, each process counts the per-IP limits in
    # its own memory until it answers again (the per-account limits live in the database).
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    "REDIS_TIMEOUT": 0.5,  # seconds a Redis call may take before it counts as down
    # No X-RateLimit-* headers on every limited request: each costs one more trip to the
    # limits' storage (Redis in production). A refused request still says Retry-After (the
    # 429 handler below).
    "RATELIMIT_HEADERS_ENABLED": False,
    "PHONE_DEFAULT_REGION": "US",
    "MAIL_FROM": "TwoStep <no-reply@example.com>",
    "SMS_FROM": "TwoStep",
    # Seconds a SendGrid or Vonage call may take; past it the code stays live as "delivery
    # unknown" (the provider may have it) and the page offers another method.
    "DELIVERY_TIMEOUT": 5,
    # Production refuses to start without SendGrid and Vonage keys (nobody would get a code);
    # a staging server or a benchmark can keep every message in the outbox table instead.
    "OUTBOX_IN_PRODUCTION": False,
    # Sessions (minutes unless said otherwise).
    "PENDING_SIGN_IN_MINUTES": 15,
    "SUDO_MINUTES": 15,
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    # The mobile app's sessions (bearer tokens, blueprints/api) end after this many days unused.
    "APP_SESSION_IDLE_DAYS": 30,
    # One-time codes and throttling (SPEC, "Security the product promises").
    "CODE_TTL_MINUTES": 10,
    "MAX_LIVE_CODES": 5,
    "CODE_RESEND_COOLDOWN": 30,  # seconds, per destination
    "CODE_SENDS_PER_HOUR_PER_ACCOUNT": 10,  # Decisions 19
    "CODE_SENDS_PER_HOUR_PER_DESTINATION": 5,
    "MAX_FAILED_CODES": 5,  # wrong codes in a row before a pause
    "VERIFICATION_PAUSE_MINUTES": 15,  # the first pause; each later one doubles (Decisions 18)
    "MAX_PAUSE_HOURS": 24,
    "LOCK_AFTER_FAILED_CODES": 100,  # wrong codes in a row that lock codes (NIST SP 800-63B)
    # The password asked again before a change (/confirm-password, the API's /reauth): wrong
    # ones per account before the session ends (issue 14).
    "PASSWORD_RECHECKS_PER_ACCOUNT": 10,
    "PASSWORD_RECHECK_MINUTES": 15,
    "ENROL_MAX_FAILED_CODES": 5,
    "PENDING_TOTP_MINUTES": 30,
    "SIGN_IN_ATTEMPTS_PER_IP": "30 per minute",
    "SEND_CODES_PER_IP": "30 per hour",
    "STAFF_SETUP_GRACE_SIGNINS": 0,
    # Forgot password: links work once for this long; requests per address (counted from the
    # token table) and per IP.
    "PASSWORD_RESET_MINUTES": 30,
    "PASSWORD_RESET_REQUESTS_PER_ADDRESS": 3,  # per hour; more get the same answer, no email
    "PASSWORD_RESET_REQUESTS_PER_IP": "10 per hour",
    "PASSWORD_RESET_VERIFIED_MINUTES": 10,  # after the code, time to choose the new password
    # The method kinds staff may use: any of totp, email, sms, webauthn (NIST SP 800-63B:
    # leave email out).
    "STAFF_METHODS": "totp,email,sms,webauthn",
    # Security keys (WebAuthn): the relying party id (a host name) and the origin the browser
    # reports. Development derives both from the request's host when they are not set.
    "WEBAUTHN_RP_ID": "",
    "WEBAUTHN_ORIGIN": "",
    "WEBAUTHN_CHALLENGE_MINUTES": 5,
    # Recovery codes: a just-generated set stays viewable (download, print) this long.
    "RECOVERY_CODES_SHOWN_MINUTES": 10,
    # "Don't ask again on this device": how long, and whether staff may (default: no).
    "TRUSTED_DEVICE_DAYS": 30,
    "TRUSTED_DEVICES_FOR_STAFF": False,
    # Production: behind a load balancer (README "Production").
    "PROXY_FIX_X_FOR": 0,  # how many proxies set X-Forwarded-For (0: trust none)
    "PROXY_FIX_X_PROTO": 0,
    "PROXY_FIX_X_HOST": 0,
    "PROXY_FIX_X_PORT": 0,
    "PROXY_FIX_X_PREFIX": 0,
    "DATABASE_POOL_STALE_SECONDS": 300,
    # PostgreSQL that does not answer: seconds to connect (libpq: whole seconds, at least 2)
    # and per statement (the server ends it; a hung network is cut half a second later).
    "DATABASE_CONNECT_TIMEOUT": 2,
    "DATABASE_STATEMENT_TIMEOUT": 3,
    "HEALTH_CHECK_TIMEOUT": 1.5,  # /healthz answers within this, 503 if the database doesn't
    "UNAVAILABLE_RETRY_AFTER": 30,
    # At start, test-decrypt the newest saved authenticator keys with ENCRYPTION_KEYS.
    "CHECK_STORED_KEYS_AT_START": True,  # seconds, the Retry-After of the "try again soon" page
    "LOG_REQUESTS": True,
    "PURGE_EVERY_SECONDS": 300,  # opportunistic purge per process; 0 turns it off
    "OUTBOX_KEEP_DAYS": 7,
    # Delivery reports (issue 20): the providers' webhooks answer 404 until their settings
    # are set (SENDGRID_WEBHOOK_VERIFICATION_KEY; VONAGE_SIGNATURE_SECRET with VONAGE_API_KEY).
    "SENDGRID_WEBHOOK_VERIFICATION_KEY": "",
    "VONAGE_SIGNATURE_SECRET": "",
    "VONAGE_SIGNATURE_METHOD": "sha256",  # md5, sha1, sha256 or sha512 (HMAC), as on Vonage
    "WEBHOOK_REQUESTS_PER_IP": "600 per minute",
    "DELIVERY_KEEP_DAYS": 30,
    # Languages (issue 21): what the app offers; the catalogues are in translations/.
    "LANGUAGES": ("en", "es"),
    "BABEL_DEFAULT_LOCALE": "en",
    "BABEL_DEFAULT_TIMEZONE": "UTC",  # centers have no time zone yet: times say UTC
}


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Settings read from the environment, with the type each is converted to.
ENVIRONMENT = {
    "SECRET_KEY": str,
    "DATABASE_URL": str,
    "TWOSTEP_ENV": str,
    "ENCRYPTION_KEYS": str,
    "TOTP_ISSUER": str,
    "PRODUCT_NAME": str,
    "RATELIMIT_STORAGE_URI": str,
    "RATELIMIT_KEY_PREFIX": str,
    "PHONE_DEFAULT_REGION": str,
    "SENDGRID_API_KEY": str,
    "SENDGRID_HOST": str,
    "MAIL_FROM": str,
    "VONAGE_API_KEY": str,
    "VONAGE_API_SECRET": str,
    "VONAGE_REST_HOST": str,
    "SMS_FROM": str,
    "DELIVERY_TIMEOUT": float,
    "REDIS_TIMEOUT": float,
    "DATABASE_CONNECT_TIMEOUT": float,
    "DATABASE_STATEMENT_TIMEOUT": float,
    "CODE_RESEND_COOLDOWN": int,
    "CODE_SENDS_PER_HOUR_PER_ACCOUNT": int,
    "CODE_SENDS_PER_HOUR_PER_DESTINATION": int,
    "SEND_CODES_PER_IP": str,
    "SIGN_IN_ATTEMPTS_PER_IP": str,
    "PASSWORD_RECHECKS_PER_ACCOUNT": int,
    "PASSWORD_RECHECK_MINUTES": int,
    "STAFF_SETUP_GRACE_SIGNINS": int,
    "STAFF_METHODS": str,
    "WEBAUTHN_RP_ID": str,
    "WEBAUTHN_ORIGIN": str,
    "TRUSTED_DEVICES_FOR_STAFF": _flag,
    "OUTBOX_IN_PRODUCTION": _flag,
    "PROXY_FIX_X_FOR": int,
    "PROXY_FIX_X_PROTO": int,
    "PROXY_FIX_X_HOST": int,
    "PROXY_FIX_X_PORT": int,
    "PROXY_FIX_X_PREFIX": int,
    "DATABASE_POOL_SIZE": int,
    "LOG_LEVEL": str,
    "PURGE_EVERY_SECONDS": int,
    "OUTBOX_KEEP_DAYS": int,
    "APP_SESSION_IDLE_DAYS": int,
    "SENDGRID_WEBHOOK_VERIFICATION_KEY": str,
    "VONAGE_SIGNATURE_SECRET": str,
    "VONAGE_SIGNATURE_METHOD": str,
    "WEBHOOK_REQUESTS_PER_IP": str,
    "DELIVERY_KEEP_DAYS": int,
}


class KeyKeepingSigner(TimestampSigner):
    """itsdangerous' timestamp signer, deriving each secret key's signing key once per process:
    it derives it again (an HMAC) every time it signs or checks a cookie. Same signatures."""

    _derived: dict[tuple, bytes] = {}

    def derive_key(self, secret_key=None) -> bytes:
        """The signing key of `secret_key` (the newest secret key by default)."""
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        wanted = (secret, self.salt, self.key_derivation, self.digest_method)
        found = self._derived.get(wanted)
        if found is None:
            found = self._derived[wanted] = super().derive_key(secret)
        return found


class SessionPayloads(TaggedJSONSerializer):
    """Flask's session serializer, writing plain JSON without walking it through Flask's tags
    when the session holds only plain JSON values (TwoStep's hold strings: the session's
    id, the CSRF token, a `next` address, a notice). The same text as Flask's."""

    def dumps(self, value) -> str:
        if _plain_json(value):
            return json.dumps(value, separators=(",", ":"), sort_keys=True)
        return super().dumps(value)


def _plain_json(value) -> bool:
    """Whether `value` is JSON that Flask's tags would leave as it is: strings, numbers,
    booleans, None, lists and dicts of them whose keys are strings not starting with a space
    (tagged values are one-key dicts whose key does)."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return True
    if kind is list:
        return all(_plain_json(item) for item in value)
    if kind is dict:
        return all(
            type(key) is str and key[:1] != " " and _plain_json(item) for key, item in value.items()
        )
    return False


class UncompressedSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe serializer without trying zlib on every cookie it writes (a
    session's few random strings never come out shorter). It still reads compressed ones."""

    def dump_payload(self, obj) -> bytes:
        return base64_encode(super(URLSafeSerializerMixin, self).dump_payload(obj))


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie sessions, with the serializer made once per set of keys (Flask
    makes a new one twice a request, to open the cookie and to save it), signing keys derived
    once (KeyKeepingSigner), and cookies written without Flask's tags or zlib when they need
    neither (SessionPayloads, UncompressedSerializer). Cookies read and write as before."""

    serializer = SessionPayloads()

    def __init__(self):
        self._serializers = {}

    def get_signing_serializer(self, app: Flask):
        """The serializer for the app's current keys (SECRET_KEY and its fallbacks): Flask's,
        with KeyKeepingSigner."""
        if not app.secret_key:
            return None
        fallbacks = tuple(app.config["SECRET_KEY_FALLBACKS"] or ())
        found = self._serializers.get((app.secret_key, fallbacks))
        if found is None:
            found = self._serializers[(app.secret_key, fallbacks)] = UncompressedSerializer(
                [*fallbacks, app.secret_key],  # itsdangerous signs with the last one
                salt=self.salt,
                serializer=self.serializer,
                signer=KeyKeepingSigner,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": self.digest_method,
                },
            )
        return found


class TwoStepFlask(Flask):
    """Flask, asking once per function whether it must be run as a coroutine: Flask asks for
    every hook and view on every request (about twenty), and `inspect` reads the function's
    code flags each time."""

    # How many plain functions are remembered (the hooks, views and handlers, a fixed set).
    PLAIN_MAX = 4096

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plain_functions = set()

    def ensure_sync(self, func):
        """Flask's `ensure_sync`, remembering the functions that are already plain."""
        try:
            if func in self._plain_functions:
                return func
        except TypeError:  # a callable that can't be hashed: asked every time
            return super().ensure_sync(func)
        runnable = super().ensure_sync(func)
        if runnable is func and len(self._plain_functions) < self.PLAIN_MAX:
            self._plain_functions.add(func)
        return runnable


class ConfigurationError(RuntimeError):
    """The app cannot start with this configuration; the message says what to set."""


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests)."""
    app = TwoStepFlask(__name__, instance_relative_config=True)
    app.session_interface = SessionCookies()
    app.config.from_mapping(DEFAULTS)
    for name, kind in ENVIRONMENT.items():
        if os.environ.get(name):
            app.config[name] = kind(os.environ[name])
    if config:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    _configure_mode(app)
    app.config.setdefault("DATABASE_URL", f"sqlite:///{Path(app.instance_path) / 'twostep.db'}")
    models.init_database(
        app.config["DATABASE_URL"],
        # Production pools PostgreSQL connections by default (playhouse.pool).
        pool_size=app.config.get("DATABASE_POOL_SIZE", 8 if app.config["PRODUCTION"] else 0),
        pool_stale_seconds=app.config["DATABASE_POOL_STALE_SECONDS"],
        connect_timeout=app.config["DATABASE_CONNECT_TIMEOUT"],
        statement_timeout=app.config["DATABASE_STATEMENT_TIMEOUT"],
    )
    _trust_proxies(app)
    request_log.init_app(app)

    csrf.init_app(app)
    _configure_languages(app)
    htmx.init_app(app)
    _bound_redis_calls(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    # Sessions are rows on the server (services/account/sessions.py), found by the cookie's
    # random id;
    # Flask-Login's own protection (a hash of the address and browser, compared with a value
    # only its login_user() stores) would mark every one of our sessions as not fresh and so
    # rewrite the cookie, and nothing here uses its notion of freshness (the sudo window does).
    login_manager.session_protection = None

    _register_request_hooks(app)
    _purge_now_and_then(app)
    _register_blueprints(app)
    _skip_empty_limit_check(app)
    _register_error_handlers(app)
    _register_commands(app)
    _check_stored_keys(app)
    return app


def _check_stored_keys(app: Flask) -> None:
    """Test-decrypt the newest saved authenticator keys with ENCRYPTION_KEYS: when none opens
    the key list is wrong and the instance refuses to start (a `flask` command still runs, so
    `flask rotate-keys` can explain); when some don't, it logs an error and /healthz says
    "degraded". A database that is new or does not answer is not checked."""
    if not app.config["CHECK_STORED_KEYS_AT_START"]:
        return
    with app.app_context():
        try:
            models.db.connect(reuse_if_open=True)
            if not models.db.table_exists("verification_method"):
                return
            result = enrolment.check_stored_keys()
        except (PeeweeOperationalError, PeeweeInterfaceError, MaxConnectionsExceeded) as error:
            app.logger.warning("Stored keys not checked: the database does not answer (%s)", error)
            return
        finally:
            if not models.db.is_closed():
                models.db.close()
    if not result.some_dont_open:
        return
    message = result.problem("authenticator keys")
    if result.none_open and click.get_current_context(silent=True) is None:
        raise ConfigurationError(message)
    app.logger.error("%s", message)
    app.config["ENCRYPTION_KEYS_PROBLEM"] = message


def _configure_mode(app: Flask) -> None:
    """Development makes itself a secret key; production refuses to start without one, without
    ENCRYPTION_KEYS or without the SendGrid and Vonage keys (unless OUTBOX_IN_PRODUCTION), and
    keys that are set must be valid."""
    production = app.config["TWOSTEP_ENV"] == "production"
    app.config["PRODUCTION"] = production
    if production:
        app.config["SESSION_COOKIE_SECURE"] = True
        if not app.config.get("SECRET_KEY"):
            raise ConfigurationError(
                "SECRET_KEY is not set. In production (TWOSTEP_ENV=production) TwoStep needs "
                "a long random SECRET_KEY in the environment, for example from "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        if not app.config.get("ENCRYPTION_KEYS"):
            raise ConfigurationError(
                "ENCRYPTION_KEYS is not set. In production (TWOSTEP_ENV=production) TwoStep "
                "encrypts authenticator keys with the Fernet keys in ENCRYPTION_KEYS "
                "(comma-separated; the first one encrypts), for example from "
                "`python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`."
            )
    elif not app.config.get("SECRET_KEY"):
        key_file = Path(app.instance_path) / "secret_key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
            app.logger.warning("Generated a development secret key in %s", key_file)
        app.config["SECRET_KEY"] = key_file.read_text().strip()
    if app.config.get("ENCRYPTION_KEYS"):
        try:
            crypto.parse_keys(app.config["ENCRYPTION_KEYS"])
        except ValueError as error:
            raise ConfigurationError(
                f"ENCRYPTION_KEYS is not valid: {error}. Each key must come from "
                "`Fernet.generate_key()`; separate several keys with commas."
            ) from None
    _check_webhook_settings(app)
    if production and not app.config["OUTBOX_IN_PRODUCTION"]:
        missing = [
            name
            for name in ("SENDGRID_API_KEY", "VONAGE_API_KEY", "VONAGE_API_SECRET")
            if not app.config.get(name)
        ]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. In "
                "production (TWOSTEP_ENV=production) TwoStep sends email through SendGrid and "
                "text messages through Vonage; without them nobody would receive a code. Set "
                "them, or set OUTBOX_IN_PRODUCTION=1 to keep every message in the outbox table "
                "(a staging server, a benchmark)."
            )


def _configure_languages(app: Flask) -> None:
    """Flask-Babel: the locale of each request (blueprints/language_choice.py), `{% trans %}` blocks
    whose whitespace is trimmed (as extracted), and date filters in the page's language; the
    templates' gettext and url_for made cheap (blueprints/templating.py)."""
    babel.init_app(app, locale_selector=language.kept_locales(select_locale))
    install_template_callables(app)
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_template_filter(language.format_day, "day")
    app.add_template_filter(language.format_moment, "moment")


def _check_webhook_settings(app: Flask) -> None:
    """The delivery webhooks' settings, when set, must be usable: refuse to start otherwise,
    rather than answer every report with 403."""
    key = app.config.get("SENDGRID_WEBHOOK_VERIFICATION_KEY")
    if key and not delivery_reports.sendgrid_key_is_valid(key):
        raise ConfigurationError(
            "SENDGRID_WEBHOOK_VERIFICATION_KEY is not a public key. Copy the verification key "
            "SendGrid shows for the signed Event Webhook (the base64 text, without the BEGIN "
            "and END lines)."
        )
    method = app.config["VONAGE_SIGNATURE_METHOD"]
    if method not in delivery_reports.VONAGE_SIGNATURE_METHODS:
        raise ConfigurationError(
            "VONAGE_SIGNATURE_METHOD must be one of "
            f"{', '.join(delivery_reports.VONAGE_SIGNATURE_METHODS)} (the HMAC chosen for "
            "signed messages in the Vonage dashboard)."
        )
    if app.config.get("VONAGE_SIGNATURE_SECRET") and not app.config.get("VONAGE_API_KEY"):
        raise ConfigurationError(
            "VONAGE_SIGNATURE_SECRET is set without VONAGE_API_KEY: Vonage's delivery "
            "receipts are checked with both."
        )


def _bound_redis_calls(app: Flask) -> None:
    """A Redis that hangs costs REDIS_TIMEOUT per call, once (no retries): then the limits
    fall back to memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED) instead of holding requests."""
    if not app.config["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss")):
        return
    timeout = app.config["REDIS_TIMEOUT"]
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    options.update(app.config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options


def _trust_proxies(app: Flask) -> None:
    """Behind a load balancer, believe as many X-Forwarded-* hops as PROXY_FIX_* say (the
    client's address feeds the rate limits and the logs; the scheme makes URLs https)."""
    hops = {
        name: app.config[f"PROXY_FIX_X_{name.upper()}"]
        for name in ("for", "proto", "host", "port", "prefix")
    }
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **{f"x_{name}": n for name, n in hops.items()})


def _register_request_hooks(app: Flask) -> None:
    @login_manager.request_loader
    def load_user_from_session(_request):
        row = current_session()
        if row is not None and row.state == ACTIVE:
            return row.user
        return None

    @login_manager.unauthorized_handler
    def unauthorized():
        target = url_for("auth.login", next=request.full_path.rstrip("?"))
        if pending_session() is not None:
            # Half signed in: the way on is the second step, not the password again.
            target = url_for("challenge.verify")
        if request.htmx:
            return htmx_response("", 401, redirect=target)
        return redirect_to(target, 302)

    @app.before_request
    def open_database():
        if request.endpoint == "health.healthz":
            return  # the health check opens the database itself, to answer 503
        # A request never trusts what an earlier one cached on `g` (tests keep one app
        # context open across requests).
        cached_values = (
            "user_session",
            "_login_user",
            "request_cache",
            "_flask_babel",
        )
        for cached in cached_values:
            g.pop(cached, None)
        # Who is asking, for the domain's records (sessions, the security log).
        client.serve(asking())
        models.db.connect(reuse_if_open=True)

    @app.before_request
    def refuse_what_no_form_sends():
        # No form or link of ours carries a NUL character, and PostgreSQL text cannot hold
        # one: refuse it here (400) rather than fail deep inside a query (500).
        pairs = [*request.args.items(multi=True), *(request.view_args or {}).items()]
        if request.method == "POST":
            pairs.extend(request.form.items(multi=True))
        if any("\x00" in f"{name}{value}" for name, value in pairs):
            fail(400, _("The request contained a character that isn't allowed."))
        if request.method == "POST" and request.files:
            # No form of ours takes a file: a file where text belongs (say, as the sign-in
            # form's email) is refused here, never handed to a form that expects a string.
            fail(400, _("This form takes text, not files. Reload the page and try again."))

    @app.before_request
    def only_verification_steps_while_pending():
        if request.endpoint in PENDING_ALLOWED or request.endpoint is None:
            return None
        if request.blueprint == "api":
            return None  # the API reads no cookie: its tokens say who is asking
        if pending_session() is not None:
            return redirect_to(url_for("challenge.verify"), 303)
        return None

    @app.teardown_request
    def close_database(_exc):
        # SQLite keeps this thread's connection for its next request: closing the last one
        # checkpoints and deletes the WAL, which the next write then makes again (several ms
        # on every request that writes). Other databases hand theirs back (to the pool), or
        # drop it when it broke.
        if not models.db.is_closed() and not isinstance(models.db.obj, SqliteDatabase):
            try:
                models.db.close()
            except (PeeweeOperationalError, PeeweeInterfaceError):
                app.logger.warning("Dropped a database connection that failed")

    fixed_headers = [
        (
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
    ]
    hsts = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")

    @app.after_request
    def security_headers(response):
        headers = response.headers
        # Each one unless the view set its own (one pass over the headers, not one a name).
        present = {name.lower() for name, _ in headers.items()}
        wanted = [*fixed_headers, hsts] if app.config["PRODUCTION"] else fixed_headers
        headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
        if "cache-control" not in present and (
            session.get("sid")
            or (not g.get("database_unavailable") and current_user.is_authenticated)
        ):
            headers["Cache-Control"] = "no-store"
        return response

    app.add_template_filter(devices.label, "device_label")
    app.add_template_filter(lambda kind: BY_KIND[kind].label, "method_label")
    app.add_template_filter(deliveries.reason_words, "delivery_reason")

    @app.context_processor
    def template_globals():
        return {
            "product_name": app.config["PRODUCT_NAME"],
            "user_session": g.get("user_session"),
            "has_endpoint": app.view_functions.__contains__,
            "current_language": language.current_language(),
            "language_names": language.LANGUAGE_NAMES,
        }


def _purge_now_and_then(app: Flask) -> None:
    """Purge now and then after a request: at most once per PURGE_EVERY_SECONDS per process
    (0 turns it off), at a random point so instances don't all purge together."""
    state = {"next_at": time.monotonic() + housekeeping.jittered(app.config["PURGE_EVERY_SECONDS"])}
    app.extensions["twostep_purge"] = state

    @app.after_request
    def purge_now_and_then(response):
        interval = app.config["PURGE_EVERY_SECONDS"]
        if (
            not interval
            or time.monotonic() < state["next_at"]
            or request.endpoint == "health.healthz"
            or g.get("database_unavailable")  # this request already found it not answering
        ):
            return response
        state["next_at"] = time.monotonic() + housekeeping.jittered(interval)
        try:
            deleted = housekeeping.purge()
        except Exception:  # housekeeping must never break the request it rides on
            app.logger.exception("Opportunistic purge failed")
        else:
            if any(deleted.values()):
                app.logger.info("Purged %s", ", ".join(f"{n} {k}" for k, n in deleted.items() if n))
        return response


def _skip_empty_limit_check(app: Flask) -> None:
    """Flask-Limiter checks the application-wide, default, blueprint and meta limits before
    every request. TwoStep sets none of them: its limits sit on the views that send or check
    codes, and those views check them themselves. So that check would find nothing on every
    request, at about the cost of a database read; it is left out while none is configured."""
    manager = limiter.limit_manager
    if (
        manager.application_limits
        or manager.default_limits
        or app.config.get("RATELIMIT_META")
        or any(manager.blueprint_limits(app, name) for name in app.blueprints)
    ):
        return
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [hook for hook in hooks if getattr(hook, "__self__", None) is not limiter]


def _register_blueprints(app: Flask) -> None:
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)


def _register_error_handlers(app: Flask) -> None:
    messages = {
        400: (_l("Something in that request was not right"), _l("Please go back and try again.")),
        401: (_l("Please sign in"), _l("Your session has ended. Sign in again to continue.")),
        403: (_l("Not allowed"), _l("Your account cannot open this page.")),
        404: (_l("Page not found"), _l("There is nothing at this address.")),
        405: (_l("Not allowed"), _l("This page cannot be used that way.")),
        409: (_l("Not possible right now"), _l("That change conflicts with the current settings.")),
        413: (_l("Too much data"), _l("That request was too large.")),
        429: (_l("Too many attempts"), _l("Please wait a little and try again.")),
        500: (_l("Something went wrong"), _l("We could not finish that. Please try again.")),
        503: (_l("Try again in a minute"), _l("TwoStep can't answer right now.")),
    }

    def error_page(status: int, detail: str | None = None):
        title, text = messages.get(status, messages[500])
        return render(
            "error.html", block="content", status=status, title=title, text=detail or text
        )

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        if answers_api():
            return error_response(error)
        return error_page(
            400, _("The form has expired or was not sent from this site. Reload and try again.")
        )

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(error):
        if answers_api():
            return error_response(error)
        current = limiter.current_limit
        wait = max(1, int(current.reset_at - time.time())) if current else 60
        if wait < 120:
            text = ngettext(
                "Too many attempts from this network. Try again in %(num)d second.",
                "Too many attempts from this network. Try again in %(num)d seconds.",
                wait,
            )
        else:
            text = ngettext(
                "Too many attempts from this network. Try again in %(num)d minute.",
                "Too many attempts from this network. Try again in %(num)d minutes.",
                round(wait / 60),
            )
        if request.htmx and not request.htmx.history_restore_request:
            # Inside a component (a tab, the picker): the message goes to the page's toast and
            # the component stays as it was, with what the person typed.
            response = render(
                "_toast.html", status=429, text=text, retarget="#toast", reswap="outerHTML"
            )
        else:
            response = error_page(429, text)
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error):
        if answers_api():
            return error_response(error)
        if error.code == 401:
            return login_manager.unauthorized()
        if error.code is not None and error.code < 400:
            return error
        detail = error.description if getattr(error, "twostep_message", False) else None
        return error_page(error.code or 500, detail)

    @app.errorhandler(PeeweeOperationalError)
    @app.errorhandler(PeeweeInterfaceError)
    @app.errorhandler(MaxConnectionsExceeded)
    def database_unavailable(error):
        # The page is made without the database: the person shows as signed out on it (their
        # session is a row), and no later hook of this request queries it again.
        app.logger.error("The database does not answer: %s", type(error).__name__)
        g.database_unavailable = True
        g._login_user = login_manager.anonymous_user()
        wait = app.config["UNAVAILABLE_RETRY_AFTER"]
        text = _("TwoStep can't reach its records right now. Please try again in a minute.")
        if answers_api():
            return problem(503, text, code="unavailable", retry_after=wait)
        if request.htmx and not request.htmx.history_restore_request:
            response = render(
                "_toast.html", status=503, text=text, retarget="#toast", reswap="outerHTML"
            )
        else:
            response = error_page(503, text)
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(UnicodeDecodeError)
    def undecodable(error):
        if answers_api():
            return error_response(error)
        return error_page(400, _("The request was not valid UTF-8 text."))

    @app.errorhandler(Exception)
    def unexpected(error):
        if answers_api():
            return error_response(error)
        app.logger.exception("Unhandled error")
        return error_page(500)


def _register_commands(app: Flask) -> None:
    @app.cli.group("db")
    def db_group():
        """The database schema: versioned migrations (models/migrations/)."""

    @db_group.command("upgrade")
    def db_upgrade_command():
        """Apply the migrations this database has not had yet (safe to run again)."""
        applied = migrations.upgrade(models.db)
        for name in applied:
            click.echo(f"Applied {name}")
        click.echo(f"Database at version {migrations.latest_version()}.")

    @db_group.command("status")
    def db_status_command():
        """List the migrations and whether this database has had each."""
        done = migrations.applied_versions(models.db)
        for migration in migrations.available():
            mark = "applied" if migration.version in done else "pending"
            click.echo(f"{migration.name}  {mark}")

    @app.cli.command("purge")
    def purge_command():
        """Delete expired codes, ended sign-ins and sessions, stale set-ups, old outbox rows."""
        deleted = housekeeping.purge()
        click.echo(", ".join(f"{count} {what}" for what, count in deleted.items()) or "Nothing.")

    @app.cli.command("init-db")
    def init_db_command():
        """Create or upgrade the database tables (safe to run again)."""
        migrations.upgrade(models.db)
        click.echo("Database ready.")

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Create the demo centers and logins (safe to run again)."""
        migrations.upgrade(models.db)
        created = accounts.seed_demo()
        click.echo(f"Demo data ready ({created} logins created). Password: twostep-demo")

    @app.cli.command("rotate-keys")
    def rotate_keys_command():
        """Re-encrypt every authenticator key under the first key of ENCRYPTION_KEYS."""
        try:
            rotated = enrolment.rotate_stored_keys()
        except crypto.DecryptionError as error:
            click.echo(
                f"Nothing was re-encrypted: {error}. ENCRYPTION_KEYS must hold the new key "
                "first and, after it, every key the stored ones were encrypted with (the "
                "list the other instances use). Fix it and run `flask rotate-keys` again.",
                err=True,
            )
            raise SystemExit(1) from None
        click.echo(f"Re-encrypted {rotated} key(s) under the first key.")

    @app.cli.command("create-user")
    @click.option("--email", prompt=True)
    @click.option("--name", prompt=True)
    @click.option("--center", prompt=True, help="Center name (created if new).")
    @click.option("--role", type=click.Choice(["family", "staff"]), prompt=True)
    @click.option("--admin", is_flag=True, help="Staff with admin rights.")
    @click.password_option()
    def create_user_command(email, name, center, role, admin, password):
        """Create a login with a role in a center."""
        migrations.upgrade(models.db)
        try:
            user = accounts.create_user(
                email=email,
                name=name,
                center_name=center,
                role=role,
                password=password,
                is_admin=admin,
            )
        except accounts.AccountError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"Created {user.email} ({role} at {center}).")
