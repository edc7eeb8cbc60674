"""Throttling: send cooldown, hourly caps, the pause after wrong codes."""

from datetime import timedelta

import pytest

from models.events import CODE_FAILED, VERIFICATION_LOCKED, VERIFICATION_PAUSED, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.verification import ENROL, SIGN_IN
from services.methods import EMAIL_KIND, codes
from services.security import throttle

PAUSED_SUBJECT = "Wrong verification codes were entered for your account"
LOCKED_SUBJECT = "Verification codes no longer work for your account"


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
    # Within the cooldown the newest code is offered again: no new one is sent.
    again = send(user)
    assert (again.ok, again.sent_at) == (True, start)
    assert OutboxMessage.select().count() == 1
    # Another destination is not cooling down.
    assert throttle.send_retry_at(user, "other@example.com") is None
    clock.advance(seconds=21)
    assert throttle.send_retry_at(user, "terry@example.com") is None
    fresh = send(user)
    assert (fresh.ok, fresh.sent_at) == (True, None)
    assert OutboxMessage.select().count() == 2


def test_cooldown_of_another_login_to_a_shared_address_is_refused(factory, clock):
    """Nothing of this person's to offer again: the cooldown answers 429 with when."""
    pat, sam = factory.family(), factory.family()
    assert send(pat, "shared@example.com").ok
    clock.advance(seconds=10)
    refused = send(sam, "shared@example.com")
    assert (refused.status, refused.message) == (429, "You can ask for another code in 20 seconds.")


def test_hourly_cap_per_account_is_ten(user, clock):
    first = clock()
    for number in range(10):
        assert send(user, f"address{number}@example.com").ok
        clock.advance(minutes=2)
    refused = send(user, "address10@example.com")
    assert (refused.ok, refused.status) == (False, 429)
    assert refused.retry_at == first + timedelta(hours=1)
    assert refused.message == (
        "That's the most codes we send in an hour. You can ask for another code in 40 minutes. "
        "To sign in now, use another method or a recovery code, or ask your center's admin for "
        "help."
    )
    clock.set(first + timedelta(minutes=59, seconds=59))
    assert send(user, "address10@example.com").status == 429
    clock.set(first + timedelta(hours=1))
    assert send(user, "address10@example.com").ok


def test_hourly_cap_per_destination_is_five(user, clock):
    first = clock()
    for _ in range(5):
        assert send(user).ok
        clock.advance(seconds=31)
    refused = send(user)
    assert (refused.status, refused.retry_at) == (429, first + timedelta(hours=1))
    assert "ask your center's admin" in refused.message
    assert send(user, "elsewhere@example.com").ok  # the account cap (10) is not reached


def test_the_caps_are_two_settings(app, user, clock):
    app.config.update(CODE_SENDS_PER_HOUR_PER_ACCOUNT=2, CODE_SENDS_PER_HOUR_PER_DESTINATION=1)
    assert send(user, "a@example.com").ok
    clock.advance(seconds=31)
    assert send(user, "a@example.com").status == 429  # per destination: 1
    assert send(user, "b@example.com").ok
    assert send(user, "c@example.com").status == 429  # per account: 2


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


def test_sends_before_an_admin_reset_do_not_count_after_it(factory, clock):
    from services.admin import reset

    admin = factory.admin()
    parent = factory.family(email="pat@example.com")  # the same center
    for _ in range(5):
        assert send(parent, "pat@example.com").ok
        clock.advance(seconds=31)
    assert send(parent, "pat@example.com").status == 429
    clock.advance(minutes=5)
    reset.reset_two_step(User.get_by_id(parent.id), admin)
    clock.advance(seconds=1)
    after = User.get_by_id(parent.id)
    assert throttle.send_retry_at(after, "pat@example.com") is None
    outcome = codes.send(after, ENROL, EMAIL_KIND, "pat@example.com")
    assert (outcome.ok, outcome.sent_at) == (True, None)


def fail(user, kind="email"):
    """One wrong code, as the views do it: an attempt reserved, then counted."""
    reservation = throttle.reserve(user, kind)
    if reservation.taken:
        throttle.record_failure(user, reservation, kind)
    return reservation


def test_five_wrong_codes_pause_verification(user, clock):
    for _ in range(4):
        assert fail(user).pause_end is None
    assert User.get_by_id(user.id).failed_code_count == 4
    assert throttle.paused_until(user) is None

    fifth = fail(user)

    pause_end = clock() + timedelta(minutes=15)
    assert (fifth.taken, fifth.pause_end) == (True, pause_end)
    assert throttle.paused_until(user) == pause_end
    saved = User.get_by_id(user.id)
    assert (saved.failed_code_count, saved.verification_paused_until) == (5, pause_end)
    email = OutboxMessage.get(OutboxMessage.subject == PAUSED_SUBJECT)
    assert email.to == "terry@example.com"
    events = SecurityEvent.select().where(SecurityEvent.user == user)
    assert events.where(SecurityEvent.kind == CODE_FAILED).count() == 5
    assert events.where(SecurityEvent.kind == VERIFICATION_PAUSED).count() == 1


def test_no_attempt_is_taken_during_a_pause(user, clock):
    for _ in range(5):
        fail(user)
    refused = throttle.reserve(user, "email")
    assert (refused.taken, refused.pause_end, refused.locked) == (
        False,
        clock() + timedelta(minutes=15),
        False,
    )
    assert User.get_by_id(user.id).failed_code_count == 5  # nothing was taken


def test_wrong_codes_count_across_copies_of_the_login(user):
    """Another device loads its own copy of the row; the count is the database's."""
    other_device = User.get_by_id(user.id)
    for _ in range(2):
        fail(user)
        fail(other_device)
    assert fail(user).pause_end is not None


def test_a_success_before_the_fifth_resets_the_count(user):
    for _ in range(4):
        fail(user)
    throttle.record_success(user)
    assert User.get_by_id(user.id).failed_code_count == 0
    for _ in range(4):
        assert fail(user).pause_end is None
    assert throttle.paused_until(user) is None
    assert not OutboxMessage.select().where(OutboxMessage.subject == PAUSED_SUBJECT).exists()


def test_a_right_fifth_code_lifts_the_pause_its_attempt_set(user):
    for _ in range(4):
        fail(user)
    fifth = throttle.reserve(user, "email")
    assert throttle.paused_until(user) == fifth.pause_end  # parallel requests find it
    throttle.record_success(user)
    assert throttle.paused_until(user) is None
    assert User.get_by_id(user.id).failed_code_count == 0


def test_an_attempt_given_back_is_not_counted(user):
    for _ in range(4):
        fail(user)
    fifth = throttle.reserve(user, "email")
    throttle.give_back(user, fifth)
    saved = User.get_by_id(user.id)
    assert (saved.failed_code_count, saved.verification_paused_until) == (4, None)


def test_the_pause_ends_after_15_minutes(user, clock):
    for _ in range(5):
        fail(user)
    clock.advance(minutes=14, seconds=59)
    assert throttle.paused_until(user) is not None
    assert throttle.in_words(throttle.paused_until(user)) == "in 1 second"
    clock.advance(seconds=1)
    assert throttle.paused_until(user) is None


def test_each_pause_is_twice_the_one_before_up_to_a_day(user, clock):
    lengths = []
    for _ in range(10):
        for _ in range(4):
            assert fail(user).pause_end is None
        started = clock()
        pause_end = fail(user).pause_end
        lengths.append(int((pause_end - started).total_seconds() // 60))
        clock.set(pause_end)
    assert lengths == [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]
    assert User.get_by_id(user.id).failed_code_count == 50  # a pause never resets the count


def test_the_hundredth_wrong_code_in_a_row_locks_codes(user, clock):
    for _ in range(99):
        reservation = fail(user)
        assert reservation.taken and not reservation.locked
        if reservation.pause_end is not None:
            clock.set(reservation.pause_end)
    hundredth = fail(user)
    assert (hundredth.taken, hundredth.locked, hundredth.pause_end) == (True, True, None)
    assert throttle.is_locked(User.get_by_id(user.id))
    # Codes stop working, pause or not; recovery codes and security keys still may be tried.
    clock.advance(days=30)
    refused = throttle.reserve(user, "totp")
    assert (refused.taken, refused.locked) == (False, True)
    assert throttle.reserve(user, "recovery").taken
    email = OutboxMessage.get(OutboxMessage.subject == LOCKED_SUBJECT)
    assert email.to == "terry@example.com"
    assert "recovery codes" in email.body and "administrator" in email.body
    events = SecurityEvent.select().where(SecurityEvent.user == user)
    assert events.where(SecurityEvent.kind == VERIFICATION_LOCKED).count() == 1
    assert events.where(SecurityEvent.kind == VERIFICATION_PAUSED).count() == 19
    throttle.record_success(user)  # a recovery code or a key
    assert not throttle.is_locked(User.get_by_id(user.id))
    assert throttle.reserve(user, "totp").taken


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


@pytest.mark.parametrize(
    "app_config",
    [
        {"MAX_FAILED_CODES": 2, "LOCK_AFTER_FAILED_CODES": 7, "VERIFICATION_PAUSE_MINUTES": 10},
        {"MAX_FAILED_CODES": 3, "LOCK_AFTER_FAILED_CODES": 10, "VERIFICATION_PAUSE_MINUTES": 15},
    ],
)
def test_each_pause_schedule_gets_its_own_reservation_statement(app, user, clock, app_config):
    """The reservation's UPDATE is written once per pause schedule: apps with other settings
    (here one after the other, in one process) pause after their own counts, for their own
    lengths, escalating, and lock at their own threshold."""
    per, lock = app_config["MAX_FAILED_CODES"], app_config["LOCK_AFTER_FAILED_CODES"]
    with app.app_context():
        expected_lengths = [throttle.pause_length(number) for number in range(1, lock // per + 1)]
    pauses = []
    for attempt in range(1, lock + 1):
        reservation = fail(user)
        assert reservation.taken, attempt
        if attempt % per == 0 and attempt != lock:
            assert reservation.pause_end == clock() + expected_lengths[attempt // per - 1]
            pauses.append(reservation.pause_end - clock())
            clock.set(reservation.pause_end)  # the pause ends
        else:
            assert reservation.pause_end is None, attempt
    assert pauses == expected_lengths[: len(pauses)] and len(pauses) == (lock - 1) // per
    assert pauses == sorted(pauses)
    refused = throttle.reserve(user, "email")
    assert (refused.taken, refused.locked) == (False, True)
