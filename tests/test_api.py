"""The mobile app's JSON API: its OpenAPI document, problems for every error, bearer tokens
as app sessions, and the 2-Step Verification window over JSON (issue 19)."""

import hashlib
from datetime import UTC

import pyotp
import pytest
from openapi_spec_validator import validate

from models.events import METHOD_ADDED, TWO_STEP_ON, SecurityEvent
from models.people import User
from models.sessions import APP, UserSession
from models.verification import PendingSetup, VerificationMethod
from services import housekeeping
from tests.api_client import ApiClient, app_token, is_problem, last_code, subjects_to

ADDED_SUBJECT = "A two-factor authentication device has been added"


@pytest.fixture
def family(factory):
    return factory.family(email="pat@example.com", name="Pat Parent")


@pytest.fixture
def api(app, family):
    """The mobile app, signed in as a family member with 2SV off."""
    return ApiClient(app.test_client(), app_token(family))


@pytest.fixture
def anonymous(app, db):
    return ApiClient(app.test_client())


def totp_now(secret, clock, offset_steps=0):
    return pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC), counter_offset=offset_steps)


# --- the document -------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1_and_lists_every_operation(app, anonymous):
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # openapi-spec-validator: raises on any error
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
            path = str(rule).replace("<int:method_id>", "{method_id}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed and routed == documented
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert list(answer["content"]) == ["application/problem+json"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


# --- problems -------------------------------------------------------------------------------


def test_no_token_is_401_problem_with_www_authenticate(anonymous):
    response = anonymous.get("/two-step")
    assert is_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "language, title, detail",
    [
        ("en", "Not signed in", "Sign in first: send Authorization: Bearer <token>."),
        (
            "es",
            "No has iniciado sesión",
            "Primero inicia sesión: envía Authorization: Bearer <token>.",
        ),
    ],
)
def test_the_apis_own_problems_speak_the_requests_language(anonymous, language, title, detail):
    body = anonymous.get("/two-step", headers={"Accept-Language": language}).get_json()
    assert (body["title"], body["detail"]) == (title, detail)


def test_a_spanish_app_gets_spanish_problems_from_the_api_and_the_services(api, clock, family):
    spanish = {"Accept-Language": "es"}
    clock.advance(minutes=16)
    stale = api.put("/two-step", {"enabled": False}, headers=spanish).get_json()
    assert stale["title"] == "No permitido"
    assert stale["detail"].startswith("Por tu seguridad, vuelve a escribir tu contraseña")
    wrong = api.post("/reauth", {"password": "not it"}, headers=spanish).get_json()
    assert wrong["detail"] == "Esa contraseña no es correcta."
    assert wrong["errors"]["password"] == wrong["detail"]
    missing = api.post("/reauth", {}, headers=spanish).get_json()
    assert missing["detail"] == "Faltan algunos campos o no son válidos."


def test_a_browser_session_cookie_without_a_token_is_401(app, browser, family):
    browser.login("pat@example.com")
    assert browser.get("/profile/2sv").status_code == 200  # signed in on the web
    response = browser.client.get("/api/v1/two-step")
    assert is_problem(response, 401)


def test_a_browser_session_id_is_not_an_app_token(app, browser, family):
    browser.login("pat@example.com")
    with browser.client.session_transaction() as cookie:
        web_token = cookie["sid"]
    response = ApiClient(app.test_client(), web_token).get("/two-step")
    assert is_problem(response, 401)


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("get", "/nothing-here", {}, 404),
        ("patch", "/two-step", {}, 405),
        ("put", "/two-step", {"data": "enabled=1", "content_type": "text/plain"}, 415),
        ("put", "/two-step", {"data": "{not json", "content_type": "application/json"}, 400),
        ("put", "/two-step", {"json": {"enabled": "yes\u0000"}}, 400),
        (
            "put",
            "/two-step",
            {"data": "x" * (1024 * 1024 + 1), "content_type": "application/json"},
            413,
        ),
    ],
)
def test_errors_are_problem_documents(api, method, path, kwargs, status):
    response = getattr(api.client, method)(
        "/api/v1" + path, headers={"Authorization": f"Bearer {api.token}"}, **kwargs
    )
    assert is_problem(response, status)
    if status == 405:
        assert "PUT" in response.headers["Allow"]


@pytest.mark.parametrize(
    "body, field",
    [({}, "enabled"), ({"enabled": "true"}, "enabled"), ({"enabled": True, "more": 1}, "more")],
)
def test_a_body_that_does_not_fit_is_422_naming_the_field(api, body, field):
    response = api.put("/two-step", body)
    assert is_problem(response, 422)
    assert field in response.get_json()["errors"]


def test_no_csrf_token_needed_and_no_cookie_set(api, family):
    response = api.put("/two-step", {"enabled": False})
    assert response.status_code == 200  # no CSRF token, no 400
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("app_config", [{"SIGN_IN_ATTEMPTS_PER_IP": "2 per minute"}])
def test_too_many_attempts_is_429_with_retry_after(api):
    for _ in range(2):
        assert api.post("/reauth", {"password": "wrong"}).status_code == 422
    response = api.post("/reauth", {"password": "wrong"})
    assert is_problem(response, 429)
    retry_after = response.get_json()["retry_after"]
    assert 0 < retry_after <= 60
    assert response.headers["Retry-After"] == str(retry_after)


# --- tokens are app sessions ----------------------------------------------------------------


def test_tokens_are_random_and_stored_only_hashed(family, db):
    first, second = app_token(family), app_token(family)
    assert first != second and len(first) >= 40
    rows = list(UserSession.select().where(UserSession.kind == APP))
    assert {row.token_hash for row in rows} == {
        hashlib.sha256(token.encode()).hexdigest() for token in (first, second)
    }
    assert all(first not in row.token_hash for row in rows)


def test_app_session_shows_on_the_web_and_sign_out_other_sessions_ends_it(api, browser, family):
    browser.login("pat@example.com")
    page = browser.get("/profile/2sv").get_data(as_text=True)
    assert "Pat&#39;s phone (mobile app)" in page or "Pat's phone (mobile app)" in page
    assert api.get("/two-step").status_code == 200
    browser.post("/profile/2sv/sessions/end-others")
    assert is_problem(api.get("/two-step"), 401)


def test_an_admin_reset_ends_app_sessions(api, factory, family, db):
    from services.admin.reset import reset_two_step

    admin = factory.admin()
    reset_two_step(family, admin)
    assert is_problem(api.get("/two-step"), 401)


def test_a_password_change_ends_app_sessions(api, browser, family):
    browser.login("pat@example.com")
    browser.post(
        "/profile/password",
        {
            "current_password": "correct horse battery",
            "new_password": "a brand new passphrase 42",
            "confirm_password": "a brand new passphrase 42",
        },
    )
    assert User.get_by_id(family.id).password_hash != family.password_hash
    assert is_problem(api.get("/two-step"), 401)


def test_app_sessions_end_after_30_days_unused(api, clock):
    clock.advance(days=29)
    assert api.get("/two-step").status_code == 200  # used: 30 more days from now
    clock.advance(days=29, hours=23)
    assert api.get("/two-step").status_code == 200
    clock.advance(days=30, seconds=1)
    assert is_problem(api.get("/two-step"), 401)


@pytest.mark.parametrize("app_config", [{"APP_SESSION_IDLE_DAYS": 2}])
def test_housekeeping_keeps_app_sessions_past_the_web_idle_time_then_purges_them(api, clock, app):
    clock.advance(hours=13)  # past the web's 30 minutes idle and 12 hours max
    with app.test_request_context():
        housekeeping.purge()
    assert UserSession.select().where(UserSession.kind == APP).count() == 1
    clock.advance(days=2)
    with app.test_request_context():
        assert housekeeping.purge()["app_sessions"] == 1
    assert is_problem(api.get("/two-step"), 401)


# --- the 2-Step Verification window ---------------------------------------------------------


def test_two_step_document(api, family):
    body = api.get("/two-step").get_json()
    assert body == {"enabled": False, "required": False, "methods": [], "recovery_codes_left": 0}


def test_turning_on_without_a_method_is_422_with_the_webs_words(api, family):
    response = api.put("/two-step", {"enabled": True})
    assert is_problem(response, 422)
    assert "Add a verification method" in response.get_json()["detail"]
    assert not User.get_by_id(family.id).two_step_enabled


def test_changes_need_a_sign_in_within_15_minutes_then_reauth(api, clock, family):
    clock.advance(minutes=16)
    response = api.put("/two-step", {"enabled": False})
    assert is_problem(response, 403)
    assert response.get_json()["code"] == "reauth_required"
    assert is_problem(api.post("/two-step/methods", {"kind": "totp"}), 403)
    wrong = api.post("/reauth", {"password": "not it"})
    assert is_problem(wrong, 422)
    right = api.post("/reauth", {"password": "correct horse battery"})
    assert right.status_code == 200
    assert (
        right.get_json()["valid_until"].endswith("Z") or "+00:00" in right.get_json()["valid_until"]
    )
    assert api.put("/two-step", {"enabled": False}).status_code == 200


def test_first_email_method_turns_two_step_on_with_the_device_added_email(api, family):
    sent = api.post("/two-step/methods", {"kind": "email"})
    assert sent.status_code == 202
    pending = sent.get_json()["pending"]
    assert pending["masked"] == "p\u2022\u2022\u2022@example.com"
    saved = api.post(
        "/two-step/methods/confirm",
        {"pending_id": pending["id"], "code": last_code("pat@example.com")},
    )
    assert saved.status_code == 201
    body = saved.get_json()
    assert body["enabled"] is True
    assert body["method"]["kind"] == "email" and body["method"]["label"] == "Email"
    assert ADDED_SUBJECT in subjects_to("pat@example.com")
    assert User.get_by_id(family.id).two_step_enabled
    kinds = {event.kind for event in SecurityEvent.select().where(SecurityEvent.user == family)}
    assert {METHOD_ADDED, TWO_STEP_ON} <= kinds
    window = api.get("/two-step").get_json()
    assert window["enabled"] is True and [m["kind"] for m in window["methods"]] == ["email"]


def test_recovery_codes_from_the_app_are_shown_once_and_replace_the_old_set(
    api, anonymous, clock, family
):
    """POST /two-step/recovery-codes: ten new codes (409 while 2SV is off); the window counts
    them; a new set voids the old one and emails the person; one of them signs in."""
    refused = api.post("/two-step/recovery-codes")
    assert (
        is_problem(refused, 409)
        and "Turn on 2-Step Verification first" in refused.get_json()["detail"]
    )
    sent = api.post("/two-step/methods", {"kind": "email"}).get_json()["pending"]
    code = last_code("pat@example.com")
    api.post("/two-step/methods/confirm", {"pending_id": sent["id"], "code": code})
    first = api.post("/two-step/recovery-codes")
    assert first.status_code == 201
    codes = first.get_json()["codes"]
    assert len(codes) == len(set(codes)) == 10
    assert api.get("/two-step").get_json()["recovery_codes_left"] == 10
    assert "New recovery codes were created for your account" not in subjects_to(family.email)

    second = api.post("/two-step/recovery-codes").get_json()["codes"]
    assert not set(second) & set(codes)
    assert "New recovery codes were created for your account" in subjects_to(family.email)

    body = {"email": family.email, "password": "correct horse battery", "device_name": "Tab"}
    pending = anonymous.post("/sign-in", body).get_json()["pending_token"]
    old = {"pending_token": pending, "recovery_code": codes[0]}
    assert is_problem(anonymous.post("/sign-in/recovery", old), 422)  # the old set is void
    new = {"pending_token": pending, "recovery_code": second[0]}
    assert anonymous.post("/sign-in/recovery", new).get_json()["status"] == "signed_in"
    assert api.get("/two-step").get_json()["recovery_codes_left"] == 9


def test_new_recovery_codes_need_a_recent_sign_in(api, clock, family):
    family.two_step_enabled = True
    family.save()
    clock.advance(minutes=16)
    response = api.post("/two-step/recovery-codes")
    assert is_problem(response, 403) and response.get_json()["code"] == "reauth_required"


def test_authenticator_set_up_gives_the_key_and_uri_then_a_code_saves_it(api, clock, family):
    started = api.post("/two-step/methods", {"kind": "totp"})
    assert started.status_code == 201
    pending = started.get_json()["pending"]
    assert pending["otpauth_uri"].startswith("otpauth://totp/")
    assert (
        "pat%40example.com" in pending["otpauth_uri"] or "pat@example.com" in pending["otpauth_uri"]
    )
    again = api.post("/two-step/methods", {"kind": "totp"}).get_json()["pending"]
    assert again["key"] == pending["key"]  # the same pending key, reused (Decisions 11)
    wrong = api.post("/two-step/methods/confirm", {"pending_id": pending["id"], "code": "000000"})
    assert is_problem(wrong, 422) and "code" in wrong.get_json()["errors"]
    saved = api.post(
        "/two-step/methods/confirm",
        {"pending_id": pending["id"], "code": totp_now(pending["key"], clock)},
    )
    assert saved.status_code == 201 and saved.get_json()["enabled"] is True
    assert VerificationMethod.get(VerificationMethod.user == family).kind == "totp"
    assert is_problem(api.post("/two-step/methods", {"kind": "totp"}), 409)


def test_text_message_needs_a_valid_mobile_number(api):
    response = api.post("/two-step/methods", {"kind": "sms", "destination": "12"})
    assert is_problem(response, 422)
    assert "destination" in response.get_json()["errors"]
    sent = api.post("/two-step/methods", {"kind": "sms", "destination": "(201) 555-0123"})
    assert sent.status_code == 202
    assert sent.get_json()["pending"]["masked"] == "\u2022\u2022\u2022-\u2022\u2022\u2022-0123"


def test_a_second_method_does_not_turn_two_step_back_on(api, family, clock):
    started = api.post("/two-step/methods", {"kind": "totp"}).get_json()["pending"]
    api.post(
        "/two-step/methods/confirm",
        {"pending_id": started["id"], "code": totp_now(started["key"], clock)},
    )
    assert api.put("/two-step", {"enabled": False}).get_json()["enabled"] is False
    sent = api.post("/two-step/methods", {"kind": "email"}).get_json()["pending"]
    saved = api.post(
        "/two-step/methods/confirm",
        {"pending_id": sent["id"], "code": last_code("pat@example.com")},
    )
    assert saved.status_code == 201 and saved.get_json()["enabled"] is False


def test_confirming_someone_elses_pending_set_up_is_404(api, factory, app):
    other = factory.family(email="other@example.com")
    other_api = ApiClient(app.test_client(), app_token(other))
    pending = other_api.post("/two-step/methods", {"kind": "email"}).get_json()["pending"]
    response = api.post(
        "/two-step/methods/confirm",
        {"pending_id": pending["id"], "code": last_code("other@example.com")},
    )
    assert is_problem(response, 404)
    assert PendingSetup.get_by_id(pending["id"]).user_id == other.id


def test_delete_a_method_and_the_last_turns_two_step_off(api, family):
    sent = api.post("/two-step/methods", {"kind": "email"}).get_json()["pending"]
    method = api.post(
        "/two-step/methods/confirm",
        {"pending_id": sent["id"], "code": last_code("pat@example.com")},
    ).get_json()["method"]
    assert api.delete(f"/two-step/methods/{method['id']}").status_code == 204
    window = api.get("/two-step").get_json()
    assert window == {"enabled": False, "required": False, "methods": [], "recovery_codes_left": 0}
    assert is_problem(api.delete(f"/two-step/methods/{method['id']}"), 404)


def test_staff_cannot_turn_off_or_delete_their_last_method(app, factory, clock):
    staff = factory.staff(email="terry@example.com", two_step=True)
    staff_api = ApiClient(app.test_client(), app_token(staff))
    started = staff_api.post("/two-step/methods", {"kind": "totp"}).get_json()["pending"]
    method = staff_api.post(
        "/two-step/methods/confirm",
        {"pending_id": started["id"], "code": totp_now(started["key"], clock)},
    ).get_json()["method"]
    assert staff_api.get("/two-step").get_json()["required"] is True
    response = staff_api.put("/two-step", {"enabled": False})
    assert is_problem(response, 409)
    assert "required for staff" in response.get_json()["detail"]
    assert is_problem(staff_api.delete(f"/two-step/methods/{method['id']}"), 409)
    assert VerificationMethod.get_or_none(VerificationMethod.id == method["id"]) is not None


def test_eleven_wrong_passwords_at_reauth_end_the_token(api, family):
    """POST /reauth is limited as the web's re-check (the same service, one budget per
    account): the 11th try in 15 minutes is 429, the token ends and the person is emailed."""
    from models.events import PASSWORD_RECHECK_FAILED

    for n in range(10):
        assert is_problem(api.post("/reauth", {"password": f"not it {n}"}), 422)
    limited = api.post("/reauth", {"password": "correct horse battery"})
    assert is_problem(limited, 429) and limited.get_json()["code"] == "signed_out"
    assert is_problem(api.get("/two-step"), 401)
    assert UserSession.select().count() == 0
    assert "Too many wrong passwords were entered on your account" in subjects_to(family.email)
    counted = SecurityEvent.select().where(SecurityEvent.kind == PASSWORD_RECHECK_FAILED)
    assert counted.count() == 11


def test_wrong_passwords_at_the_app_sign_in_count_toward_reauth(api, anonymous, family):
    """The app's sign-in feeds the same per-account budget (issue 14): ten wrong passwords
    at POST /sign-in, then the signed-in app's /reauth is refused and its token ends."""
    for n in range(10):
        body = {"email": family.email, "password": f"guess {n}", "device_name": "Phone"}
        assert is_problem(anonymous.post("/sign-in", body), 401)
    limited = api.post("/reauth", {"password": "correct horse battery"})
    assert is_problem(limited, 429) and limited.get_json()["code"] == "signed_out"
    assert is_problem(api.get("/two-step"), 401)
    assert "Too many wrong passwords were entered on your account" in subjects_to(family.email)


def test_wrong_passwords_on_the_web_and_in_the_app_share_one_budget(app, api, family, browser):
    """The web's /confirm-password and the app's /reauth count into the same per-account
    budget: 5 wrong on the web and 5 in the app, then the app's next try is refused."""
    browser.login(family.email)
    browser.get("/confirm-password")
    for n in range(5):
        assert browser.post("/confirm-password", {"password": f"web {n}"}).status_code == 422
    for n in range(5):
        assert is_problem(api.post("/reauth", {"password": f"app {n}"}), 422)
    assert is_problem(api.post("/reauth", {"password": "correct horse battery"}), 429)
    assert (
        browser.post("/confirm-password", {"password": "correct horse battery"}).status_code == 429
    )
