"""What became of a sign-in code, in the mobile app's API (issue 20 for the app): the second
step's answers carry the newest code's `delivery` for email and text message, and
POST /sign-in/delivery asks again, as the web's code box polls. The provider reports come
through the signed webhooks (tests/test_webhooks.py), the sends through the fake SendGrid."""

import pytest

from models.deliveries import FAILED, STATES, VONAGE, CodeDelivery
from models.verification import EMAIL, SMS, TOTP
from services.methods import deliveries
from tests import test_api_sign_in, test_deliveries
from tests.api_client import app_token, is_problem
from tests.test_api_sign_in import sign_in
from tests.test_deliveries import ADDRESS, PHONE, bounce, family_with
from tests.test_webhooks import sendgrid_post, sms_delivery

# Their fixtures, under the same names: the API client, and the settings with the signed
# SendGrid webhook on (and the fake SendGrid sending when a test asks for `sendgrid`).
app_client = test_api_sign_in.app_client
app_config = test_deliveries.app_config

DELIVERY = "/sign-in/delivery"


def ask(client, token):
    return client.post(DELIVERY, {"pending_token": token})


def delivered(app, clock, message_id):
    """SendGrid's signed report that `message_id` was delivered."""
    events = [{"event": "delivered", "sg_message_id": f"{message_id}.filter1"}]
    assert sendgrid_post(app.test_client(), events, clock).status_code == 204


def test_a_lone_email_sign_in_says_sent_then_delivered(app, app_client, factory, sendgrid, clock):
    family_with(factory, EMAIL)
    step = sign_in(app_client, ADDRESS).get_json()
    assert step["sent"] is True and step["method"]["kind"] == "email"
    assert step["delivery"] == {"state": "sent", "reason": None, "check_again": True}
    token = step["pending_token"]
    asked = ask(app_client, token)
    assert asked.status_code == 200
    assert asked.get_json() == {
        "method": step["method"],
        "delivery": {"state": "sent", "reason": None, "check_again": True},
    }

    clock.advance(seconds=5)
    delivered(app, clock, sendgrid.message_ids[-1])
    answer = ask(app_client, token).get_json()
    assert answer["delivery"] == {"state": "delivered", "reason": None, "check_again": False}
    assert CodeDelivery.select().count() == 1  # asking sent nothing


def test_the_outbox_counts_as_delivered_and_may_still_fail(app_client, factory):
    """The outbox (development, demos) delivers at once; `flask outbox --fail` may still
    fail it, so the app asks again, as the web's code box does."""
    family_with(factory, EMAIL)
    step = sign_in(app_client, ADDRESS).get_json()
    assert step["delivery"] == {"state": "delivered", "reason": None, "check_again": True}
    deliveries.fail_newest_outbox(ADDRESS)
    answer = ask(app_client, step["pending_token"]).get_json()
    assert answer["delivery"] == {"state": "failed", "reason": "bounced", "check_again": False}


def test_a_bounce_answers_failed_with_its_reason_and_a_new_code_starts_over(
    app, app_client, factory, sendgrid, clock
):
    family_with(factory, EMAIL)
    token = sign_in(app_client, ADDRESS).get_json()["pending_token"]
    clock.advance(seconds=10)
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    answer = ask(app_client, token).get_json()
    assert answer["delivery"] == {"state": "failed", "reason": "bounced", "check_again": False}

    clock.advance(seconds=31)
    resent = app_client.post("/sign-in/resend", {"pending_token": token})
    assert resent.status_code == 200 and resent.get_json()["sent"] is True
    assert resent.get_json()["delivery"] == {"state": "sent", "reason": None, "check_again": True}


def test_a_text_message_that_could_not_reach_the_phone(app_client, factory):
    user = family_with(factory, EMAIL, SMS)
    step = sign_in(app_client, ADDRESS).get_json()
    assert step["method"] is None and step["delivery"] is None  # the picker: nothing sent
    token = step["pending_token"]
    sms = next(each["id"] for each in step["methods"] if each["kind"] == "sms")
    chosen = app_client.post("/sign-in/method", {"pending_token": token, "method_id": sms})
    assert chosen.get_json()["delivery"]["state"] == "delivered"  # the outbox
    # A newer send of this sign-in through Vonage, which reports the phone unreachable.
    sent = sms_delivery(user)
    deliveries.apply(VONAGE, [deliveries.Outcome(sent.message_id, FAILED, "unreachable")])
    answer = ask(app_client, token).get_json()
    assert answer["method"]["masked"] == "\u2022\u2022\u2022-\u2022\u2022\u2022-0123"
    assert answer["delivery"] == {"state": "failed", "reason": "unreachable", "check_again": False}
    assert PHONE.endswith(answer["method"]["masked"][-4:])


def test_a_reason_this_version_does_not_know_is_the_generic_one(app_client, factory, sendgrid):
    family_with(factory, EMAIL)
    token = sign_in(app_client, ADDRESS).get_json()["pending_token"]
    CodeDelivery.update(state=FAILED, reason="from_the_future").execute()
    answer = ask(app_client, token).get_json()
    assert answer["delivery"]["reason"] == "not_delivered"


def test_asking_stops_two_minutes_after_the_send(app_client, factory, sendgrid, clock):
    family_with(factory, EMAIL)
    token = sign_in(app_client, ADDRESS).get_json()["pending_token"]
    clock.advance(seconds=119)
    assert ask(app_client, token).get_json()["delivery"]["check_again"] is True
    clock.advance(seconds=1)
    assert ask(app_client, token).get_json()["delivery"] == {
        "state": "sent",
        "reason": None,
        "check_again": False,
    }


def test_an_earlier_sign_ins_code_offered_again_has_no_delivery_here(app_client, factory, clock):
    """Within the cooldown a new sign-in offers the code sent moments ago ("still good"):
    this sign-in recorded no send, so `delivery` is null, as the web's code box shows none."""
    family_with(factory, EMAIL)
    sign_in(app_client, ADDRESS)
    clock.advance(seconds=5)
    again = sign_in(app_client, ADDRESS).get_json()
    assert again["sent"] is True and again["delivery"] is None
    asked = ask(app_client, again["pending_token"])
    assert asked.status_code == 200 and asked.get_json()["delivery"] is None


def test_not_at_an_email_or_text_code_is_409(app_client, factory):
    from models import crypto
    from models.verification import VerificationMethod
    from services.methods import totp

    user = family_with(factory, EMAIL)
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(totp.new_secret()))
    step = sign_in(app_client, ADDRESS).get_json()
    token = step["pending_token"]
    picker = ask(app_client, token)
    assert is_problem(picker, 409) and picker.get_json()["code"] == "choose_method"

    app_id = next(each["id"] for each in step["methods"] if each["kind"] == "totp")
    chosen = app_client.post("/sign-in/method", {"pending_token": token, "method_id": app_id})
    assert chosen.status_code == 200 and chosen.get_json()["delivery"] is None
    authenticator = ask(app_client, token)
    assert is_problem(authenticator, 409)
    assert authenticator.get_json()["code"] == "no_code_sent"
    assert "authenticator app" in authenticator.get_json()["detail"]


def test_a_staff_set_up_is_409_as_on_the_other_steps(app_client, factory):
    factory.staff(email="terry@example.com")
    token = sign_in(app_client, "terry@example.com").get_json()["pending_token"]
    response = ask(app_client, token)
    assert is_problem(response, 409) and response.get_json()["code"] == "set_up_required"


def test_unknown_and_expired_pending_tokens_answer_as_the_other_steps(app_client, factory, clock):
    family_with(factory, EMAIL)
    unknown = ask(app_client, "not-a-token")
    resend_unknown = app_client.post("/sign-in/resend", {"pending_token": "not-a-token"})
    assert is_problem(unknown, 401) and unknown.get_json() == resend_unknown.get_json()
    assert unknown.get_json()["code"] == "sign_in_expired"

    token = sign_in(app_client, ADDRESS).get_json()["pending_token"]
    clock.advance(minutes=16)
    expired = ask(app_client, token)
    assert is_problem(expired, 401) and expired.get_json()["code"] == "sign_in_expired"
    # A signed-in session's token is not a pending sign-in's either.
    signed_in = app_token(factory.family(email="riley@example.com"))
    assert ask(app_client, signed_in).get_json() == resend_unknown.get_json()


@pytest.mark.parametrize(
    "body",
    [{}, {"pending_token": 1}, {"pending_token": "x", "extra": True}, {"pending_token": "x" * 201}],
    ids=["missing", "not a string", "unknown field", "too long"],
)
def test_a_body_that_does_not_fit_is_422(app_client, body):
    response = app_client.post(DELIVERY, body)
    assert is_problem(response, 422) and response.get_json()["errors"]


def test_a_body_that_is_not_json_is_415(app_client):
    response = app_client.post(DELIVERY, data="pending_token=x", content_type="text/plain")
    assert is_problem(response, 415)


def test_the_openapi_document_describes_it(app_client):
    document = app_client.get("/openapi.json").get_json()
    operation = document["paths"]["/api/v1/sign-in/delivery"]["post"]
    assert operation["security"] == []  # the pending token is in the body, as its neighbours
    assert operation["tags"] == ["Sign-in"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request["$ref"].endswith("/PendingRequest")
    answers = operation["responses"]
    assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/DeliveryStatus"
    )
    for status in ("401", "409", "422", "429"):
        assert list(answers[status]["content"]) == ["application/problem+json"]
    schemas = document["components"]["schemas"]
    delivery = schemas["Delivery"]
    assert set(delivery["required"]) == {"state", "reason", "check_again"}
    assert set(delivery["properties"]["state"]["enum"]) == set(STATES)
    reasons = next(
        each["enum"] for each in delivery["properties"]["reason"]["anyOf"] if "enum" in each
    )
    assert set(reasons) == set(deliveries.REASONS)
    assert "delivery" in schemas["SecondStep"]["required"]
