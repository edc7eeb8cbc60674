"""Throttling: send cooldown, hourly caps, the pause after wrong codes."""

from datetime import timedelta

import pytest

from models.events import CODE_FAILED, VERIFICATION_PAUSED, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.verification import SIGN_IN
from services.methods import EMAIL_KIND, codes
from services.security import throttle

PAUSED_SUBJECT = "Wrong verification codes were entered for your account"


@pytest.fixture
def user(factory):
    return factory.staff(email="terry@example.com")


def send(user, destination="terry@example.com"):
    return codes.send(user, SIGN_IN, EMAIL_KIND, destination)


def test_cooldown_per_destination(user, clock):
    start = clock()
    assert throttle.send_retry_at(user, "terry@example.com") is None
    assert send(user).ok
    clock.advance(seconds=10)
    assert throttle.send_retry_at(user, "terry@example.com") == start + timedelta(seconds=30)
    refused = send(user)
    assert (refused.status, refused.retry_at) == (429, start + timedelta(seconds=30))
    # Another destination is not cooling down.
    assert throttle.send_retry_at(user, "other@example.com") is None
    clock.advance(seconds=21)
    assert throttle.send_retry_at(user, "terry@example.com") is None
    assert send(user).ok


def test_hourly_cap_per_account(user, clock):
    first = clock()
    for number in range(5):
        assert send(user, f"address{number}@example.com").ok
        clock.advance(minutes=5)
    refused = send(user, "address5@example.com")
    assert (refused.ok, refused.status) == (False, 429)
    assert refused.retry_at == first + timedelta(hours=1)
    assert refused.message == "You can ask for another code in 35 minutes."
    clock.set(first + timedelta(minutes=59, seconds=59))
    assert send(user, "address5@example.com").status == 429
    clock.set(first + timedelta(hours=1))
    assert send(user, "address5@example.com").ok


def test_hourly_cap_per_destination(factory, clock):
    people = [factory.family() for _ in range(6)]
    first = clock()
    for person in people[:5]:
        assert send(person, "shared@example.com").ok
        clock.advance(seconds=31)
    refused = send(people[5], "shared@example.com")
    assert (refused.status, refused.retry_at) == (429, first + timedelta(hours=1))
    # The same person may still send elsewhere.
    assert send(people[5], "own@example.com").ok
    clock.set(first + timedelta(hours=1))
    assert send(people[5], "shared@example.com").ok


def test_five_wrong_codes_pause_verification(user, clock):
    for _ in range(4):
        assert throttle.record_failure(user, "email") is None
    assert User.get_by_id(user.id).failed_code_count == 4
    assert throttle.paused_until(user) is None

    pause_end = throttle.record_failure(user, "email")

    assert pause_end == clock() + timedelta(minutes=15)
    assert throttle.paused_until(user) == pause_end
    saved = User.get_by_id(user.id)
    assert (saved.failed_code_count, saved.verification_paused_until) == (0, pause_end)
    email = OutboxMessage.get(OutboxMessage.subject == PAUSED_SUBJECT)
    assert email.to == "terry@example.com"
    events = SecurityEvent.select().where(SecurityEvent.user == user)
    assert events.where(SecurityEvent.kind == CODE_FAILED).count() == 5
    assert events.where(SecurityEvent.kind == VERIFICATION_PAUSED).count() == 1


def test_wrong_codes_count_across_copies_of_the_login(user):
    """Another device loads its own copy of the row; the count is the database's."""
    other_device = User.get_by_id(user.id)
    for _ in range(2):
        throttle.record_failure(user)
        throttle.record_failure(other_device)
    assert throttle.record_failure(user) is not None


def test_a_success_before_the_fifth_resets_the_count(user):
    for _ in range(4):
        throttle.record_failure(user)
    throttle.record_success(user)
    assert User.get_by_id(user.id).failed_code_count == 0
    for _ in range(4):
        assert throttle.record_failure(user) is None
    assert throttle.paused_until(user) is None
    assert not OutboxMessage.select().where(OutboxMessage.subject == PAUSED_SUBJECT).exists()


def test_the_pause_ends_after_15_minutes(user, clock):
    for _ in range(5):
        throttle.record_failure(user)
    clock.advance(minutes=14, seconds=59)
    assert throttle.paused_until(user) is not None
    assert throttle.in_words(throttle.paused_until(user)) == "in 1 second"
    clock.advance(seconds=1)
    assert throttle.paused_until(user) is None


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(minutes=15), "in 15 minutes"),
        (timedelta(seconds=30), "in 30 seconds"),
        (timedelta(seconds=1), "in 1 second"),
        (timedelta(seconds=59), "in 59 seconds"),
        (timedelta(seconds=60), "in 1 minute"),
        (timedelta(seconds=61), "in 2 minutes"),
        (timedelta(microseconds=500), "in 1 second"),
        (timedelta(0), "now"),
        (timedelta(seconds=-5), "now"),
    ],
)
def test_in_words(app, clock, delta, words):
    with app.app_context():
        assert throttle.in_words(clock() + delta) == words
