"""English and Spanish (issue 21): which language a request is answered in (the login's choice,
else the cookie of the "English · Español" link, else Accept-Language, else English), the
profile's **Language** choice, and emails and text messages in the recipient's language."""

import re
from datetime import datetime

import pytest
from flask_babel import force_locale

from blueprints.language_choice import COOKIE
from models.outbox import OutboxMessage
from models.people import User
from services.language import format_day, format_moment
from services.methods import codes
from tests.test_admin import add_method, seed, sign_in

SPANISH_CODE_SUBJECT = "Tu código de verificación de Online-Auth"


def html_lang(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert match, "no <html lang> in the page"
    return match.group(1)


def speak(browser, accept_language: str):
    """Make every later request of `browser` carry this Accept-Language."""
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return browser


def language_cookie(browser):
    cookie = browser.client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def test_english_without_any_preference(browser, db):
    page = browser.get("/login")
    assert html_lang(page) == "en"
    assert 'aria-current="true">English</span>' in page.get_data(as_text=True)


def test_accept_language_picks_spanish_and_unknown_languages_fall_back_to_english(browser, db):
    assert html_lang(speak(browser, "es-MX,es;q=0.9,en;q=0.5").get("/login")) == "es"
    assert html_lang(speak(browser, "fr-FR,de;q=0.8").get("/login")) == "en"
    assert html_lang(speak(browser, "fr;q=0.9,es;q=0.4").get("/login")) == "es"


def test_the_language_link_is_a_real_link_that_sets_a_cookie_and_goes_back(browser, db):
    page = speak(browser, "en").get("/login").get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" lang="es" hreflang="es">Español</a>', page)
    assert link, "the sign-in page has no Español link"
    response = browser.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    assert language_cookie(browser) == "es"
    # The cookie beats Accept-Language, on every page before sign-in.
    assert html_lang(browser.get("/login")) == "es"
    assert html_lang(browser.get("/password/forgot")) == "es"
    back = browser.get("/language/en?next=/login")
    assert back.status_code == 302 and language_cookie(browser) == "en"
    assert html_lang(browser.get("/login")) == "en"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "javascript:1"])
def test_the_language_link_never_leaves_the_site(browser, db, target):
    response = browser.get(f"/language/es?next={target}")
    assert response.status_code == 302
    assert "evil" not in response.headers["Location"]
    assert "javascript" not in response.headers["Location"]


def test_an_unknown_language_is_404_and_sets_nothing(browser, db):
    response = browser.get("/language/fr?next=/login")
    assert response.status_code == 404
    assert "language isn't available" in response.get_data(as_text=True)
    assert language_cookie(browser) is None


def test_the_language_link_changes_nothing_on_the_server(browser, factory):
    user = factory.family(email="pat@example.com")
    sign_in(browser, "pat@example.com", password="correct horse battery")
    browser.get("/language/es?next=/profile")
    assert User.get_by_id(user.id).language == ""


def test_the_profile_choice_is_stored_and_beats_the_cookie_and_the_browser(browser, factory):
    user = factory.family(email="pat@example.com")
    sign_in(speak(browser, "en"), "pat@example.com", password="correct horse battery")
    profile = browser.get("/profile")
    assert html_lang(profile) == "en"
    assert "Language" in profile.get_data(as_text=True)
    response = browser.post("/profile/language", {"language": "es"})
    assert response.status_code == 303
    assert User.get_by_id(user.id).language == "es"
    assert language_cookie(browser) == "es"
    page = browser.get("/profile")
    assert html_lang(page) == "es"
    assert "Idioma guardado." in page.get_data(as_text=True)
    # A cookie saying English (another tab's link) does not override the login's choice.
    browser.client.set_cookie(COOKIE, "en")
    assert html_lang(browser.get("/profile")) == "es"


@pytest.mark.parametrize("value", ["", "fr", "es'--", "x" * 300])
def test_a_refused_language_choice_is_422_and_changes_nothing(browser, factory, value):
    user = factory.family(email="pat@example.com")
    sign_in(browser, "pat@example.com", password="correct horse battery")
    response = browser.post("/profile/language", {"language": value})
    assert response.status_code == 422
    assert "Choose English or Español." in response.get_data(as_text=True)
    assert User.get_by_id(user.id).language == ""
    assert language_cookie(browser) is None


def test_the_language_choice_needs_the_csrf_token(browser, factory):
    user = factory.family(email="pat@example.com")
    sign_in(browser, "pat@example.com", password="correct horse battery")
    assert browser.post("/profile/language", {"language": "es"}, csrf=False).status_code == 400
    assert User.get_by_id(user.id).language == ""


def test_the_half_signed_in_steps_speak_the_logins_language(browser, factory):
    user = factory.family(email="pat@example.com", two_step=True)
    add_method("pat@example.com", "email")
    User.update(language="es").where(User.id == user.id).execute()
    speak(browser, "en").login("pat@example.com")
    assert html_lang(browser.get("/login/verify")) == "es"


def test_signing_in_keeps_the_language_picked_on_the_sign_in_page(browser, factory):
    user = factory.family(email="pat@example.com")
    browser.get("/language/es?next=/login")
    browser.login("pat@example.com")
    assert User.get_by_id(user.id).language == "es"
    # A login that already chose keeps its choice.
    other = factory.family(email="lee@example.com")
    User.update(language="en").where(User.id == other.id).execute()
    browser.logout()
    browser.login("lee@example.com")
    assert User.get_by_id(other.id).language == "en"


def test_a_sign_in_code_goes_out_in_the_language_the_request_came_in(browser, factory):
    factory.family(email="pat@example.com", two_step=True)
    add_method("pat@example.com", "email")
    speak(browser, "es").login("pat@example.com")
    (message,) = OutboxMessage.select().where(OutboxMessage.channel == "email")
    assert message.subject == SPANISH_CODE_SUBJECT
    assert "Tu código de verificación" in message.body or "código" in message.body


def test_a_text_message_goes_out_in_the_logins_language(browser, factory):
    user = factory.family(email="pat@example.com", two_step=True)
    add_method("pat@example.com", "sms")
    User.update(language="es").where(User.id == user.id).execute()
    speak(browser, "en").login("pat@example.com")
    (message,) = OutboxMessage.select().where(OutboxMessage.channel == "sms")
    assert message.body.startswith("Código de verificación de TwoStep: ")
    assert re.search(r"\b\d{6}\b", message.body)


def test_an_admin_reset_emails_the_person_in_their_language_not_the_admins(browser, db):
    seed()
    add_method("teacher@example.com", "email")
    User.update(language="es").where(User.email == "teacher@example.com").execute()
    teacher = User.by_email("teacher@example.com")
    admin = sign_in(speak(browser, "en"), "admin@example.com")
    assert html_lang(admin.get(f"/admin/people/{teacher.id}")) == "en"
    admin.post(f"/admin/people/{teacher.id}/reset")
    (email,) = OutboxMessage.select().where(OutboxMessage.to == "teacher@example.com")
    assert email.subject == "Se restableció tu verificación en dos pasos"


# The GSM 03.38 basic character set: a message in it fits 160 characters in one SMS; any other
# character (ó, í, ú, ¿...) makes the whole message UCS-2, 70 characters.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def one_segment(text: str) -> bool:
    return len(text) <= (160 if set(text) <= GSM7 else 70)


def test_every_text_message_fits_one_segment_in_every_language(app):
    """Every SMS the app sends (the code's), in every language, with the code, the product
    name and the expiry, fits one segment."""
    bodies = {}
    with app.test_request_context():
        for code in app.config["LANGUAGES"]:
            with force_locale(code):
                body = codes.sms_text(
                    "012345", app.config["PRODUCT_NAME"], app.config["CODE_TTL_MINUTES"]
                )
            bodies[code] = body
            assert "012345" in body and app.config["PRODUCT_NAME"] in body
            assert str(app.config["CODE_TTL_MINUTES"]) in body
            assert one_segment(body), f"{code}: {len(body)} characters: {body!r}"
    assert bodies["es"] != bodies["en"]
    assert not set(bodies["es"]) <= GSM7  # Spanish needs UCS-2: the 70-character limit held


def test_dates_follow_the_language(app):
    moment = datetime(2026, 11, 26, 14, 5)
    with app.test_request_context():
        with force_locale("en"):
            assert format_day(moment) == "Nov 26, 2026"
            assert format_moment(moment) == "Nov 26, 2026, 2:05\u202fPM UTC"
        with force_locale("es"):
            assert format_day(moment) == "26 nov 2026"
            assert format_moment(moment) == "26 nov 2026, 14:05 UTC"
