"""Signing in from the mobile app (issue 19): the seed's mobile flow end to end over HTTP, the
staff set-up, the picker, wrong codes, recovery codes and signing out, all on the web's
sign-in flow."""

from datetime import UTC

import httpx
import pyotp
import pytest
from cryptography.fernet import Fernet

from models import crypto
from models.events import SIGNED_IN, SecurityEvent
from models.people import User
from models.sessions import APP, PENDING, UserSession
from models.verification import TOTP, WEBAUTHN, VerificationMethod
from services.methods import recovery_codes, totp
from tests.api_client import ApiClient, is_problem, last_code, subjects_to
from tests.e2e.live import LiveServer

PASSWORD = "correct horse battery"
ADDED_SUBJECT = "A two-factor authentication device has been added"


@pytest.fixture
def app_client(app, db):
    return ApiClient(app.test_client())


def sign_in(client, email, password=PASSWORD, device_name="Pat's phone"):
    return client.post(
        "/sign-in", {"email": email, "password": password, "device_name": device_name}
    )


def totp_now(secret, clock):

    return pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC))


def set_up_authenticator(client, token, clock, later=0):
    """A pending staff sign-in's set-up of an authenticator app, `later` seconds after it
    starts (a time step the sign-in has not used): signed in; the answer."""
    started = client.post("/sign-in/set-up", {"pending_token": token, "kind": "totp"})
    assert started.status_code == 201
    pending = started.get_json()["pending"]
    clock.advance(seconds=later)
    done = client.post(
        "/sign-in/set-up/confirm",
        {
            "pending_token": token,
            "pending_id": pending["id"],
            "code": totp_now(pending["key"], clock),
        },
    )
    assert done.status_code == 200 and done.get_json()["status"] == "signed_in"
    return done


def test_wrong_password_is_401_with_one_generic_message(app_client, factory):
    factory.family(email="pat@example.com")
    wrong_password = sign_in(app_client, "pat@example.com", "nope")
    unknown_email = sign_in(app_client, "nobody@example.com")
    assert is_problem(wrong_password, 401) and is_problem(unknown_email, 401)
    assert wrong_password.get_json()["detail"] == unknown_email.get_json()["detail"]
    assert UserSession.select().count() == 0


def test_two_step_off_signs_in_with_a_token_of_an_app_session(app_client, factory):
    pat = factory.family(email="pat@example.com")
    response = sign_in(app_client, "pat@example.com", device_name="Pat's iPhone")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "signed_in" and body["token"] and body["expires_at"]
    row = UserSession.get(UserSession.user == pat)
    assert row.kind == APP and row.device_name == "Pat's iPhone"
    events = SecurityEvent.select().where(
        SecurityEvent.user == pat, SecurityEvent.kind == SIGNED_IN
    )
    assert events.count() == 1
    app_client.token = body["token"]
    assert app_client.get("/two-step").status_code == 200


def test_the_seeds_mobile_flow(app_client, factory, clock):
    """Sign in (2SV off) -> add Email (code from the outbox) -> 2SV is on -> sign out ->
    sign in -> the second step with the email code -> a token."""
    factory.family(email="pat@example.com")
    app_client.token = sign_in(app_client, "pat@example.com").get_json()["token"]
    pending = app_client.post("/two-step/methods", {"kind": "email"}).get_json()["pending"]
    saved = app_client.post(
        "/two-step/methods/confirm",
        {"pending_id": pending["id"], "code": last_code("pat@example.com")},
    )
    assert saved.status_code == 201 and saved.get_json()["enabled"] is True
    assert ADDED_SUBJECT in subjects_to("pat@example.com")
    assert app_client.post("/sign-out").status_code == 204
    assert is_problem(app_client.get("/two-step"), 401)

    app_client.token = None
    clock.advance(seconds=31)  # past the set-up code's cooldown for this address
    step = sign_in(app_client, "pat@example.com").get_json()
    assert step["status"] == "second_step"
    assert step["sent"] is True and step["method"]["kind"] == "email"
    assert step["methods"] == [step["method"]]
    assert step["method"]["masked"] == "p\u2022\u2022\u2022@example.com"
    assert is_problem(ApiClient(app_client.client, step["pending_token"]).get("/two-step"), 401)
    done = app_client.post(
        "/sign-in/verify",
        {"pending_token": step["pending_token"], "code": last_code("pat@example.com")},
    )
    assert done.status_code == 200
    app_client.token = done.get_json()["token"]
    assert app_client.get("/two-step").get_json()["enabled"] is True
    # The pending token named the same row, now signed in under a new token: it is spent.
    again = app_client.post(
        "/sign-in/verify", {"pending_token": step["pending_token"], "code": "123456"}
    )
    assert is_problem(again, 401)


def test_staff_set_up_at_sign_in_then_a_token(app_client, factory, clock):
    terry = factory.staff(email="terry@example.com")
    step = sign_in(app_client, "terry@example.com").get_json()
    assert step["status"] == "set_up" and "totp" in step["kinds"]
    token = step["pending_token"]
    verify = app_client.post("/sign-in/verify", {"pending_token": token, "code": "123456"})
    assert is_problem(verify, 409)
    done = set_up_authenticator(app_client, token, clock)
    assert User.get_by_id(terry.id).two_step_enabled
    app_client.token = done.get_json()["token"]
    window = app_client.get("/two-step").get_json()
    assert window["required"] and [m["kind"] for m in window["methods"]] == ["totp"]


@pytest.fixture
def three_methods(factory):
    pat = factory.family(email="pat@example.com", two_step=True)
    secret = totp.new_secret()
    VerificationMethod.create(user=pat, kind=TOTP, secret=crypto.encrypt(secret))
    VerificationMethod.create(user=pat, kind="email", destination="pat@example.com")
    VerificationMethod.create(user=pat, kind="sms", destination="+12015550123")
    return pat, secret


def test_the_picker_with_three_methods(app_client, three_methods):
    step = sign_in(app_client, "pat@example.com").get_json()
    assert step["status"] == "second_step" and step["method"] is None and step["sent"] is False
    assert [(m["kind"], m["masked"]) for m in step["methods"]] == [
        ("totp", ""),
        ("email", "p\u2022\u2022\u2022@example.com"),
        ("sms", "\u2022\u2022\u2022-\u2022\u2022\u2022-0123"),
    ]
    token = step["pending_token"]
    picked = {m["kind"]: m["id"] for m in step["methods"]}
    not_yet = app_client.post("/sign-in/verify", {"pending_token": token, "code": "123456"})
    assert is_problem(not_yet, 422)
    chosen = app_client.post(
        "/sign-in/method", {"pending_token": token, "method_id": picked["sms"]}
    )
    assert chosen.status_code == 200
    assert chosen.get_json()["sent"] is True and chosen.get_json()["method"]["kind"] == "sms"
    # Within the cooldown the code already sent is offered again, as on the web.
    resent = app_client.post("/sign-in/resend", {"pending_token": token})
    assert resent.status_code == 200 and "still good" in resent.get_json()["message"]
    assert len(subjects_to("+12015550123")) == 1
    done = app_client.post(
        "/sign-in/verify", {"pending_token": token, "code": last_code("+12015550123")}
    )
    assert done.status_code == 200 and done.get_json()["status"] == "signed_in"


def test_choosing_someone_elses_method_is_refused(app_client, three_methods, factory):
    other = factory.family(email="other@example.com", two_step=True)
    theirs = VerificationMethod.create(user=other, kind="email", destination="other@example.com")
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    response = app_client.post("/sign-in/method", {"pending_token": token, "method_id": theirs.id})
    assert is_problem(response, 422)
    assert subjects_to("other@example.com") == []


def test_wrong_codes_are_422_then_429_with_when(app_client, three_methods):
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    totp_id = three_methods[0].methods.where(VerificationMethod.kind == TOTP).get().id
    app_client.post("/sign-in/method", {"pending_token": token, "method_id": totp_id})
    for _ in range(4):
        wrong = app_client.post("/sign-in/verify", {"pending_token": token, "code": "000000"})
        assert is_problem(wrong, 422)
    paused = app_client.post("/sign-in/verify", {"pending_token": token, "code": "000000"})
    assert is_problem(paused, 429)
    body = paused.get_json()
    assert 14 * 60 <= body["retry_after"] <= 15 * 60 and "paused" in body["detail"]
    assert paused.headers["Retry-After"] == str(body["retry_after"])


def test_a_recovery_code_signs_in(app_client, three_methods):
    pat, _ = three_methods
    codes = recovery_codes.generate(pat)
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    wrong = app_client.post("/sign-in/recovery", {"pending_token": token, "recovery_code": "X"})
    assert is_problem(wrong, 422)
    done = app_client.post("/sign-in/recovery", {"pending_token": token, "recovery_code": codes[0]})
    assert done.status_code == 200 and done.get_json()["status"] == "signed_in"


def test_a_pending_token_expires_and_is_not_a_bearer_token(app_client, three_methods, clock):
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    assert UserSession.get(UserSession.kind == APP).state == PENDING
    assert is_problem(ApiClient(app_client.client, token).get("/two-step"), 401)
    clock.advance(minutes=16)
    response = app_client.post("/sign-in/resend", {"pending_token": token})
    assert is_problem(response, 401)


def test_a_token_ended_by_sign_out_other_sessions_on_the_web_is_401(app_client, factory, browser):
    factory.family(email="pat@example.com")
    app_client.token = sign_in(app_client, "pat@example.com").get_json()["token"]
    browser.login("pat@example.com")
    assert "Pat&#39;s phone (mobile app)" in browser.get("/profile/2sv").get_data(as_text=True)
    browser.post("/profile/2sv/sessions/end-others")
    assert is_problem(app_client.get("/two-step"), 401)


def test_the_seeds_mobile_flow_over_http(tmp_path):
    """The same flow against the app served on 127.0.0.1 (a free port), as the app talks."""
    server = LiveServer(tmp_path / "http.db", RATELIMIT_ENABLED=True).start()
    try:
        server.people.family(name="Pat Parent", email="pat@example.com")
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=10) as http:
            body = {"email": "pat@example.com", "password": PASSWORD, "device_name": "Pat's phone"}
            first = http.post("/sign-in", json=body)
            assert first.status_code == 200 and first.json()["status"] == "signed_in"
            assert "set-cookie" not in first.headers
            auth = {"Authorization": f"Bearer {first.json()['token']}"}
            pending = http.post("/two-step/methods", json={"kind": "email"}, headers=auth)
            assert pending.status_code == 202
            saved = http.post(
                "/two-step/methods/confirm",
                json={
                    "pending_id": pending.json()["pending"]["id"],
                    "code": server.last_code("pat@example.com"),
                },
                headers=auth,
            )
            assert saved.status_code == 201 and saved.json()["enabled"] is True
            assert http.post("/sign-out", headers=auth).status_code == 204
            gone = http.get("/two-step", headers=auth)
            assert gone.status_code == 401
            assert gone.headers["content-type"] == "application/problem+json"

            server.clock.advance(seconds=31)
            step = http.post("/sign-in", json=body).json()
            assert step["status"] == "second_step" and step["sent"] is True
            done = http.post(
                "/sign-in/verify",
                json={
                    "pending_token": step["pending_token"],
                    "code": server.last_code("pat@example.com"),
                },
            )
            assert done.status_code == 200 and done.json()["status"] == "signed_in"
            window = http.get(
                "/two-step", headers={"Authorization": f"Bearer {done.json()['token']}"}
            )
            assert window.json()["enabled"] is True
    finally:
        server.stop()


@pytest.mark.parametrize("app_config", [{"SIGN_IN_ATTEMPTS_PER_IP": "3 per minute"}])
def test_password_attempts_are_limited_per_address(app_client, factory):
    factory.family(email="pat@example.com")
    for _ in range(3):
        assert is_problem(sign_in(app_client, "pat@example.com", "wrong"), 401)
    limited = sign_in(app_client, "pat@example.com")
    assert is_problem(limited, 429) and limited.get_json()["retry_after"] > 0
    assert UserSession.select().count() == 0


@pytest.mark.parametrize(
    "app_config", [{"STAFF_SETUP_GRACE_SIGNINS": 1}], ids=["one grace sign-in"]
)
def test_staff_not_now_within_the_grace_sign_ins(app_client, factory):
    factory.staff(email="terry@example.com")
    token = sign_in(app_client, "terry@example.com").get_json()["pending_token"]
    skipped = app_client.post("/sign-in/set-up/skip", {"pending_token": token})
    assert skipped.status_code == 200 and skipped.get_json()["status"] == "signed_in"
    token = sign_in(app_client, "terry@example.com").get_json()["pending_token"]
    refused = app_client.post("/sign-in/set-up/skip", {"pending_token": token})
    assert is_problem(refused, 409) and refused.get_json()["code"] == "no_grace_left"


def test_set_up_steps_are_refused_once_a_method_exists(app_client, three_methods):
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    response = app_client.post("/sign-in/set-up", {"pending_token": token, "kind": "totp"})
    assert is_problem(response, 409)


def test_security_keys_are_left_out_of_the_apps_picker(app_client, three_methods):
    pat, _ = three_methods
    key = VerificationMethod.create(
        user=pat, kind="webauthn", destination="YubiKey", credential_id="abc", public_key="x"
    )
    step = sign_in(app_client, "pat@example.com").get_json()
    assert "webauthn" not in {m["kind"] for m in step["methods"]}
    chosen = app_client.post(
        "/sign-in/method", {"pending_token": step["pending_token"], "method_id": key.id}
    )
    assert is_problem(chosen, 422)


def test_a_failing_text_provider_is_502_and_leaves_the_picker(app, app_client, three_methods):
    app.config.update(
        VONAGE_API_KEY="key", VONAGE_API_SECRET="secret", VONAGE_REST_HOST="127.0.0.1:9"
    )
    step = sign_in(app_client, "pat@example.com").get_json()
    sms = next(m["id"] for m in step["methods"] if m["kind"] == "sms")
    response = app_client.post(
        "/sign-in/method", {"pending_token": step["pending_token"], "method_id": sms}
    )
    assert is_problem(response, 502)


def test_an_authenticator_key_this_instance_cannot_read_is_503_not_counted(app_client, factory):
    pat = factory.family(email="pat@example.com", two_step=True)
    stranger = Fernet(Fernet.generate_key()).encrypt(b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    VerificationMethod.create(user=pat, kind=TOTP, secret=stranger.decode())
    step = sign_in(app_client, "pat@example.com").get_json()
    assert step["method"]["kind"] == "totp"
    response = app_client.post(
        "/sign-in/verify", {"pending_token": step["pending_token"], "code": "123456"}
    )
    assert is_problem(response, 503)
    document = app_client.get("/openapi.json").get_json()
    assert "503" in document["paths"]["/api/v1/sign-in/verify"]["post"]["responses"]


def test_locked_codes_are_429_and_a_recovery_code_still_signs_in(app, app_client, three_methods):
    pat, secret = three_methods
    codes = recovery_codes.generate(pat)
    User.update(failed_code_count=app.config["LOCK_AFTER_FAILED_CODES"]).where(
        User.id == pat.id
    ).execute()
    token = sign_in(app_client, "pat@example.com").get_json()["pending_token"]
    totp_id = pat.methods.where(VerificationMethod.kind == TOTP).get().id
    app_client.post("/sign-in/method", {"pending_token": token, "method_id": totp_id})
    locked = app_client.post("/sign-in/verify", {"pending_token": token, "code": "000000"})
    assert is_problem(locked, 429) and locked.get_json()["code"] == "verification_locked"
    done = app_client.post("/sign-in/recovery", {"pending_token": token, "recovery_code": codes[0]})
    assert done.status_code == 200 and done.get_json()["status"] == "signed_in"


@pytest.mark.parametrize("app_config", [{"STAFF_METHODS": "totp,sms"}], ids=["email left out"])
def test_staff_prove_a_left_out_method_before_the_set_up(app_client, factory, clock):
    """Decisions 20, as on the web: the saved email is proven first (the set-up stays
    closed until then), and only then is an allowed method set up to get a token."""
    terry = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=terry, kind="email", destination="terry@example.com")
    step = sign_in(app_client, "terry@example.com").get_json()
    assert step["status"] == "second_step" and step["sent"]
    assert step["method"]["kind"] == "email"
    token = step["pending_token"]
    closed = app_client.post("/sign-in/set-up", {"pending_token": token, "kind": "totp"})
    assert is_problem(closed, 409)
    code = last_code("terry@example.com")
    wrong = "000000" if code != "000000" else "111111"
    assert is_problem(
        app_client.post("/sign-in/verify", {"pending_token": token, "code": wrong}), 422
    )
    proven = app_client.post("/sign-in/verify", {"pending_token": token, "code": code})
    assert proven.status_code == 200
    assert proven.get_json()["status"] == "set_up" and proven.get_json()["pending_token"] == token
    assert "email" not in proven.get_json()["kinds"]
    assert User.get_by_id(terry.id).failed_code_count == 0
    assert not UserSession.select().where(UserSession.state != PENDING).exists()
    again = app_client.post("/sign-in/verify", {"pending_token": token, "code": code})
    assert is_problem(again, 409)  # proven: only the set-up remains
    set_up_authenticator(app_client, token, clock, later=30)


@pytest.fixture
def production_app_client(app):
    """An API client of a production app (on the test database) where security keys can't
    be used: no WEBAUTHN_RP_ID or WEBAUTHN_ORIGIN."""
    from app import create_app
    from models import init_database
    from tests.test_security_keys import PRODUCTION

    config = dict(app.config)
    config.update(PRODUCTION, WEBAUTHN_RP_ID="", WEBAUTHN_ORIGIN="")
    yield ApiClient(create_app(config).test_client())
    init_database(app.config["DATABASE_URL"])


def test_only_unusable_keys_are_told_to_ask_their_admin(production_app_client, factory):
    """Decisions 20: saved methods that can't be used at all lead to "ask your center's
    admin" (a 403 problem), never to a set-up; the pending sign-in ends."""
    terry = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=terry, kind=WEBAUTHN, destination="Old key", credential_id="k1")
    answer = sign_in(production_app_client, "terry@example.com")
    assert is_problem(answer, 403)
    assert answer.get_json()["code"] == "ask_admin_to_reset"
    assert "ask an admin at your center to reset" in answer.get_json()["detail"]
    assert UserSession.select().count() == 0
    assert VerificationMethod.select().count() == 1
