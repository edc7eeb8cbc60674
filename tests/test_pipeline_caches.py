"""The request pipeline's per-process caches (bfbb2c1) behave as what they stand in for: each
session's CSRF token signed once (SignedOnceCSRF), session cookies written as plain JSON
without zlib (SessionCookies), Flask's coroutine check remembered per function
(TwoStepFlask.ensure_sync), and one Babel locale per language per app (kept_locales)."""

import importlib.util
import itertools
import threading
import time
import uuid
from datetime import UTC, datetime

import flask
import pytest
from babel import Locale
from flask.sessions import SecureCookieSessionInterface, session_json_serializer
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from itsdangerous import TimestampSigner
from markupsafe import Markup

from app import SessionPayloads, _plain_json, create_app
from blueprints.extensions import csrf
from models.people import User
from services.language import kept_locales
from tests.api_client import ApiClient, app_token
from tests.conftest import CSRF_PATTERN
from tests.test_language import html_lang, speak

CSRF_REFUSED = "The form has expired or was not sent from this site. Reload and try again."
HTTPS = "https://localhost"


@pytest.fixture
def ticking_signatures(monkeypatch):
    """Every signature itsdangerous dates from now on is a second later than the one before, so
    a token signed again never equals an earlier one by falling in the same second."""
    seconds = itertools.count(int(time.time()))
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _signer: next(seconds))


@pytest.fixture
def pat(browser, factory, ticking_signatures):
    """Pat, signed in on `browser` through the sign-in form."""
    user = factory.family(email="pat@example.com")
    assert browser.login("pat@example.com").status_code == 303
    return user


def page_token(response) -> str:
    """The one CSRF token a page hands out (its forms and its htmx header alike)."""
    assert response.status_code == 200
    found = CSRF_PATTERN.findall(response.get_data(as_text=True))
    tokens = {field or header for header, field in found}
    assert len(tokens) == 1, tokens
    return tokens.pop()


def session_token(browser) -> str:
    """The random token Flask-WTF keeps in `browser`'s session (what its forms carry signed)."""
    with browser.client.session_transaction() as session:
        return session["csrf_token"]


def kept_copy(app, browser) -> str | None:
    """The signed copy SignedOnceCSRF keeps for `browser`'s session, if any."""
    return csrf._known.get((app.secret_key, session_token(browser), "csrf_token"))


def choose_spanish(browser, **kwargs):
    """Send the profile's language form (a POST that needs the CSRF token)."""
    data = {"language": "es", **kwargs.pop("data", {})}
    return browser.post("/profile/language", data, **kwargs)


def tampered(token: str) -> str:
    """`token` with one character of its signature changed (one in the middle: the last
    character of base64 may carry only padding bits)."""
    payload, signature = token.rsplit(".", 1)
    middle = len(signature) // 2
    changed = "A" if signature[middle] != "A" else "B"
    return f"{payload}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


# --- CSRF tokens signed once per session (SignedOnceCSRF) -----------------------------------


def test_pages_of_a_session_hand_out_its_kept_copy_and_a_form_with_it_is_accepted(
    app, browser, pat
):
    """Two pages of one signed-in session hand out the same signed token, the copy kept for the
    session (signatures are dated a second apart, so signing again would show), and the
    language form sent back with it is accepted."""
    first = page_token(browser.get("/profile"))
    second = page_token(browser.get("/"))
    assert first == second == kept_copy(app, browser)
    response = choose_spanish(browser, data={"csrf_token": first})
    assert response.status_code == 303
    assert User.get_by_id(pat.id).language == "es"


def test_a_page_with_a_wtforms_form_hands_out_the_kept_copy_too(app, browser, pat):
    """The password-change page (a Flask-WTF form) hands out the copy the profile page showed
    and the session keeps."""
    kept = page_token(browser.get("/profile"))
    assert page_token(browser.get("/profile/password")) == kept


def test_the_sign_in_page_shown_twice_hands_out_one_kept_copy(app, browser, ticking_signatures):
    """Before sign-in, the sign-in page shown twice in one session hands out the same token,
    the one kept for the session."""
    first = page_token(browser.get("/login"))
    second = page_token(browser.get("/login"))
    assert first == second == kept_copy(app, browser)


def test_a_token_flask_wtf_signs_for_the_session_at_another_moment_is_accepted(app, browser, pat):
    """A token Flask-WTF signs for the session's token at a later second (not the kept copy)
    is checked by Flask-WTF and accepted."""
    kept = page_token(browser.get("/profile"))
    raw = session_token(browser)
    with app.app_context(), app.test_request_context():
        flask.session["csrf_token"] = raw
        later = generate_csrf()
    assert later != kept
    response = choose_spanish(browser, data={"csrf_token": later})
    assert response.status_code == 303
    assert User.get_by_id(pat.id).language == "es"


@pytest.mark.parametrize("bad", ["tampered", "another session's", "missing", "non-ASCII"])
def test_a_token_that_is_not_the_sessions_is_refused_while_a_copy_is_kept(
    app, browser, new_browser, pat, bad
):
    """With the session's signed copy kept, a tampered token, another session's, none and a
    non-ASCII one are refused with the app's CSRF error page, change nothing and don't replace
    the kept copy, so they are refused again; the kept copy still works afterwards."""
    kept = page_token(browser.get("/profile"))
    assert kept == kept_copy(app, browser)
    if bad == "missing":
        sent = {"csrf": False}
    elif bad == "tampered":
        sent = {"data": {"csrf_token": tampered(kept)}}
    elif bad == "another session's":
        sent = {"data": {"csrf_token": page_token(new_browser().get("/login"))}}
    else:
        sent = {"data": {"csrf_token": f"{kept[:10]}é{kept[11:]}"}}
    for _ in range(2):
        response = choose_spanish(browser, **sent)
        assert response.status_code == 400
        assert CSRF_REFUSED in response.get_data(as_text=True)
        assert User.get_by_id(pat.id).language == ""
        assert kept_copy(app, browser) == kept
    assert choose_spanish(browser, data={"csrf_token": kept}).status_code == 303


@pytest.mark.parametrize("token", ["kept", "signed later"])
@pytest.mark.parametrize(
    ("referrer", "status"),
    [
        (None, 400),
        ("https://evil.example/profile", 400),
        ("http://localhost/profile", 400),
        ("https://localhost/profile", 303),
    ],
)
def test_over_https_a_form_needs_a_referrer_from_this_host_even_with_the_kept_copy(
    app, browser, pat, token, referrer, status
):
    """Over HTTPS (WTF_CSRF_SSL_STRICT, Flask-WTF's default) a form coming back with the kept
    copy is held to the same referrer rule as one Flask-WTF checks: refused without a Referer
    or with one from another origin, accepted from this https host."""
    assert app.config["WTF_CSRF_SSL_STRICT"]
    submitted = page_token(browser.get("/profile", base_url=HTTPS))
    assert submitted == kept_copy(app, browser)
    if token == "signed later":
        raw = session_token(browser)
        with app.app_context(), app.test_request_context():
            flask.session["csrf_token"] = raw
            submitted = generate_csrf()
        assert submitted != kept_copy(app, browser)
    headers = {"Referer": referrer} if referrer else {}
    response = choose_spanish(
        browser, data={"csrf_token": submitted}, headers=headers, base_url=HTTPS
    )
    assert response.status_code == status
    if status == 400:
        assert CSRF_REFUSED in response.get_data(as_text=True)
    assert User.get_by_id(pat.id).language == ("es" if status == 303 else "")


@pytest.mark.parametrize(
    "app_config", [{"WTF_CSRF_TIME_LIMIT": 3600, "SECRET_KEY": "a secret for expiring tokens"}]
)
def test_tokens_that_expire_are_never_kept(app, browser, pat):
    """With WTF_CSRF_TIME_LIMIT set, pages and forms work as before and no signed copy is kept
    for the app's secret key."""
    secret = app.config["SECRET_KEY"]
    browser.get("/profile")
    assert choose_spanish(browser).status_code == 303
    assert User.get_by_id(pat.id).language == "es"
    page_token(browser.get("/profile"))
    assert [key for key in csrf._known if key[0] == secret] == []


def test_the_api_needs_no_csrf_token_even_from_a_client_with_a_kept_copy(app, browser, pat):
    """The mobile API (exempt) answers a PUT without a CSRF token, from a client whose browser
    session has a kept copy."""
    page_token(browser.get("/profile"))
    assert kept_copy(app, browser) is not None
    api = ApiClient(browser.client, app_token(pat))
    response = api.put("/two-step", {"enabled": False})
    assert response.status_code == 200


# --- session cookies (SessionCookies, SessionPayloads) --------------------------------------

PLAIN_SESSIONS = [
    {"sid": "uIo0wIhY5OQ3vQ", "csrf_token": "0f" * 20},
    {"notice": "¡Idioma guardado! ünïcödé 漢字 🙂", "next": "/profile?a=1&b=<2>"},
    {"separators": "a\u2028b\u2029c\x00\"'\\/"},
    {"nested": {"b": [1, 2.5, True, None], "a": {"deep": False}}, "count": -3, "ratio": 0.1},
    {"": "an empty key", "list": ["x", ["y", {"z": None}]], "big": 2**70, "tiny": 1e-300},
    {},
]
TAGGED_SESSIONS = [
    {"pair": (1, "two")},
    {"raw": b"\x00\xffbytes"},
    {"html": Markup("<b>bold</b>")},
    {" t": "a key that looks like a tag"},
    {"outer": {" di": {"a": 1}}},
    {"when": datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC)},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"plain": "text", "deep": [{"pair": (1, 2)}]},
]


def with_types(value):
    """`value` with the type of each thing in it, to compare what comes back type for type."""
    if type(value) is dict:
        return {key: with_types(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return (type(value), [with_types(item) for item in value])
    return (type(value), value)


@pytest.mark.parametrize("value", PLAIN_SESSIONS + TAGGED_SESSIONS)
def test_session_payloads_are_flasks_text_and_read_back_as_they_were(app, value):
    """SessionPayloads writes exactly what Flask's session serializer writes (plain values
    without its tags, the rest through them) and reads every value back with its types."""
    assert _plain_json(value) is (value in PLAIN_SESSIONS)
    payloads = SessionPayloads()
    with app.app_context():
        text = payloads.dumps(value)
        assert text == session_json_serializer.dumps(value)
        loaded = payloads.loads(text)
    assert with_types(loaded) == with_types(value)


def test_flasks_compressed_cookie_is_read_and_the_apps_own_is_read_by_flask(app, browser):
    """A cookie Flask's own session interface wrote (zlib-compressed, starting with ".") with
    the same SECRET_KEY opens in a request; the cookie the app writes back is not compressed
    and opens with Flask's own interface."""
    note = "TwoStep keeps this. " * 100
    stock = SecureCookieSessionInterface().get_signing_serializer(app)
    cookie = stock.dumps({"note": note, "pair": (1, 2)})
    assert cookie.startswith(".")
    name = app.config["SESSION_COOKIE_NAME"]
    browser.client.set_cookie(name, cookie)
    with browser.client:
        page_token(browser.get("/login"))
        assert flask.session["note"] == note
        assert flask.session["pair"] == (1, 2)
    written = browser.client.get_cookie(name).value
    assert written != cookie and not written.startswith(".")
    assert stock.loads(written)["note"] == note


# --- the coroutine check remembered per function (TwoStepFlask.ensure_sync) -----------------


class CountingHook:
    """A callable that can't be hashed, counting its calls."""

    __hash__ = None

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def test_a_plain_function_is_returned_as_is_and_the_second_time_from_memory(app, monkeypatch):
    """A plain function comes back as it is; asked again, the answer comes from the remembered
    set (Flask's own check is not asked). The app's views are remembered after a request."""

    def view():
        return "plain"

    assert app.ensure_sync(view) is view

    def asked_again(_app, func):
        raise AssertionError(f"Flask's ensure_sync asked again for {func!r}")

    with monkeypatch.context() as patch:
        patch.setattr(flask.Flask, "ensure_sync", asked_again)
        assert app.ensure_sync(view) is view
    assert app.test_client().get("/login").status_code == 200
    assert app.view_functions["auth.login"] in app._plain_functions


def test_a_coroutine_function_is_still_handed_to_flask_every_time(app):
    """An `async def` function is wrapped to run to its result (with asgiref installed), or
    refused with Flask's RuntimeError (without it), every time: it is never remembered as
    plain."""

    async def view():
        return "from a coroutine"

    for _ in range(2):
        if importlib.util.find_spec("asgiref") is None:
            with pytest.raises(RuntimeError, match="'async' extra"):
                app.ensure_sync(view)
        else:
            runnable = app.ensure_sync(view)
            assert runnable is not view
            assert runnable() == "from a coroutine"
    assert view not in app._plain_functions


def test_an_unhashable_callable_still_runs_as_a_hook(app, browser):
    """A callable object that can't be hashed comes back as it is and runs as a request hook."""
    hook = CountingHook()
    assert app.ensure_sync(hook) is hook
    app.before_request(hook)
    assert browser.get("/login").status_code == 200
    assert browser.get("/login").status_code == 200
    assert hook.calls == 2


# --- one Babel locale per language per app (kept_locales) -----------------------------------


def test_kept_locales_answers_one_locale_object_per_code():
    """The wrapped selector answers the same Locale object each time a code comes back, and
    another for another code."""
    codes = iter(["es", "es", "en", "en"])
    select = kept_locales(lambda: next(codes))
    spanish, spanish_again, english, english_again = select(), select(), select(), select()
    assert isinstance(spanish, Locale) and str(spanish) == "es" and str(english) == "en"
    assert spanish is spanish_again
    assert english is english_again
    assert spanish is not english


def test_each_app_keeps_its_own_locale_objects(app):
    """Requests of one app in one language get the same Locale object; another app made by
    create_app gets its own."""
    other = create_app(
        {
            name: app.config[name]
            for name in (
                "TESTING",
                "SECRET_KEY",
                "DATABASE_URL",
                "CLOCK",
                "RATELIMIT_ENABLED",
                "RATELIMIT_STORAGE_URI",
                "CHECK_STORED_KEYS_AT_START",
            )
        }
    )

    def locale_of(flask_app, language):
        with (
            flask_app.app_context(),
            flask_app.test_request_context(headers={"Accept-Language": language}),
        ):
            return get_locale()

    spanish = locale_of(app, "es")
    assert str(spanish) == "es"
    assert locale_of(app, "es") is spanish
    assert locale_of(app, "en") is not spanish
    others = locale_of(other, "es")
    assert others == spanish and others is not spanish
    assert locale_of(other, "es") is others


def test_spanish_then_english_requests_of_one_app_each_speak_their_language(browser, db):
    """The sign-in page asked in Spanish, then English, then Spanish again from one app is
    each time in the language asked for."""
    for language, words, not_words in [
        ("es", "Iniciar sesión", "Sign in"),
        ("en", "Sign in", "Iniciar sesión"),
        ("es", "Iniciar sesión", "Sign in"),
    ]:
        page = speak(browser, language).get("/login")
        assert html_lang(page) == language
        assert words in page.get_data(as_text=True)
        assert not_words not in page.get_data(as_text=True)


def test_many_sessions_at_once_with_the_kept_copies_cleared_under_them(
    app, new_browser, monkeypatch
):
    """Eight sessions send forms at the same time from eight threads while the kept copies are
    cleared again and again (at most three kept): every form with its own session's token gets
    past the CSRF check, every form with another session's token is refused, and no more
    copies are kept than allowed."""
    monkeypatch.setattr("blueprints.csrf_tokens.KNOWN_MAX", 3)
    browsers = [new_browser() for _ in range(8)]
    tokens = [page_token(each.get("/login")) for each in browsers]
    start = threading.Barrier(len(browsers))
    outcomes = []

    def send(index):
        browser, own, foreign = browsers[index], tokens[index], tokens[index - 1]
        start.wait()
        for turn in range(20):
            token = own if turn % 2 == 0 else foreign
            # An empty sign-in form: refused for what it lacks (not 400) once past the check.
            # Each session from its own address, under the sign-in form's limit per address.
            address = {"REMOTE_ADDR": f"192.0.2.{index + 1}"}
            response = browser.post("/login", {"csrf_token": token}, environ_base=address)
            outcomes.append((token == own, response.status_code))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 8 * 20
    assert {status for own, status in outcomes if not own} == {400}
    assert {status for own, status in outcomes if own} == {422}
    assert len(csrf._known) <= 3
