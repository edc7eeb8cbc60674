"""One-time codes: format, lifetime, single use, ownership, storage and sending."""

import hashlib
import re
from datetime import timedelta

import pytest

import models
from models.events import CODE_SENT, SecurityEvent
from models.outbox import OutboxMessage
from models.verification import ENROL, SIGN_IN, OneTimeCode
from services.delivery import senders
from services.methods import EMAIL_KIND, SMS_KIND, codes
from services.methods.codes import CodeResult

SIX_DIGITS = re.compile(r"\b\d{6}\b")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123456", "123456"),
        ("123 456", "123456"),
        ("123-456", "123456"),
        (" 012345 ", "012345"),
        ("000000", "000000"),
        ("12345a", None),
        ("abcdef", None),
        ("12345", None),
        ("1234567", None),
        ("١٢٣٤٥٦", None),
        ("１２３４５６", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize(raw, expected):
    assert codes.normalize(raw) == expected


@pytest.fixture
def user(factory):
    return factory.family(email="pat@example.com")


def issue(user, purpose=SIGN_IN, destination="pat@example.com", channel="email"):
    """A new code's digits, stored as a send stores it (no delivery, no cooldown): what the
    app's only caller, codes.send, does before and after the provider answers."""
    with models.db.atomic():
        _row, code = codes._create(user, purpose, channel, destination)
        codes._expire_beyond_limit(user, purpose)
    return code


def test_a_code_is_six_digits(user):
    assert re.fullmatch(r"\d{6}", issue(user))


def test_accepted_at_9_59(user, clock):
    code = issue(user)
    clock.advance(minutes=9, seconds=59)
    check = codes.verify(user, SIGN_IN, code)
    assert check.result is CodeResult.OK
    assert check.ok
    assert check.code.destination == "pat@example.com"


def test_refused_at_10_01(user, clock):
    code = issue(user)
    clock.advance(minutes=10, seconds=1)
    assert codes.verify(user, SIGN_IN, code).result is CodeResult.EXPIRED


@pytest.mark.parametrize("which", [0, 1])
def test_after_a_second_issue_either_code_works(user, clock, which):
    issued = [issue(user)]
    clock.advance(seconds=40)
    issued.append(issue(user))
    assert codes.verify(user, SIGN_IN, issued[which]).result is CodeResult.OK


def test_a_code_works_once(user):
    code = issue(user)
    assert codes.verify(user, SIGN_IN, code).result is CodeResult.OK
    # Again: refused, as a repeat of a right code rather than a guess.
    assert codes.verify(user, SIGN_IN, code).result is CodeResult.JUST_USED


def test_a_used_code_is_wrong_again_once_its_lifetime_is_over(user, clock):
    code = issue(user)
    assert codes.verify(user, SIGN_IN, code).ok
    clock.advance(minutes=10)
    assert codes.verify(user, SIGN_IN, code).result is CodeResult.WRONG


def test_a_pasted_code_with_spaces_works(user):
    code = issue(user)
    assert codes.verify(user, SIGN_IN, f" {code[:3]} {code[3:]} ").ok


@pytest.mark.parametrize("typed", ["12345a", "", "١٢٣٤٥٦"])
def test_malformed_input_is_wrong(user, typed):
    issue(user)
    assert codes.verify(user, SIGN_IN, typed).result is CodeResult.WRONG


def test_a_code_belongs_to_one_person(user, factory):
    other = factory.family(email="other@example.com")
    code = issue(user)
    assert codes.verify(other, SIGN_IN, code).result is CodeResult.WRONG
    assert codes.verify(user, SIGN_IN, code).ok


def test_a_code_belongs_to_one_purpose(user):
    code = issue(user, purpose=SIGN_IN)
    assert codes.verify(user, ENROL, code).result is CodeResult.WRONG
    assert codes.verify(user, SIGN_IN, code).ok


def test_a_code_for_one_destination_is_refused_for_another(user):
    code = issue(user, purpose=ENROL, destination="x@example.com")
    assert codes.verify(user, ENROL, code, destination="y@example.com").result is (CodeResult.WRONG)
    assert codes.verify(user, ENROL, code, destination="x@example.com").ok


def test_the_database_holds_no_plain_code(user, clock):
    issued = []
    for _ in range(3):
        issued.append(issue(user))
        clock.advance(seconds=1)
    rows = list(OneTimeCode.select().dicts())
    assert len(rows) == 3
    for row in rows:
        stored = " ".join(str(value) for value in row.values())
        for code in issued:
            assert code not in stored
            assert row["code_hash"] != hashlib.sha256(code.encode()).hexdigest()


def live_count(user, moment):
    return (
        OneTimeCode.select()
        .where(
            OneTimeCode.user == user,
            OneTimeCode.used_at.is_null(),
            OneTimeCode.expires_at > moment,
        )
        .count()
    )


def test_at_most_five_live_codes_the_sixth_expires_the_oldest(user, clock):
    issued = []
    for _ in range(6):
        issued.append(issue(user))
        clock.advance(seconds=1)
    assert live_count(user, clock()) == 5
    assert OneTimeCode.select().count() == 6  # kept for the hourly caps
    assert codes.verify(user, SIGN_IN, issued[0]).result is CodeResult.RETIRED
    assert codes.verify(user, SIGN_IN, issued[1]).ok


def test_success_ends_the_other_live_codes_of_that_purpose(user, clock):
    first = issue(user)
    clock.advance(seconds=31)
    second = issue(user)
    enrolment = issue(user, purpose=ENROL)
    assert codes.verify(user, SIGN_IN, second).ok
    assert codes.verify(user, SIGN_IN, first).result is CodeResult.RETIRED
    assert codes.verify(user, ENROL, enrolment).ok


def test_enrolment_success_ends_only_codes_to_the_same_destination(user, clock):
    to_x = issue(user, ENROL, "x@example.com")
    to_x_again = issue(user, ENROL, "x@example.com")
    to_y = issue(user, ENROL, "y@example.com")
    assert codes.verify(user, ENROL, to_x, destination="x@example.com").ok
    assert codes.verify(user, ENROL, to_x_again, destination="x@example.com").result is (
        CodeResult.RETIRED
    )
    assert codes.verify(user, ENROL, to_y, destination="y@example.com").ok


def test_discard_ends_live_codes(user, factory):
    sign_in = issue(user, SIGN_IN)
    enrolment = issue(user, ENROL)
    other = factory.family()
    others_code = issue(other)
    assert codes.discard(user, SIGN_IN) == 1
    assert codes.verify(user, SIGN_IN, sign_in).result is CodeResult.RETIRED
    assert codes.discard(user) == 1
    assert codes.verify(user, ENROL, enrolment).result is CodeResult.RETIRED
    assert codes.verify(other, SIGN_IN, others_code).ok


def test_send_by_email_goes_to_the_outbox(user):
    outcome = codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com")
    assert (outcome.ok, outcome.status, outcome.retry_at) == (True, 200, None)
    message = OutboxMessage.get()
    assert (message.channel, message.to) == ("email", "pat@example.com")
    assert message.subject == "User OTP from Online-Auth"
    code = SIX_DIGITS.search(message.body).group()
    assert code in message.html
    assert not SIX_DIGITS.search(message.subject)
    assert "It expires in 10 minutes" in message.body
    assert "If you didn't ask for it, you can ignore this email" in message.body
    assert codes.verify(user, SIGN_IN, code).ok


def test_send_by_text_message_has_an_empty_subject(user):
    outcome = codes.send(user, SIGN_IN, SMS_KIND, "+12015550123")
    assert outcome.ok
    message = OutboxMessage.get()
    assert (message.channel, message.to, message.subject) == ("sms", "+12015550123", "")
    code = SIX_DIGITS.search(message.body).group()
    assert message.body == (f"Your TwoStep verification code is {code}. It expires in 10 minutes.")
    assert codes.verify(user, SIGN_IN, code).ok


def test_a_sent_code_is_logged_masked_and_without_the_code(user):
    codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com")
    code = SIX_DIGITS.search(OutboxMessage.get().body).group()
    event = SecurityEvent.get(SecurityEvent.kind == CODE_SENT)
    assert (event.method_kind, event.detail) == ("email", "p\u2022\u2022\u2022@example.com")
    assert code not in event.detail


class FailingSender:
    def send_email(self, to, subject, text, html=""):
        raise senders.DeliveryError("the provider said no")

    def send_sms(self, to, body):
        raise senders.DeliveryError("the provider said no")


@pytest.mark.parametrize(
    ("kind", "destination"), [(EMAIL_KIND, "pat@example.com"), (SMS_KIND, "+12015550123")]
)
def test_a_delivery_failure_leaves_no_code_and_answers_502(user, monkeypatch, kind, destination):
    monkeypatch.setattr(senders, "email_sender", FailingSender)
    monkeypatch.setattr(senders, "sms_sender", FailingSender)
    outcome = codes.send(user, SIGN_IN, kind, destination)
    assert (outcome.ok, outcome.status) == (False, 502)
    assert outcome.message == "We couldn't send the code. Try again or choose another method."
    assert OneTimeCode.select().count() == 0
    assert not SecurityEvent.select().where(SecurityEvent.kind == CODE_SENT).exists()


def test_a_delivery_failure_does_not_expire_older_codes(app, user, clock, monkeypatch):
    issued = []
    for _ in range(5):
        issued.append(issue(user, destination="other@example.com"))
        clock.advance(minutes=1)
    monkeypatch.setattr(senders, "email_sender", FailingSender)
    assert codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com").status == 502
    assert codes.verify(user, SIGN_IN, issued[0]).ok


def test_a_send_within_the_cooldown_offers_the_newest_code_again(user, clock):
    sent_at = clock()
    assert codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com").ok
    clock.advance(seconds=10)
    outcome = codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com")
    assert (outcome.ok, outcome.status, outcome.sent_at) == (True, 200, sent_at)
    assert OneTimeCode.select().count() == 1
    assert codes.still_good_message("p•••@example.com", outcome.sent_at) == (
        "We sent a code to p•••@example.com 10 seconds ago. It's still good."
    )


def test_a_code_for_another_purpose_is_not_offered_again(user, clock):
    """An enrolment code does not sign anybody in: within its cooldown, 429 with when."""
    sent_at = clock()
    assert codes.send(user, ENROL, EMAIL_KIND, "pat@example.com").ok
    clock.advance(seconds=10)
    outcome = codes.send(user, SIGN_IN, EMAIL_KIND, "pat@example.com")
    assert (outcome.ok, outcome.status) == (False, 429)
    assert outcome.message == "You can ask for another code in 20 seconds."
    assert outcome.retry_at == sent_at + timedelta(seconds=30)
    assert OneTimeCode.select().count() == 1


def test_a_code_past_its_lifetime_is_expired_but_one_ended_early_is_retired(user, clock):
    """The page says "expired" only when the code's time is over; a code a later sign-in
    ended is "no longer valid", with the way on (the newest code)."""
    old = issue(user, SIGN_IN)
    newer = issue(user, SIGN_IN)
    assert codes.verify(user, SIGN_IN, newer).ok
    assert codes.verify(user, SIGN_IN, old).result is CodeResult.RETIRED
    late = issue(user, SIGN_IN)
    clock.advance(minutes=10)
    assert codes.verify(user, SIGN_IN, late).result is CodeResult.EXPIRED
