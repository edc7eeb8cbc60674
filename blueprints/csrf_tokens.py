"""Flask-WTF's CSRF protection, signing each session's token once per process.

Flask-WTF keeps a random token in the session and puts a signed copy of it in every form. It
signs that copy again on every page (a new serializer, a key derivation and an HMAC) and checks
a submitted copy by taking the signature apart again. While tokens don't expire
(WTF_CSRF_TIME_LIMIT is None, as TwoStep sets it) a session's signed copy never needs to
change, so this process keeps the ones it signed or checked: each request finds its kept copy
on `g`, where Flask-WTF's generate_csrf() looks first (templates and forms then sign nothing),
and a form that comes back with that very copy is known good without checking the signature.
Anything else goes through Flask-WTF unchanged."""

import hmac
import json

from flask import Flask, current_app, g, request, session
from flask_wtf.csrf import CSRFProtect, same_origin
from itsdangerous.encoding import base64_decode


def _carries(signed: str, raw: str) -> bool:
    """Whether the signed copy `signed` holds `raw` (its payload only: the signature is this
    process's own, made during the request)."""
    try:
        return json.loads(base64_decode(signed.split(".", 1)[0])) == raw
    except (ValueError, TypeError):  # not a payload we wrote (compressed, say)
        return False


# Signed copies kept per process; past this many (one per recently seen session) it starts again.
KNOWN_MAX = 10_000


class SignedOnceCSRF(CSRFProtect):
    """CSRFProtect remembering the signed copy of each session's token (see the module)."""

    def __init__(self, app: Flask | None = None):
        self._known: dict[tuple, str] = {}
        super().__init__(app)

    def init_app(self, app: Flask) -> None:
        super().init_app(app)

        @app.before_request
        def lend_kept_copy():
            # generate_csrf() (templates, Flask-WTF's forms) gives out what it finds on `g`
            # for the rest of the request: the kept copy, or nothing left by an earlier
            # request that shared the app context (tests do).
            name = current_app.config["WTF_CSRF_FIELD_NAME"]
            key = self._key()
            known = self._known.get(key) if key is not None else None
            if known is None:
                g.pop(name, None)
            else:
                setattr(g, name, known)

        @app.after_request
        def keep_new_copy(response):
            # A copy signed during this request (none was kept): kept for the next ones, if it
            # carries the session's token as it is now (sign-in and sign-out replace it).
            key = self._key()
            if key is not None and key not in self._known:
                signed = g.get(key[2])
                if isinstance(signed, str) and _carries(signed, key[1]):
                    self._remember(key, signed)
            return response

    def _key(self) -> tuple | None:
        """What a signed copy depends on (the signing key, the session's token, its name), or
        None when copies must not be reused: tokens that expire, or no token yet."""
        config = current_app.config
        if config["WTF_CSRF_TIME_LIMIT"] is not None:
            return None
        name = config["WTF_CSRF_FIELD_NAME"]
        raw = session.get(name)
        if not isinstance(raw, str):
            return None
        return (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, raw, name)

    def _remember(self, key: tuple, signed: str) -> None:
        if len(self._known) >= KNOWN_MAX:
            self._known.clear()
        self._known[key] = signed

    def protect(self, apply_exemptions: bool = False) -> None:
        """Flask-WTF's check, except that a signed copy this process made or already checked
        for this session's token is not taken apart again (the exemptions and the HTTPS
        referrer rule still apply). Any other token goes to Flask-WTF."""
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        key = self._key()
        known = self._known.get(key) if key is not None else None
        submitted = self._get_csrf_token()
        if (
            known is None
            or not submitted
            or not hmac.compare_digest(known.encode(), submitted.encode())
        ):
            super().protect()  # refuses (CSRFError) what does not check out
            if key is not None:
                self._remember(key, submitted)
            return
        if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
            if not request.referrer:
                self._error_response("The referrer header is missing.")
            if not same_origin(request.referrer, f"https://{request.host}/"):
                self._error_response("The referrer does not match the host.")
        g.csrf_valid = True
