"""Security headers on every page, for every kind of visitor: a strict Content-Security-Policy,
X-Content-Type-Options, Referrer-Policy and Permissions-Policy; and pages that need no
inline script or style to work."""

import hashlib
import re
import secrets

import pytest

from models import crypto
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import EMAIL, TOTP, VerificationMethod
from services.methods import recovery_codes

ROLES = ("anonymous", "pending", "family", "staff", "admin")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: [sources]}."""
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


def check_headers(response, url):
    headers = response.headers
    policy = directives(headers.get("Content-Security-Policy", ""))
    assert policy.get("default-src") == ["'self'"], url
    assert policy.get("frame-ancestors") == ["'none'"], url
    assert policy.get("form-action") == ["'self'"], url
    assert policy.get("base-uri") == ["'none'"], url
    assert policy.get("object-src") == ["'none'"], url
    for directive in ("script-src", "style-src", "default-src"):
        sources = policy.get(directive, policy["default-src"])
        assert "'unsafe-inline'" not in sources, (url, directive)
        assert "'unsafe-eval'" not in sources, (url, directive)
        assert "*" not in sources and "data:" not in sources, (url, directive)
    assert headers.get("X-Content-Type-Options") == "nosniff", url
    assert headers.get("Referrer-Policy") in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    ), url
    permissions = headers.get("Permissions-Policy", "")
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in permissions, url
    assert headers.get("X-Frame-Options") == "DENY", url


def check_markup(response, url):
    """HTML that works under the policy: no inline script, handler or style attribute."""
    if response.mimetype != "text/html":
        return
    body = response.get_data(as_text=True)
    assert not INLINE_SCRIPT.search(body), url
    assert not EVENT_HANDLER.search(body), url
    assert not STYLE_ATTRIBUTE.search(body), url
    assert "javascript:" not in body.lower(), url
    if "<head>" in body:  # a page of ours (not werkzeug's redirect stub)
        # htmx would add an inline <style> for its indicators; its config switches it off.
        assert '"includeIndicatorStyles": false' in body, url
        assert '"allowEval": false' in body, url


def start_session(client, user, state=ACTIVE):
    """Sign `user` in on `client` (or leave them half signed in) without the sign-in pages."""
    token = secrets.token_urlsafe(16)
    UserSession.create(
        token_hash=hashlib.sha256(token.encode()).hexdigest(), user=user, state=state
    )
    with client.session_transaction() as session:
        session["sid"] = token


@pytest.fixture
def visitors(app, factory, new_browser):
    """A browser for each kind of visitor, and the ids their pages use."""
    family = factory.family(email="pat@example.com", two_step=True)
    method = VerificationMethod.create(user=family, kind=EMAIL, destination=family.email)
    recovery_codes.generate(family)
    waiting = factory.family(email="wes@example.com", two_step=True)
    VerificationMethod.create(user=waiting, kind=EMAIL, destination=waiting.email)
    VerificationMethod.create(
        user=waiting, kind=TOTP, secret=crypto.encrypt("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    )
    staff = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=staff, kind=EMAIL, destination=staff.email)
    admin = factory.admin(email="ada@example.com", two_step=True)
    VerificationMethod.create(user=admin, kind=EMAIL, destination=admin.email)
    browsers = {role: new_browser() for role in ROLES}
    start_session(browsers["pending"].client, waiting, state=PENDING)
    start_session(browsers["family"].client, family)
    start_session(browsers["staff"].client, staff)
    start_session(browsers["admin"].client, admin)
    ids = {"method_id": method.id, "person_id": family.id, "user_id": family.id}
    return browsers, ids


def get_urls(app, ids):
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if "GET" not in rule.methods:
            continue
        if rule.endpoint == "static":
            yield "/static/css/app.css"
            yield "/static/js/app.js"
            continue
        values = {name: ids.get(name, 1) for name in rule.arguments}
        if "slug" in rule.arguments:
            for slug in ("authenticator", "email", "text-message"):
                yield adapter.build(rule.endpoint, {**values, "slug": slug}, method="GET")
            continue
        if "token" in rule.arguments:
            values["token"] = "not-a-real-token"
        yield adapter.build(rule.endpoint, values, method="GET")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_has_the_security_headers(app, visitors, role):
    browsers, ids = visitors
    browser = browsers[role]
    home = {"anonymous": "/login", "pending": "/login/verify"}.get(role, "/profile/2sv")
    assert browser.get(home).status_code == 200  # each visitor is who they should be
    seen = 0
    for url in get_urls(app, ids):
        for htmx in (False, True):
            response = browser.get(url, htmx=htmx)
            check_headers(response, url)
            check_markup(response, url)
            seen += 1
    assert seen >= 40


def test_the_verification_steps_and_error_pages_have_them_too(app, visitors, new_browser):
    browsers, _ids = visitors
    pending = browsers["pending"]
    for url in ("/login/verify", "/login/verify/methods", "/login/verify/recovery"):
        response = pending.get(url)
        assert response.status_code == 200, url
        check_headers(response, url)
        check_markup(response, url)
    for response in (
        pending.post("/login/verify", {"code": "abc"}),  # 422
        pending.post("/login/verify", {"code": "123456"}, csrf=False),  # 400
        browsers["anonymous"].get("/no-such-page"),  # 404
        browsers["anonymous"].post("/login", {"email": "x" * 1_100_000}),  # 413
    ):
        assert response.status_code in (400, 404, 413, 422)
        check_headers(response, response.request.path)
        check_markup(response, response.request.path)


def test_the_shown_once_codes_page_has_them(app, factory, browser):
    factory.family(email="pat@example.com", name="Pat Parent")
    browser.login("pat@example.com")
    VerificationMethod.create(user=1, kind=EMAIL, destination="pat@example.com")
    browser.get("/profile/2sv")
    assert (
        "HX-Redirect" in browser.post("/profile/2sv/toggle", {"enabled": "on"}, htmx=True).headers
    )
    for url in ("/profile/2sv/recovery-codes/new", "/profile/2sv/recovery-codes/new.txt"):
        response = browser.get(url)
        assert response.status_code == 200, url
        check_headers(response, url)
        check_markup(response, url)
        assert response.headers["Cache-Control"] == "no-store"


def test_production_adds_hsts(app):
    app.config["PRODUCTION"] = True
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    check_headers(response, "/login")
