"""Security keys and passkeys (WebAuthn): recorded ceremonies from a software authenticator
(tests/soft_authenticator.py) checked by services/methods/webauthn_keys.py, then the endpoints of
the Security Key tab and of the sign-in, the picker, the staff set-up and an admin reset."""

import html
import json

import pytest

from blueprints.web import TRUSTED_DEVICE_COOKIE
from models.events import METHOD_ADDED, POSSIBLE_CLONED_KEY, RESET, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.recovery import TrustedDevice
from models.sessions import UserSession
from models.verification import WEBAUTHN, PendingSetup, VerificationMethod, WebAuthnChallenge
from services.admin import reset
from services.methods import SECURITY_KEY, webauthn_keys
from tests.conftest import PASSWORD, Browser, is_fragment
from tests.soft_authenticator import SoftAuthenticator, tampered
from tests.test_passwords import (
    LINK,
    NEW_PASSWORD,
    ask_for_link,
    choose_new_password,
    has_password,
    last_token,
    reset_url,
)

ORIGIN = "http://localhost"  # the test client's requests come to http://localhost
# The relying party those requests make (rp id "localhost").
PARTY = webauthn_keys.RelyingParty("localhost", ORIGIN)


@pytest.fixture
def ctx(app, db):
    """A request to http://localhost (rp id "localhost"), with the database open."""
    with app.test_request_context("/", base_url=ORIGIN):
        yield


def register(user, key=None, name="Blue USB key", **lie):
    key = key or SoftAuthenticator()
    options = webauthn_keys.registration_options(user, PARTY)
    outcome = webauthn_keys.verify_registration(
        user, PARTY, key.create(options, ORIGIN, **lie), name
    )
    return key, outcome


def sign_in_with(user, key, origin=ORIGIN, **lie):
    options = webauthn_keys.authentication_options(user, PARTY)
    return webauthn_keys.verify_authentication(user, PARTY, key.get(options, origin, **lie))


# --- registration ---------------------------------------------------------------------------


def test_a_right_registration_saves_the_key_logs_it_and_emails_the_person(ctx, factory):
    parent = factory.family(email="pat@example.com")
    key, outcome = register(parent)
    assert outcome.ok, outcome.message
    method = VerificationMethod.get(VerificationMethod.user == parent)
    assert (method.kind, method.destination, method.credential_id) == (
        WEBAUTHN,
        "Blue USB key",
        key.id,
    )
    assert method.public_key and method.transports == "usb"
    assert SECURITY_KEY.describe(method) == "Security Key Blue USB key"
    event = SecurityEvent.get(SecurityEvent.user == parent, SecurityEvent.kind == METHOD_ADDED)
    assert (event.method_kind, event.detail) == (WEBAUTHN, "Security Key Blue USB key")
    mail = OutboxMessage.get(OutboxMessage.to == "pat@example.com")
    assert mail.subject == "A two-factor authentication device has been added"
    assert "Blue USB key" in mail.body


@pytest.mark.parametrize(
    "lie",
    [
        {"challenge": "bm90LXRoZS1jaGFsbGVuZ2U"},
        {"rp_id": "evil.example"},
    ],
    ids=["wrong challenge", "wrong rp id"],
)
def test_a_registration_with_a_wrong_challenge_or_rp_id_is_refused(ctx, factory, lie):
    parent = factory.family()
    _, outcome = register(parent, **lie)
    assert not outcome.ok
    assert VerificationMethod.select().count() == 0


def test_a_registration_from_another_origin_is_refused(ctx, factory):
    parent = factory.family()
    options = webauthn_keys.registration_options(parent, PARTY)
    credential = SoftAuthenticator().create(options, "https://evil.example")
    outcome = webauthn_keys.verify_registration(parent, PARTY, credential, "Key")
    assert not outcome.ok and VerificationMethod.select().count() == 0


def test_a_registration_challenge_works_once_and_for_five_minutes(ctx, factory, clock):
    parent = factory.family()
    key = SoftAuthenticator()
    options = webauthn_keys.registration_options(parent, PARTY)
    credential = key.create(options, ORIGIN)
    assert webauthn_keys.verify_registration(parent, PARTY, credential, "One").ok
    replayed = webauthn_keys.verify_registration(parent, PARTY, credential, "Two")
    assert not replayed.ok and replayed.message == webauthn_keys.EXPIRED

    late = webauthn_keys.registration_options(parent, PARTY)
    clock.advance(minutes=5, seconds=1)
    outcome = webauthn_keys.verify_registration(
        parent, PARTY, SoftAuthenticator().create(late, ORIGIN), "3"
    )
    assert not outcome.ok and outcome.message == webauthn_keys.EXPIRED


def test_several_keys_per_person_each_named(ctx, factory):
    parent = factory.family()
    assert register(parent, name="Blue USB key")[1].ok
    assert register(parent, name="Laptop passkey")[1].ok
    same_name = register(parent, name="blue usb key")[1]
    assert not same_name.ok and same_name.field == "name"
    no_name = register(parent, name="   ")[1]
    assert not no_name.ok and no_name.field == "name"
    names = [k.destination for k in webauthn_keys.keys_of(User.get_by_id(parent.id))]
    assert names == ["Blue USB key", "Laptop passkey"]


def test_the_same_key_cannot_be_added_twice(ctx, factory):
    parent = factory.family()
    key, outcome = register(parent)
    assert outcome.ok
    _, again = register(parent, key=key, name="Again")
    assert not again.ok and again.status == 409


# --- authentication -------------------------------------------------------------------------


def test_a_right_assertion_is_accepted_and_the_counter_moves_on(ctx, factory, clock):
    parent = factory.family()
    key, _ = register(parent)
    check = sign_in_with(parent, key)
    assert check.ok, check.message
    method = VerificationMethod.get(VerificationMethod.user == parent)
    assert method.sign_count == key.counter == 1
    assert method.last_used_at == clock()


@pytest.mark.parametrize(
    "lie",
    [{"challenge": "bm90LXRoZS1jaGFsbGVuZ2U"}, {"rp_id": "evil.example"}],
    ids=["wrong challenge", "wrong rp id hash"],
)
def test_an_assertion_with_a_wrong_challenge_or_rp_id_is_refused(ctx, factory, lie):
    parent = factory.family()
    key, _ = register(parent)
    assert not sign_in_with(parent, key, **lie).ok


def test_an_assertion_from_another_origin_is_refused(ctx, factory):
    parent = factory.family()
    key, _ = register(parent)
    check = sign_in_with(parent, key, origin="https://evil.example")
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.INVALID


def test_a_tampered_signature_is_refused(ctx, factory):
    parent = factory.family()
    key, _ = register(parent)
    options = webauthn_keys.authentication_options(parent, PARTY)
    check = webauthn_keys.verify_authentication(parent, PARTY, tampered(key.get(options, ORIGIN)))
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.INVALID
    assert VerificationMethod.get(VerificationMethod.user == parent).sign_count == 0


def test_a_replayed_assertion_is_refused(ctx, factory):
    parent = factory.family()
    key, _ = register(parent)
    options = webauthn_keys.authentication_options(parent, PARTY)
    assertion = key.get(options, ORIGIN)
    assert webauthn_keys.verify_authentication(parent, PARTY, assertion).ok
    again = webauthn_keys.verify_authentication(parent, PARTY, assertion)
    assert not again.ok and again.reason is webauthn_keys.KeyProblem.EXPIRED


def test_an_assertion_challenge_expires_after_five_minutes(ctx, factory, clock):
    parent = factory.family()
    key, _ = register(parent)
    options = webauthn_keys.authentication_options(parent, PARTY)
    clock.advance(minutes=5, seconds=1)
    check = webauthn_keys.verify_authentication(parent, PARTY, key.get(options, ORIGIN))
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.EXPIRED


@pytest.mark.parametrize("reported", [5, 3, 0], ids=["same", "backwards", "zero"])
def test_a_counter_that_does_not_go_up_is_refused_and_logged_as_a_cloned_key(
    ctx, factory, reported
):
    parent = factory.family()
    key, _ = register(parent)
    key.counter = 4
    assert sign_in_with(parent, key).ok  # counter 5 now
    check = sign_in_with(parent, key, counter=reported)
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.CLONED
    event = SecurityEvent.get(SecurityEvent.kind == POSSIBLE_CLONED_KEY)
    assert event.user_id == parent.id and event.method_kind == WEBAUTHN
    assert VerificationMethod.get(VerificationMethod.user == parent).sign_count == 5


def test_a_possibly_cloned_key_emails_the_person_what_to_do(ctx, factory):
    parent = factory.family(email="pat@example.com", name="Pat Parent")
    key, _ = register(parent)
    assert sign_in_with(parent, key).ok
    before = OutboxMessage.select().count()
    assert not sign_in_with(parent, key, counter=1).ok
    mail = OutboxMessage.select().order_by(OutboxMessage.id.desc()).get()
    assert OutboxMessage.select().count() == before + 1
    assert mail.to == "pat@example.com"
    assert mail.subject == "A security key on your account may have been copied"
    assert "Hello Pat Parent," in mail.body
    assert "We refused your security key “Blue USB key” because it may have been copied" in (
        mail.body
    )
    assert "remove “Blue USB key” in" in mail.body and "change your password too" in mail.body
    assert "If this was you, there is nothing to do" not in mail.body
    assert "counter went backwards" not in mail.body  # the log's label is not for the email
    assert "“Blue USB key”" in mail.html and "<li>If it wasn" in mail.html


def test_other_security_emails_read_as_before(ctx, factory):
    parent = factory.family(email="pat@example.com", name="Pat Parent")
    register(parent)
    mail = OutboxMessage.get(OutboxMessage.to == "pat@example.com")
    lines = mail.body.splitlines()
    assert lines[:3] == [
        "Hello Pat Parent,",
        "",
        "Verification method added: Security Key Blue USB key.",
    ]
    assert "If this was you, there is nothing to do." in mail.body
    assert "may have been copied" not in mail.body


def test_a_key_that_keeps_no_counter_works_every_time(ctx, factory):
    parent = factory.family()
    key, _ = register(parent)
    assert sign_in_with(parent, key, counter=0).ok
    assert sign_in_with(parent, key, counter=0).ok


def test_another_persons_key_is_refused(ctx, factory):
    owner, other = factory.family(), factory.family()
    key, _ = register(owner)
    register(other)
    options = webauthn_keys.authentication_options(other, PARTY)
    check = webauthn_keys.verify_authentication(other, PARTY, key.get(options, ORIGIN))
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.UNKNOWN_KEY


@pytest.mark.parametrize(
    "credential", [None, "not json", {}, {"rawId": "x"}, {"rawId": 3, "response": {}}]
)
def test_malformed_assertions_are_refused(ctx, factory, credential):
    parent = factory.family()
    register(parent)
    assert not webauthn_keys.verify_authentication(parent, PARTY, credential).ok


# --- the endpoints: window, sign-in, picker, staff set-up, reset ------------------------------


def post_json(browser, url, body=None):
    return browser.client.post(url, json=body or {}, headers={"X-CSRFToken": browser.csrf_token})


def add_key_through_the_window(browser, key, name="Blue USB key"):
    browser.get("/profile/2sv?tab=security-key")
    options = post_json(browser, "/profile/2sv/methods/security-key/options")
    assert options.status_code == 200, options.get_data(as_text=True)
    saved = post_json(
        browser,
        "/profile/2sv/methods/security-key/register",
        {"credential": key.create(options.get_json(), ORIGIN), "name": name},
    )
    return saved


def sign_in_with_key(browser, key, origin=ORIGIN):
    browser.get("/login/verify")
    options = post_json(browser, "/login/verify/security-key/options")
    assert options.status_code == 200, options.get_data(as_text=True)
    return post_json(
        browser, "/login/verify/security-key", {"credential": key.get(options.get_json(), origin)}
    )


def test_the_security_key_tab_explains_it_needs_javascript(browser, factory):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    page = browser.get("/profile/2sv?tab=security-key").get_data(as_text=True)
    assert 'role="tab" id="tab-security-key"' in page
    assert "Security keys need JavaScript" in page
    assert "Add security key" in page
    assert "<script>" not in page and "onclick" not in page


def test_the_options_need_the_csrf_token(browser, factory):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    browser.get("/profile/2sv")
    response = browser.client.post("/profile/2sv/methods/security-key/options", json={})
    assert response.status_code == 400


def test_a_parent_adds_a_key_turns_2sv_on_and_signs_in_with_it(browser, factory):
    parent = factory.family(email="pat@example.com", name="Pat Parent")
    browser.login("pat@example.com")
    key = SoftAuthenticator()
    saved = add_key_through_the_window(browser, key)
    assert saved.status_code == 200 and saved.get_json() == {"redirect": "/profile/2sv"}
    window = browser.get("/profile/2sv").get_data(as_text=True)
    assert "Security Key" in window and "Blue USB key" in window
    assert "is added" in window
    # A second key is welcome too.
    assert add_key_through_the_window(browser, SoftAuthenticator(), "Spare").status_code == 200
    browser.post("/profile/2sv/toggle", {"enabled": "on"})
    assert User.get_by_id(parent.id).two_step_enabled
    browser.logout()

    browser.login("pat@example.com")
    page = browser.get("/login/verify").get_data(as_text=True)
    assert "Use security key" in page and "Verification code" not in page
    assert "Try another method" not in page  # two keys are one way in
    done = sign_in_with_key(browser, key)
    assert done.status_code == 200 and done.get_json() == {"redirect": "/"}
    home = browser.get("/")
    assert "Welcome, Pat Parent" in home.get_data(as_text=True)
    signed_in = SecurityEvent.select().where(SecurityEvent.kind == "signed_in")
    assert signed_in.order_by(SecurityEvent.id.desc()).get().method_kind == WEBAUTHN


def test_a_wrong_origin_and_a_replayed_assertion_are_refused_and_counted(
    browser, new_browser, factory
):
    parent = factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    key = SoftAuthenticator()
    add_key_through_the_window(browser, key)
    browser.post("/profile/2sv/toggle", {"enabled": "on"})
    browser.logout()

    browser.login("pat@example.com")
    wrong = sign_in_with_key(browser, key, origin="https://evil.example")
    assert wrong.status_code == 422 and "wasn't accepted" in wrong.get_json()["error"]
    assert User.get_by_id(parent.id).failed_code_count == 1

    browser.get("/login/verify")
    options = post_json(browser, "/login/verify/security-key/options").get_json()
    assertion = key.get(options, ORIGIN)
    used = post_json(browser, "/login/verify/security-key", {"credential": assertion})
    assert used.status_code == 200
    attacker = new_browser()  # another browser replays it later
    attacker.login("pat@example.com")
    attacker.get("/login/verify")
    replay = post_json(attacker, "/login/verify/security-key", {"credential": assertion})
    assert replay.status_code == 422


def test_the_picker_offers_one_security_key_entry_to_its_owner_only(browser, new_browser, factory):
    owner = factory.family(email="pat@example.com", two_step=True)
    other = factory.family(email="sam@example.com", two_step=True)
    VerificationMethod.create(user=other, kind="totp", secret="")
    VerificationMethod.create(user=other, kind="email", destination="sam@example.com")
    VerificationMethod.create(user=owner, kind="email", destination="pat@example.com")
    for number, name in enumerate(["Blue USB key", "Spare key"]):
        VerificationMethod.create(
            user=owner, kind=WEBAUTHN, destination=name, credential_id=f"id{number}"
        )
    browser.login("pat@example.com")
    page = browser.get("/login/verify").get_data(as_text=True)
    assert page.count(">Security Key</button>") == 1
    assert "Blue USB key" not in page and "Spare key" not in page

    someone_else = new_browser()
    someone_else.login("sam@example.com")
    theirs = someone_else.get("/login/verify").get_data(as_text=True)
    assert "Security Key" not in theirs
    options = post_json(someone_else, "/login/verify/security-key/options")
    assert options.status_code == 409


def test_a_staff_member_sets_up_2sv_with_a_key_then_signs_in_with_it(browser, factory):
    teacher = factory.staff(email="terry@example.com", name="Terry Teacher")
    response = browser.login("terry@example.com")
    assert response.headers["Location"].endswith("/login/verify/setup")
    page = browser.get("/login/verify/setup?tab=security-key").get_data(as_text=True)
    assert "Add security key" in page
    key = SoftAuthenticator()
    options = post_json(browser, "/profile/2sv/methods/security-key/options")
    assert options.status_code == 200
    saved = post_json(
        browser,
        "/profile/2sv/methods/security-key/register",
        {"credential": key.create(options.get_json(), ORIGIN), "name": "Desk key"},
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert "/profile/2sv/recovery-codes/new" in saved.get_json()["redirect"]
    teacher = User.get_by_id(teacher.id)
    assert teacher.two_step_enabled
    browser.logout()

    browser.login("terry@example.com")
    assert sign_in_with_key(browser, key).status_code == 200


def test_staff_cannot_add_a_key_when_the_policy_leaves_keys_out(app, browser, factory):
    app.config["STAFF_METHODS"] = "totp,sms"
    factory.staff(email="terry@example.com")
    browser.login("terry@example.com")
    page = browser.get("/login/verify/setup").get_data(as_text=True)
    assert "Security Key" not in page
    browser.get("/login/verify/setup")
    assert post_json(browser, "/profile/2sv/methods/security-key/options").status_code == 403


def test_deleting_a_key_and_an_admin_reset_remove_keys(browser, factory):
    admin = factory.admin(email="ada@example.com")
    parent = factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    add_key_through_the_window(browser, SoftAuthenticator(), "One")
    add_key_through_the_window(browser, SoftAuthenticator(), "Two")
    first = VerificationMethod.get(VerificationMethod.destination == "One")
    browser.post(f"/profile/2sv/methods/{first.id}/delete")
    assert [m.destination for m in VerificationMethod.select()] == ["Two"]

    outcome = reset.reset_two_step(User.get_by_id(parent.id), admin)
    assert outcome.methods_removed == 1
    assert VerificationMethod.select().count() == 0
    event = SecurityEvent.get(SecurityEvent.kind == RESET)
    assert "Security Key Two" in event.detail


def test_sign_in_options_refused_while_paused(app, browser, factory, clock):
    parent = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=parent, kind=WEBAUTHN, destination="K", credential_id="k1")
    User.update(verification_paused_until=clock().replace(year=clock().year + 1)).where(
        User.id == parent.id
    ).execute()
    browser.login("pat@example.com")
    browser.get("/login/verify")
    response = post_json(browser, "/login/verify/security-key/options")
    assert response.status_code == 429 and "paused" in response.get_json()["error"]
    assert WebAuthnChallenge.select().count() == 0


def test_registration_json_errors_are_422(browser, factory):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    browser.get("/profile/2sv")
    response = post_json(
        browser, "/profile/2sv/methods/security-key/register", {"credential": {}, "name": "K"}
    )
    assert response.status_code == 422 and json.loads(response.data)["error"]


# --- "Don't ask again on this device" with a key ---------------------------------------------

TRUST_LABEL = "Don't ask again on this device for 30 days"


def sign_in_with_key_and_trust(browser, key, trust):
    browser.get("/login/verify")
    options = post_json(browser, "/login/verify/security-key/options").get_json()
    body = {"credential": key.get(options, ORIGIN)}
    if trust is not None:
        body["trust"] = trust
    return post_json(browser, "/login/verify/security-key", body)


def key_person(browser, factory, email, staff=False):
    """A person with 2SV on and one key (added through the window), signed out."""
    person = factory.staff(email=email) if staff else factory.family(email=email)
    browser.login(email)
    key = SoftAuthenticator()
    if staff:  # the forced set-up
        browser.get("/login/verify/setup?tab=security-key")
        options = post_json(browser, "/profile/2sv/methods/security-key/options").get_json()
        body = {"credential": key.create(options, ORIGIN), "name": "Desk key"}
        saved = post_json(browser, "/profile/2sv/methods/security-key/register", body)
        assert saved.status_code == 200
    else:
        assert add_key_through_the_window(browser, key).status_code == 200
        browser.post("/profile/2sv/toggle", {"enabled": "on"})
    browser.logout()
    assert User.get_by_id(person.id).two_step_enabled
    return key


def skips_the_second_step(browser, email):
    return browser.login(email).headers["Location"] == "/"


def test_a_family_may_trust_this_device_when_signing_in_with_a_key(browser, factory):
    key = key_person(browser, factory, "pat@example.com")
    browser.login("pat@example.com")
    page = html.unescape(browser.get("/login/verify").get_data(as_text=True))
    step = page[page.index('data-webauthn="authenticate"') :]
    assert TRUST_LABEL in step[: step.index("data-webauthn-start")]
    done = sign_in_with_key_and_trust(browser, key, True)
    assert done.status_code == 200 and done.get_json() == {"redirect": "/"}
    assert browser.client.get_cookie(TRUSTED_DEVICE_COOKIE) is not None
    assert TrustedDevice.select().count() == 1
    browser.logout()
    assert skips_the_second_step(browser, "pat@example.com")


@pytest.mark.parametrize("trust", [None, False, "on", 1], ids=["absent", "false", "on", "1"])
def test_without_a_true_trust_the_key_is_asked_again(browser, factory, trust):
    key = key_person(browser, factory, "pat@example.com")
    browser.login("pat@example.com")
    assert sign_in_with_key_and_trust(browser, key, trust).status_code == 200
    assert TrustedDevice.select().count() == 0
    browser.logout()
    assert not skips_the_second_step(browser, "pat@example.com")


def test_a_refused_key_trusts_nothing(browser, factory):
    key = key_person(browser, factory, "pat@example.com")
    browser.login("pat@example.com")
    browser.get("/login/verify")
    options = post_json(browser, "/login/verify/security-key/options").get_json()
    body = {"credential": tampered(key.get(options, ORIGIN)), "trust": True}
    assert post_json(browser, "/login/verify/security-key", body).status_code == 422
    assert TrustedDevice.select().count() == 0
    assert browser.client.get_cookie(TRUSTED_DEVICE_COOKIE) is None


def test_staff_may_not_trust_a_device_by_default(browser, factory):
    key = key_person(browser, factory, "terry@example.com", staff=True)
    browser.login("terry@example.com")
    assert TRUST_LABEL not in html.unescape(browser.get("/login/verify").get_data(as_text=True))
    assert sign_in_with_key_and_trust(browser, key, True).status_code == 200
    assert TrustedDevice.select().count() == 0
    browser.logout()
    assert not skips_the_second_step(browser, "terry@example.com")


def test_staff_may_trust_a_device_when_the_setting_allows_it(app, browser, factory):
    app.config["TRUSTED_DEVICES_FOR_STAFF"] = True
    key = key_person(browser, factory, "terry@example.com", staff=True)
    browser.login("terry@example.com")
    assert TRUST_LABEL in html.unescape(browser.get("/login/verify").get_data(as_text=True))
    assert sign_in_with_key_and_trust(browser, key, True).status_code == 200
    browser.logout()
    assert skips_the_second_step(browser, "terry@example.com")


# --- a password reset link's step before the new password -------------------------------------


def reset_with_key(browser, token, key, origin=ORIGIN):
    """The reset page's key step: options, the key's answer, its check (JSON)."""
    options = post_json(browser, reset_url(token, "/security-key/options"))
    assert options.status_code == 200, options.get_data(as_text=True)
    assertion = key.get(options.get_json(), origin)
    return post_json(browser, reset_url(token, "/security-key"), {"credential": assertion})


def family_with_keys(browser, email="pat@example.com", names=("Blue USB key",), with_email=False):
    """A family login with 2SV on and these keys (added through the window), signed out."""
    parent = User.by_email(email)
    browser.login(email)
    keys = []
    for name in names:
        key = SoftAuthenticator()
        assert add_key_through_the_window(browser, key, name).status_code == 200
        keys.append(key)
    if with_email:
        VerificationMethod.create(user=parent, kind="email", destination=email)
    browser.post("/profile/2sv/toggle", {"enabled": "on"})
    browser.logout()
    return keys


def test_a_reset_link_offers_one_security_key_entry_and_the_key_lets_the_password_change(
    browser, new_browser, factory
):
    parent = factory.family(email="pat@example.com")
    key, _spare = family_with_keys(browser, names=("Blue USB key", "Spare"), with_email=True)
    assert User.get_by_id(parent.id).two_step_enabled
    visitor = new_browser()
    ask_for_link(visitor, "pat@example.com")
    token = last_token("pat@example.com")
    picker = visitor.get(reset_url(token)).get_data(as_text=True)
    assert picker.count(">Security Key</button>") == 1
    assert "Blue USB key" not in picker and "Spare" not in picker
    assert "Email" in picker

    first_key = VerificationMethod.get(VerificationMethod.destination == "Blue USB key")
    chosen = visitor.post(reset_url(token, "/method"), {"method_id": first_key.id}, htmx=True)
    page = chosen.get_data(as_text=True)
    assert chosen.status_code == 200 and is_fragment(chosen)
    assert "Use security key" in page and "Verification code" not in page
    assert f'data-options-url="{reset_url(token, "/security-key/options")}"' in page
    assert f'data-verify-url="{reset_url(token, "/security-key")}"' in page
    assert "Try another method" in page
    # No new password before the key's step.
    assert choose_new_password(visitor, token).status_code == 403

    done = reset_with_key(visitor, token, key)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json() == {"redirect": reset_url(token)}
    form = html.unescape(visitor.get(reset_url(token)).get_data(as_text=True))
    assert "Thanks, that's you" in form and "new_password" in form
    assert VerificationMethod.get_by_id(first_key.id).sign_count == key.counter == 1
    changed = choose_new_password(visitor, token)
    assert changed.status_code in (302, 303)
    assert has_password(parent, NEW_PASSWORD)
    assert visitor.get("/profile").status_code != 200  # a reset never signs anybody in
    assert User.get_by_id(parent.id).two_step_enabled


def test_keys_alone_show_the_key_step_at_once_and_keep_it_after_a_reload(browser, factory):
    factory.family(email="pat@example.com")
    (key,) = family_with_keys(browser)
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    page = browser.get(reset_url(token)).get_data(as_text=True)
    assert "Use security key" in page and "Choose how to get your code" not in page
    assert "Try another method" not in page
    assert "Security keys need JavaScript" in page
    assert reset_with_key(browser, token, key).status_code == 200
    # Passed already: the key endpoints send the browser on to the new-password form.
    again = post_json(browser, reset_url(token, "/security-key/options"))
    assert again.status_code == 303 and again.headers["Location"].endswith(reset_url(token))


def test_a_sign_in_challenge_does_not_pass_a_reset_and_a_reset_one_does_not_sign_in(ctx, factory):
    parent = factory.family()
    key, _ = register(parent)
    sign_in_options = webauthn_keys.authentication_options(parent, PARTY)
    check = webauthn_keys.verify_authentication(
        parent, PARTY, key.get(sign_in_options, ORIGIN), purpose=webauthn_keys.PASSWORD_RESET
    )
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.EXPIRED
    reset_options = webauthn_keys.authentication_options(
        parent, PARTY, purpose=webauthn_keys.PASSWORD_RESET
    )
    check = webauthn_keys.verify_authentication(parent, PARTY, key.get(reset_options, ORIGIN))
    assert not check.ok and check.reason is webauthn_keys.KeyProblem.EXPIRED


def test_refused_keys_at_a_reset_count_towards_the_pause(app, browser, factory):
    parent = factory.family(email="pat@example.com")
    (key,) = family_with_keys(browser)
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    statuses = []
    for _ in range(app.config["MAX_FAILED_CODES"]):
        refused = reset_with_key(browser, token, key, origin="https://evil.example")
        statuses.append(refused.status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {422}
    assert User.get_by_id(parent.id).verification_paused_until is not None
    options = post_json(browser, reset_url(token, "/security-key/options"))
    assert options.status_code == 429 and "paused" in options.get_json()["error"]
    fake = post_json(browser, reset_url(token, "/security-key"), {"credential": {}})
    assert fake.status_code == 429
    assert choose_new_password(browser, token).status_code == 403
    assert has_password(parent, PASSWORD)


def test_the_reset_key_endpoints_refuse_a_bad_link_and_a_missing_csrf_token(browser, factory):
    factory.family(email="pat@example.com")
    family_with_keys(browser)
    browser.get("/forgot-password")
    unknown = post_json(browser, reset_url("x" * 43, "/security-key/options"))
    assert unknown.status_code == 404 and "isn't valid" in unknown.get_json()["error"]
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    no_csrf = browser.client.post(reset_url(token, "/security-key/options"), json={})
    assert no_csrf.status_code == 400


# --- production without WEBAUTHN_RP_ID / WEBAUTHN_ORIGIN ---------------------------------------

PRODUCTION = {
    "TWOSTEP_ENV": "production",
    "ENCRYPTION_KEYS": "3Q6sKq7Lr0nqzv1o0cJ8oXxS3qj5JZt4gqJ0b2mVw6Y=",
    "OUTBOX_IN_PRODUCTION": True,
}


@pytest.fixture
def production_browser(app):
    """A browser on a production app (on the test database) with these settings."""
    from app import create_app
    from models import init_database

    def make(**settings):
        config = dict(app.config)
        config.update(PRODUCTION, **settings)
        production = create_app(config)
        # The test client's cookie jar sends the Secure session cookie over plain http too.
        client = production.test_client()
        return Browser(client)

    yield make
    init_database(app.config["DATABASE_URL"])


KEY_ENDPOINTS = [
    "/login/verify/security-key/options",
    "/login/verify/security-key",
]
WINDOW_KEY_ENDPOINTS = [
    "/profile/2sv/methods/security-key/options",
    "/profile/2sv/methods/security-key/register",
]


def test_production_without_rp_id_and_origin_hides_security_keys(production_browser, factory):
    browser = production_browser(WEBAUTHN_RP_ID="", WEBAUTHN_ORIGIN="")
    factory.family(email="pat@example.com")
    assert browser.login("pat@example.com").status_code in (302, 303)
    window = browser.get("/profile/2sv?tab=security-key")
    page = window.get_data(as_text=True)
    assert window.status_code == 200 and "Strict-Transport-Security" in window.headers
    assert 'id="tab-security-key"' not in page and "Add security key" not in page
    assert 'id="tab-authenticator"' in page
    for url in WINDOW_KEY_ENDPOINTS:
        response = post_json(browser, url, {"credential": {}, "name": "K"})
        assert response.status_code == 404, url
        assert response.get_json() == {"error": webauthn_keys.UNAVAILABLE}
    assert WebAuthnChallenge.select().count() == 0
    browser.logout()

    # A key saved earlier is neither offered nor checked at sign-in or at a password reset.
    kay = factory.family(email="kay@example.com", two_step=True)
    VerificationMethod.create(user=kay, kind="email", destination="kay@example.com")
    VerificationMethod.create(user=kay, kind=WEBAUTHN, destination="Old key", credential_id="k1")
    browser.login("kay@example.com")
    verify = browser.get("/login/verify").get_data(as_text=True)
    assert "Security Key" not in verify and "Use security key" not in verify
    for url in KEY_ENDPOINTS:
        assert post_json(browser, url, {"credential": {}}).status_code == 404, url
    browser.logout()
    ask_for_link(browser, "kay@example.com")
    token = LINK.search(
        OutboxMessage.select()
        .where(OutboxMessage.to == "kay@example.com", OutboxMessage.body.contains("reset"))
        .order_by(OutboxMessage.id.desc())
        .get()
        .body
    ).group(1)
    reset_page = browser.get(reset_url(token)).get_data(as_text=True)
    assert "Security Key" not in reset_page
    for suffix in ("/security-key/options", "/security-key"):
        assert post_json(browser, reset_url(token, suffix)).status_code == 404
    assert WebAuthnChallenge.select().count() == 0


def test_only_unusable_keys_fail_closed_at_sign_in_and_reset(production_browser, factory):
    """Keys switched off and no other method: no sign-in or new password without 2SV."""
    browser = production_browser(WEBAUTHN_RP_ID="", WEBAUTHN_ORIGIN="")
    kay = factory.family(email="kay@example.com", two_step=True)
    VerificationMethod.create(user=kay, kind=WEBAUTHN, destination="Old key", credential_id="k1")
    browser.login("kay@example.com")
    verify = browser.get("/login/verify")
    assert "None of your verification methods can be used here" in verify.get_data(as_text=True)
    assert browser.get("/profile").status_code in (302, 303)  # still not signed in
    assert UserSession.select().where(UserSession.state == "active").count() == 0
    browser.logout()
    ask_for_link(browser, "kay@example.com")
    token = LINK.search(
        OutboxMessage.select()
        .where(OutboxMessage.to == "kay@example.com", OutboxMessage.body.contains("reset"))
        .order_by(OutboxMessage.id.desc())
        .get()
        .body
    ).group(1)
    page = browser.get(reset_url(token)).get_data(as_text=True)
    assert "None of your verification methods can be used here" in page
    before = User.get_by_id(kay.id).password_hash
    new = "a brand new long password"
    refused = browser.post(reset_url(token), {"new_password": new, "confirm_password": new})
    assert refused.status_code == 403
    assert User.get_by_id(kay.id).password_hash == before


def test_staff_with_only_unusable_keys_are_sent_to_their_admin_never_to_a_set_up(
    production_browser, factory
):
    """Decisions 20: saved methods that cannot be used at all lead to "ask your center's
    admin", never to a set-up that the password alone would open."""
    browser = production_browser(WEBAUTHN_RP_ID="", WEBAUTHN_ORIGIN="")
    terry = factory.staff(email="terry@example.com")
    VerificationMethod.create(user=terry, kind=WEBAUTHN, destination="Old key", credential_id="k1")
    assert browser.login("terry@example.com").headers["Location"] == "/login/verify"
    page = browser.get("/login/verify").get_data(as_text=True)
    assert "ask an admin at your center to reset your 2-Step Verification" in page
    assert browser.get("/login/verify/setup").status_code != 200
    started = browser.post("/profile/2sv/methods/authenticator/start")
    assert started.status_code == 302 and "/login" in started.headers["Location"]
    assert PendingSetup.select().count() == 0
    assert UserSession.select().where(UserSession.state == "active").count() == 0


def test_production_with_rp_id_and_origin_offers_security_keys(production_browser, factory):
    browser = production_browser(WEBAUTHN_RP_ID="localhost", WEBAUTHN_ORIGIN="https://localhost")
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    page = browser.get("/profile/2sv?tab=security-key").get_data(as_text=True)
    assert 'id="tab-security-key"' in page and "Add security key" in page
    key = SoftAuthenticator()
    options = post_json(browser, "/profile/2sv/methods/security-key/options")
    assert options.status_code == 200
    saved = post_json(
        browser,
        "/profile/2sv/methods/security-key/register",
        {"credential": key.create(options.get_json(), "https://localhost"), "name": "K"},
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
