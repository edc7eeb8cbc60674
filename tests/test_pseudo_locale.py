"""The pseudo-locale walk (issue 21): the app runs with a pseudo-translation of its catalogue
(every Latin letter of every catalogued string made fullwidth), the walk renders its pages,
partials, error answers, emails and text messages, and any visible word still in plain Latin
letters is English that never passed through the catalogue. Data is allowed: people's names,
addresses, center names, the product's name, the language names of the language link."""

import re
from html.parser import HTMLParser

import pytest
from flask import request

from models import crypto
from models.outbox import OutboxMessage
from models.people import Center, User
from models.verification import PendingSetup
from tests.conftest import Browser
from tests.test_admin import add_method
from tests.test_artifacts import QUERIES, partials_after_each_change, walk_every_state
from tests.test_artifacts import Walk as ArtifactWalk
from tests.translation_tools import PSEUDO, english_left, write_pseudo_catalogue

# Attributes whose text people (or their screen readers) get.
_SPOKEN_ATTRIBUTES = {"aria-label", "title", "placeholder", "alt", "aria-description"}
# ...and the words static/js/*.js shows from the markup (confirmations, copy and key status).
_SCRIPT_WORDS = {"data-confirm", "data-copied", "data-copy-failed"}
_BUTTON_INPUTS = {"submit", "button", "reset"}
# Always allowed: names that are the same in every language, and what the walk types into the
# People search (shown back as typed).
_ALWAYS = {"English", "Español", "TwoStep"} | {
    query.removeprefix("?q=") for query in QUERIES["admin.people"] if query.startswith("?q=")
}
# Data, not words: recovery codes as shown (ABCD-EFGH-2345), links (a reset link's token).
_DATA = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b|https?://\S+")


class _VisibleText(HTMLParser):
    """The text of a page a person sees or hears: text nodes (not scripts or styles), the
    attributes read aloud, and the labels of input buttons."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag in ("script", "style"):
            self._hidden_depth += 1
        for name, value in values.items():
            if name in _SPOKEN_ATTRIBUTES | _SCRIPT_WORDS or name.startswith("data-say-"):
                self.parts.append(value or "")
        if tag == "input" and (values.get("type") or "") in _BUTTON_INPUTS:
            self.parts.append(values.get("value") or "")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.parts)


def data_values() -> set[str]:
    """What the database holds that pages show as it is: names, addresses, centers."""
    values = set(_ALWAYS)
    for user in User.select():
        local, _, domain = user.email.partition("@")
        values |= {user.email, user.name, domain, *user.name.split()}
    values |= {center.name for center in Center.select()}
    # Authenticator keys being set up are shown as text for manual entry.
    for pending in PendingSetup.select().where(PendingSetup.secret != ""):
        secret = crypto.decrypt(pending.secret)
        values |= {secret, " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))}
    return values


class Walk:
    """Collects what the walk saw and the English found in it, reported all at once."""

    def __init__(self):
        self.leaks: list[str] = []
        self.seen = 0

    def watch(self, app) -> None:
        """Check every HTML answer `app` sends from now on (pages, partials, errors)."""

        @app.after_request
        def look_for_english(response):
            # A redirect's body is never shown: the browser follows it.
            shown = not response.direct_passthrough and not 300 <= response.status_code < 400
            if response.mimetype == "text/html" and shown:
                where = f"{request.method} {request.full_path.rstrip('?')} -> {response.status}"
                self.text(where, visible_text(response.get_data(as_text=True)))
            return response

    def page(self, label: str, response, status: int | None = None):
        if status is not None:
            assert response.status_code == status, (label, response.status_code)
        assert response.mimetype == "text/html", label
        self.text(label, visible_text(response.get_data(as_text=True)))
        return response

    def text(self, label: str, text: str):
        self.seen += 1
        words = english_left(_DATA.sub(" ", text), data_values())
        if words:
            self.leaks.append(f"{label}: {sorted(set(words))}")

    def messages(self, label: str):
        """Every email and text message sent so far (then forgotten)."""
        for message in OutboxMessage.select().order_by(OutboxMessage.id):
            where = f"{label}: {message.channel} {message.subject or message.body[:30]!r}"
            self.text(f"{where} (subject)", message.subject)
            self.text(f"{where} (text)", message.body)
            if message.html:
                self.text(f"{where} (html)", visible_text(message.html))
        OutboxMessage.delete().execute()

    def check(self):
        assert self.seen, "the walk saw nothing"
        assert self.leaks == [], "English that no catalogue translated:\n" + "\n".join(self.leaks)


@pytest.fixture(scope="module")
def pseudo_translations(tmp_path_factory):
    return write_pseudo_catalogue(tmp_path_factory.mktemp("pseudo"))


@pytest.fixture
def app_config(pseudo_translations):
    return {
        "LANGUAGES": ("en", "es", PSEUDO),
        "BABEL_TRANSLATION_DIRECTORIES": str(pseudo_translations),
    }


@pytest.fixture
def walk(app):
    walk = Walk()
    walk.watch(app)
    return walk


def _speaking_pseudo(browser: Browser) -> Browser:
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = PSEUDO
    return browser


@pytest.fixture
def pseudo_browser(browser, db):
    return _speaking_pseudo(browser)


@pytest.fixture
def new_browser(app):
    """Browsers that ask for the pseudo-locale (Accept-Language)."""
    return lambda: _speaking_pseudo(Browser(app.test_client()))


def test_the_pseudo_translation_is_in_force(pseudo_browser, walk):
    """The walk's premise: with the pseudo-locale a catalogued word is no longer English, and
    the checker does find English that is left."""
    page = pseudo_browser.get("/login").get_data(as_text=True)
    assert f'<html lang="{PSEUDO}">' in page
    assert "Sign in" not in visible_text(page)
    walk.text("a planted leak", "Ｓｉｇｎ ｉｎ Verification")
    assert walk.leaks == ["a planted leak: ['Verification']"]


def test_every_page_and_partial_as_every_role_and_state(app, factory, new_browser, walk):
    """The artifact walk (tests/test_artifacts.py: every GET route as every role and in every
    state, full page and partial) in the pseudo-locale, then every email and text message it
    made the app send."""
    pages = ArtifactWalk()
    walk_every_state(app, factory, new_browser, pages)
    assert not pages.errors, "Server errors:\n" + "\n".join(pages.errors)
    walk.messages("the walk")
    walk.check()


def test_partials_after_each_change_and_their_messages(app, factory, pseudo_browser, walk):
    partials_after_each_change(factory, pseudo_browser)
    walk.messages("the changes")
    walk.check()


def test_refusals_and_error_pages(pseudo_browser, factory, walk):
    factory.family(email="pat@example.com", name="Pat Parent")
    browser = pseudo_browser
    browser.get("/login")
    browser.post("/login", {})
    browser.post("/login", {}, htmx=True)
    wrong = {"email": "pat@example.com", "password": "not it"}
    browser.post("/login", wrong)
    browser.post("/login", wrong, csrf=False)
    browser.get("/no-such-page")
    browser.get("/language/xx")
    browser.get("/login?next=%00")
    walk.check()


def test_code_email_and_text_message(pseudo_browser, factory, new_browser, walk):
    factory.family(email="pat@example.com", name="Pat Parent", two_step=True)
    add_method("pat@example.com", "email")
    pseudo_browser.login("pat@example.com")
    factory.family(email="lee@example.com", name="Lee Sms", two_step=True)
    add_method("lee@example.com", "sms")
    new_browser().login("lee@example.com")
    assert {m.channel for m in OutboxMessage.select()} == {"email", "sms"}
    walk.messages("sign-in codes")
    walk.check()
