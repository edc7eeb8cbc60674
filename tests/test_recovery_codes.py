"""Recovery codes: made when 2SV is turned on (and on Regenerate), shown once with Download
and Print, stored only as hashes, used once at the sign-in challenge, counted with the other
wrong codes, voided by a new set and by an admin reset."""

import html
import math
import re

import pytest

from models.events import RECOVERY_CODE_USED, SIGNED_IN, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.recovery import FreshRecoveryCodes, RecoveryCode
from models.verification import EMAIL, VerificationMethod
from services.methods import recovery_codes
from tests.conftest import is_fragment, is_full_page

WINDOW = "/profile/2sv"
NEW = "/profile/2sv/recovery-codes/new"
DOWNLOAD = "/profile/2sv/recovery-codes/new.txt"
DONE = "/profile/2sv/recovery-codes/done"
REGENERATE = "/profile/2sv/recovery-codes"
VERIFY = "/login/verify"
RECOVERY = "/login/verify/recovery"
CODE_PATTERN = re.compile(r"<code>([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})</code>")
USED_SUBJECT = "A recovery code was used to sign in to your account"


def text(response):
    return html.unescape(response.get_data(as_text=True))


def shown_codes(response):
    return CODE_PATTERN.findall(text(response))


def two_step_family(factory, email="pat@example.com"):
    user = factory.family(email=email, name="Pat Parent", two_step=True)
    VerificationMethod.create(user=user, kind=EMAIL, destination=email)
    return user


def signed_in(browser):
    return browser.get("/profile").status_code == 200


def wrong_code_for(codes):
    """A well-formed code that is none of `codes`."""
    taken = {code.replace("-", "") for code in codes}
    candidate = "ABCDEFGHJKMN"
    while candidate in taken:
        candidate = candidate[1:] + candidate[0]
    return recovery_codes.display(candidate)


@pytest.fixture
def family_with_codes(factory):
    user = two_step_family(factory)
    return user, recovery_codes.generate(user)


# --- the codes themselves ----------------------------------------------------------------


def test_ten_codes_of_at_least_50_bits_from_an_unambiguous_alphabet(factory):
    user = two_step_family(factory)
    codes = recovery_codes.generate(user)
    assert len(codes) == len(set(codes)) == 10
    assert not set("0O1IL") & set(recovery_codes.ALPHABET)
    bits = recovery_codes.LENGTH * math.log2(len(recovery_codes.ALPHABET))
    assert bits >= 50
    for code in codes:
        assert re.fullmatch(r"[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}", code)
        assert not set(code.replace("-", "")) - set(recovery_codes.ALPHABET)


def test_only_salted_slow_hashes_are_stored(factory):
    user = two_step_family(factory)
    codes = recovery_codes.generate(user)
    rows = list(RecoveryCode.select())
    assert len(rows) == 10
    stored = " ".join(f"{row.lookup} {row.code_hash}" for row in rows)
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    assert all(row.code_hash.startswith("$argon2id$") for row in rows)
    assert len({row.code_hash.split("$")[4] for row in rows}) == 10  # a salt each


@pytest.mark.parametrize(
    "shape", [str, str.lower, lambda code: code.replace("-", ""), lambda code: f" {code} "]
)
def test_codes_are_accepted_with_or_without_dashes_in_any_case(family_with_codes, shape):
    user, codes = family_with_codes
    assert recovery_codes.consume(user, shape(codes[3]))
    assert recovery_codes.remaining(user) == 9


def test_a_code_works_once(family_with_codes):
    user, codes = family_with_codes
    assert recovery_codes.consume(user, codes[0])
    assert not recovery_codes.consume(user, codes[0])


def test_a_code_belongs_to_one_person(factory, family_with_codes):
    _user, codes = family_with_codes
    other = two_step_family(factory, email="sam@example.com")
    recovery_codes.generate(other)
    assert not recovery_codes.consume(other, codes[0])


# --- shown once ----------------------------------------------------------------------------


def turn_on(browser, htmx=True):
    browser.get(WINDOW)
    return browser.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=htmx)


@pytest.fixture
def pat(browser, factory):
    user = factory.family(email="pat@example.com", name="Pat Parent")
    VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    browser.login("pat@example.com")
    return user


def test_turning_2sv_on_leads_to_the_codes_shown_once(browser, pat):
    response = turn_on(browser)
    assert response.headers["HX-Redirect"] == NEW
    assert User.get_by_id(pat.id).two_step_enabled
    page = browser.get(NEW)
    codes = shown_codes(page)
    assert page.status_code == 200 and is_full_page(page)
    assert len(codes) == 10 and recovery_codes.remaining(pat) == 10
    body = text(page)
    assert "Download" in body and "Print" in body and "only time" in body
    assert page.headers["Cache-Control"] == "no-store"
    # Print is a button a static script wires up (no inline script).
    assert re.search(r"<button[^>]*data-print[^>]*>Print</button>", body)
    assert "/static/js/recovery.js" in body and "onclick" not in body
    # Download: the same codes as a text file.
    download = browser.get(DOWNLOAD)
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert "attachment" in download.headers["Content-Disposition"]
    assert download.headers["Content-Disposition"].endswith('.txt"')
    assert [code for code in codes if code in download.get_data(as_text=True)] == codes
    # "I've saved my codes": never shown again.
    done = browser.post(DONE, {"next": WINDOW})
    assert done.status_code == 303 and done.headers["Location"] == WINDOW
    assert FreshRecoveryCodes.select().count() == 0
    again = browser.get(NEW)
    assert again.status_code == 303 and again.headers["Location"] == WINDOW
    assert "shown only once" in text(browser.get(WINDOW))
    assert browser.get(DOWNLOAD).status_code == 404


def test_turning_on_without_javascript_redirects_to_the_codes(browser, pat):
    response = turn_on(browser, htmx=False)
    assert response.status_code == 303 and response.headers["Location"] == NEW
    assert len(shown_codes(browser.get(NEW))) == 10


def test_turning_on_again_keeps_the_existing_set(browser, pat):
    turn_on(browser)
    browser.post(DONE)
    first = [row.code_hash for row in RecoveryCode.select()]
    browser.get(WINDOW)
    browser.post(f"{WINDOW}/toggle", {"enabled": "off"}, htmx=True)
    response = browser.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    assert "HX-Redirect" not in response.headers and 'aria-checked="true"' in text(response)
    assert [row.code_hash for row in RecoveryCode.select()] == first


def test_shown_codes_expire_after_ten_minutes(browser, pat, clock):
    turn_on(browser)
    clock.advance(minutes=9)
    assert len(shown_codes(browser.get(NEW))) == 10
    clock.advance(minutes=2)
    assert browser.get(NEW).status_code == 303
    assert browser.get(DOWNLOAD).status_code == 404
    assert FreshRecoveryCodes.select().count() == 0


def test_shown_codes_belong_to_the_session_that_made_them(browser, new_browser, pat):
    turn_on(browser)
    other = new_browser()
    other.login("pat@example.com")  # 2SV is on now: the emailed code finishes the sign-in
    code = re.search(
        r"\b(\d{6})\b", OutboxMessage.select().order_by(OutboxMessage.id.desc()).get().body
    )
    assert other.post(VERIFY, {"code": code.group(1)}).status_code == 303
    assert signed_in(other)
    assert other.get(NEW).status_code == 303
    assert other.get(DOWNLOAD).status_code == 404
    # Signing out ends them with the session.
    browser.logout()
    assert FreshRecoveryCodes.select().count() == 0


def test_the_database_never_holds_the_shown_codes_in_the_clear(browser, pat):
    turn_on(browser)
    codes = shown_codes(browser.get(NEW))
    held = FreshRecoveryCodes.get().codes
    assert not any(code in held for code in codes)


# --- the window ----------------------------------------------------------------------------


def test_the_window_shows_how_many_are_left(browser, family_with_codes):
    _user, codes = family_with_codes
    browser.login("pat@example.com")
    browser.post(RECOVERY, {"recovery_code": codes[0]})
    body = text(browser.get(WINDOW))
    assert "Recovery codes" in body and "9 of 10" in body and "Regenerate" in body


def test_2sv_on_without_codes_asks_to_save_them(browser, factory):
    user = factory.family(email="pat@example.com", name="Pat Parent")
    browser.login("pat@example.com")
    User.update(two_step_enabled=True).where(User.id == user.id).execute()
    body = text(browser.get(WINDOW))
    assert "Save your recovery codes" in body and "Get recovery codes" in body


def test_the_recovery_card_is_a_fragment_for_htmx(browser, pat):
    response = browser.post(REGENERATE, htmx=True)  # 2SV is off: refused in place
    assert response.status_code == 409 and is_fragment(response)
    assert 'id="recovery-codes"' in text(response)
    assert RecoveryCode.select().count() == 0


# --- regenerate ----------------------------------------------------------------------------


def test_regenerate_voids_the_old_set_and_shows_the_new_one(browser, pat):
    turn_on(browser)
    old = shown_codes(browser.get(NEW))
    browser.post(DONE)
    browser.get(WINDOW)
    response = browser.post(REGENERATE, htmx=True)
    assert response.headers["HX-Redirect"] == NEW
    new = shown_codes(browser.get(NEW))
    assert len(new) == 10 and not set(old) & set(new)
    assert RecoveryCode.select().count() == 10
    assert not recovery_codes.consume(pat, old[0])
    assert recovery_codes.consume(pat, new[0])
    subjects = [message.subject for message in OutboxMessage.select()]
    assert "New recovery codes were created for your account" in subjects


def test_regenerate_needs_a_recent_sign_in(browser, pat, clock):
    turn_on(browser)
    browser.post(DONE)
    before = [row.code_hash for row in RecoveryCode.select()]
    clock.advance(minutes=16)
    browser.get(WINDOW)
    response = browser.post(REGENERATE)
    assert response.status_code == 303 and "/confirm-password" in response.headers["Location"]
    assert [row.code_hash for row in RecoveryCode.select()] == before


def test_regenerate_needs_post_and_csrf(browser, pat):
    turn_on(browser)
    browser.post(DONE)
    assert browser.get(REGENERATE).status_code == 405
    assert browser.post(REGENERATE, csrf=False).status_code == 400


# --- at the sign-in challenge --------------------------------------------------------------


def test_a_recovery_code_signs_in_once_and_says_how_many_are_left(
    browser, new_browser, family_with_codes
):
    user, codes = family_with_codes
    browser.login("pat@example.com")
    form = browser.get(RECOVERY)
    assert form.status_code == 200 and "Recovery code" in text(form)
    assert not signed_in(browser)
    response = browser.post(RECOVERY, {"recovery_code": codes[2].lower().replace("-", "")})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/profile/2sv/recovery-codes/left")
    left = browser.get(response.headers["Location"])
    assert "9" in text(left) and "recovery codes left" in text(left)
    assert signed_in(browser)
    event = SecurityEvent.select().where(SecurityEvent.kind == SIGNED_IN).get()
    assert event.method_kind == "recovery"
    assert SecurityEvent.select().where(SecurityEvent.kind == RECOVERY_CODE_USED).count() == 1
    email = OutboxMessage.get(OutboxMessage.subject == USED_SUBJECT)
    assert email.to == "pat@example.com" and "9 recovery codes left" in email.body
    assert codes[2] not in email.body
    # The same code does not work again; a repeat just after is no guess (not counted).
    other = new_browser()
    other.login("pat@example.com")
    again = other.post(RECOVERY, {"recovery_code": codes[2]})
    assert again.status_code == 422 and "was just used" in text(again)
    assert not signed_in(other)
    assert User.get_by_id(user.id).failed_code_count == 0


def test_the_recovery_form_answers_a_fragment_for_htmx(browser, family_with_codes):
    browser.login("pat@example.com")
    fragment = browser.get(RECOVERY, htmx=True)
    assert is_fragment(fragment) and 'id="challenge"' in text(fragment)
    refused = browser.post(RECOVERY, {"recovery_code": "nope"}, htmx=True)
    assert refused.status_code == 422 and is_fragment(refused)
    assert 'aria-invalid="true"' in text(refused)


@pytest.mark.parametrize("typed", ["", "   ", "123456", "ABCD-EFGH", "ÀBCD-EFGH-2345", "x" * 5000])
def test_a_malformed_recovery_code_is_422_and_counts_nothing(browser, family_with_codes, typed):
    user, _codes = family_with_codes
    browser.login("pat@example.com")
    response = browser.post(RECOVERY, {"recovery_code": typed})
    assert response.status_code == 422
    assert User.get_by_id(user.id).failed_code_count == 0
    assert recovery_codes.remaining(user) == 10


def test_wrong_recovery_codes_count_towards_the_same_pause(browser, family_with_codes):
    user, codes = family_with_codes
    browser.login("pat@example.com")
    for _ in range(3):
        assert browser.post(VERIFY, {"code": "000000"}).status_code == 422
    assert browser.post(RECOVERY, {"recovery_code": wrong_code_for(codes)}).status_code == 422
    paused = browser.post(RECOVERY, {"recovery_code": wrong_code_for(codes)})
    assert paused.status_code == 429 and "paused" in text(paused)
    # While paused even a right recovery code is refused, and stays unused.
    assert browser.post(RECOVERY, {"recovery_code": codes[0]}).status_code == 429
    assert recovery_codes.remaining(user) == 10
    assert not signed_in(browser)


def test_a_pause_ends_and_the_code_then_works(browser, family_with_codes, clock):
    user, codes = family_with_codes
    browser.login("pat@example.com")
    for _ in range(5):
        browser.post(RECOVERY, {"recovery_code": wrong_code_for(codes)})
    clock.advance(minutes=16)
    browser.login("pat@example.com")
    assert browser.post(RECOVERY, {"recovery_code": codes[0]}).status_code == 303
    assert User.get_by_id(user.id).failed_code_count == 0


def test_the_recovery_form_needs_a_pending_sign_in(browser, family_with_codes):
    assert browser.get(RECOVERY).headers["Location"] == "/login"
    _user, codes = family_with_codes
    assert browser.post(RECOVERY, {"recovery_code": codes[0]}).headers["Location"] == "/login"
    assert recovery_codes.remaining(_user) == 10


def test_a_regenerated_set_voids_the_old_codes_at_sign_in(browser, family_with_codes):
    user, old = family_with_codes
    new = recovery_codes.generate(user)
    browser.login("pat@example.com")
    assert browser.post(RECOVERY, {"recovery_code": old[0]}).status_code == 422
    assert browser.post(RECOVERY, {"recovery_code": new[0]}).status_code == 303


def test_an_admin_reset_voids_the_codes(factory, family_with_codes):
    from services.admin.reset import reset_two_step

    user, codes = family_with_codes
    admin = factory.admin(email="ada@example.com")
    reset_two_step(user, admin)
    assert RecoveryCode.select().where(RecoveryCode.user == user).count() == 0
    assert not recovery_codes.consume(user, codes[0])
    # Turned on again later, the person gets a new set.
    assert not recovery_codes.needs_first_set(User.get_by_id(user.id))
    User.update(two_step_enabled=True).where(User.id == user.id).execute()
    assert recovery_codes.needs_first_set(User.get_by_id(user.id))


def test_staff_get_their_codes_right_after_the_forced_set_up(browser, factory):
    factory.staff(email="terry@example.com")
    assert browser.login("terry@example.com").headers["Location"] == "/login/verify/setup"
    browser.get("/login/verify/setup?tab=email")
    browser.post("/profile/2sv/methods/email/send", {"destination": "terry@example.com"})
    message = OutboxMessage.select().order_by(OutboxMessage.id.desc()).get()
    code = re.search(r"\b(\d{6})\b", message.body).group(1)
    response = browser.post("/profile/2sv/methods/email/confirm", {"code": code})
    assert response.status_code == 303 and response.headers["Location"].startswith(NEW)
    page = browser.get(response.headers["Location"])
    assert len(shown_codes(page)) == 10 and signed_in(browser)
    next_url = re.search(r'name="next" value="([^"]*)"', text(page)).group(1)
    assert next_url == "/"
    assert browser.post(DONE, {"next": next_url}).headers["Location"] == "/"


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example", "javascript:x"])
def test_done_never_leaves_the_site(browser, pat, next_url):
    turn_on(browser)
    response = browser.post(DONE, {"next": next_url})
    assert response.headers["Location"] == WINDOW
