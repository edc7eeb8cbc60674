"""An admin's reset of a person's 2-Step Verification: from the People pages end to end, the
service itself, and `flask reset-2sv`, which does exactly what the button does."""

from datetime import timedelta

import pytest

from models.clock import now
from models.events import RESET, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.sessions import ACTIVE, UserSession
from models.verification import ENROL, SIGN_IN, OneTimeCode, PendingSetup, VerificationMethod
from services.admin import reset
from tests.test_admin import DEMO, add_method, person_id, seed, sign_in

RESET_SUBJECT = "Your 2-Step Verification was reset"


def reset_emails(to):
    return list(
        OutboxMessage.select().where(OutboxMessage.to == to, OutboxMessage.subject == RESET_SUBJECT)
    )


def test_reset_end_to_end(browser, new_browser, db):
    seed()
    add_method("teacher@example.com", "email")
    teacher = User.by_email("teacher@example.com")
    # The teacher is signed in on a device.
    teacher_browser = sign_in(new_browser(), "teacher@example.com")
    assert teacher_browser.get("/profile").status_code == 200
    assert UserSession.select().where(UserSession.user == teacher).count() == 1

    admin = sign_in(browser, "admin@example.com")
    page = admin.get(f"/admin/people/{teacher.id}")
    assert "Email t•••@example.com" not in page.get_data(as_text=True)  # not before confirming
    confirm = admin.get(f"/admin/people/{teacher.id}/reset")
    assert "Reset 2-Step Verification for Terry Teacher?" in confirm.get_data(as_text=True)
    response = admin.post(f"/admin/people/{teacher.id}/reset")
    assert response.status_code == 303

    # The teacher's open session is gone: the old browser is sent to sign in.
    assert UserSession.select().where(UserSession.user == teacher).count() == 0
    gone = teacher_browser.get("/profile")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]

    # Nothing of the old set-up is left; 2SV is off but still required.
    teacher = User.by_email("teacher@example.com")
    assert VerificationMethod.select().where(VerificationMethod.user == teacher).count() == 0
    assert teacher.two_step_enabled is False
    assert teacher.requires_2sv is True

    # The event names the admin as the actor; the teacher was emailed.
    event = SecurityEvent.get(SecurityEvent.kind == RESET)
    assert event.user_id == teacher.id
    assert event.actor_id == person_id("admin@example.com")
    assert "Email t•••@example.com" in event.detail
    (email,) = reset_emails("teacher@example.com")
    assert "2-Step Verification reset by an admin" in email.body
    assert "Ada Admin" in email.body

    # The next sign-in is not a sign-in yet: the forced set-up comes first.
    again = new_browser()
    response = again.login("teacher@example.com", DEMO)
    assert response.status_code == 303
    assert response.headers["Location"] != "/"
    (row,) = UserSession.select().where(UserSession.user == teacher)
    assert row.state != ACTIVE
    assert again.get("/profile").status_code in (302, 303)

    # The admin sees the new state.
    body = admin.get(f"/admin/people/{teacher.id}").get_data(as_text=True)
    assert "Required — not set up" in body and "was reset" in body


def test_reset_of_a_family_turns_2sv_off(browser, db):
    seed()
    add_method("parent@example.com", "totp")
    add_method("parent@example.com", "sms")
    sign_in(browser, "admin@example.com")
    parent = person_id("parent@example.com")
    assert browser.post(f"/admin/people/{parent}/reset").status_code == 303
    user = User.get_by_id(parent)
    assert not user.two_step_enabled and not user.requires_2sv
    assert "Off" in browser.get(f"/admin/people/{parent}").get_data(as_text=True)
    assert len(reset_emails("parent@example.com")) == 1


def test_service_removes_codes_set_ups_and_the_pause(app, db, factory, clock):
    admin = factory.admin(email="ada@example.com")
    person = factory.staff(email="sam@example.com", two_step=True)
    bystander = factory.staff(email="bea@example.com")
    VerificationMethod.create(user=person, kind="email", destination=person.email)
    VerificationMethod.create(user=person, kind="totp", secret="encrypted")
    VerificationMethod.create(user=bystander, kind="email", destination=bystander.email)
    PendingSetup.create(user=person, kind="sms", destination="+12015550123")
    moment = now()
    later = moment + timedelta(minutes=10)
    live = OneTimeCode.create(
        user=person,
        purpose=SIGN_IN,
        channel="email",
        destination=person.email,
        code_hash="a" * 64,
        expires_at=later,
    )
    used = OneTimeCode.create(
        user=person,
        purpose=ENROL,
        channel="email",
        destination=person.email,
        code_hash="b" * 64,
        expires_at=later,
        used_at=moment,
    )
    others = OneTimeCode.create(
        user=bystander,
        purpose=SIGN_IN,
        channel="email",
        destination=bystander.email,
        code_hash="c" * 64,
        expires_at=later,
    )
    User.update(failed_code_count=3, verification_paused_until=later).where(
        User.id == person.id
    ).execute()
    UserSession.create(token_hash="1" * 64, user=person)
    UserSession.create(token_hash="2" * 64, user=person, state="pending")
    UserSession.create(token_hash="3" * 64, user=bystander)

    with app.test_request_context():
        outcome = reset.reset_two_step(person, admin)

    assert outcome == reset.ResetOutcome(methods_removed=2, sessions_ended=2)
    assert VerificationMethod.select().where(VerificationMethod.user == person).count() == 0
    assert PendingSetup.select().count() == 0
    assert OneTimeCode.get_by_id(live.id).expires_at <= now()
    assert OneTimeCode.get_by_id(used.id).expires_at == later  # used codes are left alone
    assert OneTimeCode.get_by_id(others.id).expires_at == later
    fresh = User.get_by_id(person.id)
    assert (fresh.two_step_enabled, fresh.failed_code_count, fresh.verification_paused_until) == (
        False,
        0,
        None,
    )
    assert UserSession.select().where(UserSession.user == person).count() == 0
    # Someone else's methods and sessions are untouched.
    assert VerificationMethod.select().where(VerificationMethod.user == bystander).count() == 1
    assert UserSession.select().where(UserSession.user == bystander).count() == 1
    event = SecurityEvent.get(SecurityEvent.kind == RESET)
    assert event.actor_id == admin.id
    assert "secret" not in event.detail and "encrypted" not in event.detail


def test_service_refuses_the_admin_themselves_and_other_centers(db, factory):
    admin = factory.admin(email="ada@example.com")
    stranger = factory.family(email="sam@example.com", center=factory.center("Elsewhere"))
    VerificationMethod.create(user=stranger, kind="email", destination=stranger.email)
    with pytest.raises(reset.ResetNotAllowed, match="own 2-Step Verification"):
        reset.reset_two_step(admin, admin)
    with pytest.raises(reset.ResetNotAllowed, match="does not belong"):
        reset.reset_two_step(stranger, admin)
    assert VerificationMethod.select().count() == 1
    assert SecurityEvent.select().count() == 0


def test_an_admin_of_any_of_the_persons_centers_may_reset(db, factory):
    from models.people import Membership

    maple = factory.center("Maple Grove Preschool")
    person = factory.family(email="sam@example.com")  # Sunshine family
    Membership.create(user=person, center=maple, role="family")
    maple_admin = factory.admin(email="morgan@example.com", center=maple)
    VerificationMethod.create(user=person, kind="email", destination=person.email)
    assert reset.can_reset(person, maple_admin)
    reset.reset_two_step(person, maple_admin)
    assert VerificationMethod.select().count() == 0


# --- flask reset-2sv ------------------------------------------------------------------------


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["reset-2sv", *args], input=input)


def test_command_does_what_the_button_does(app, db, new_browser):
    seed()
    add_method("teacher@example.com", "email")
    teacher_browser = sign_in(new_browser(), "teacher@example.com")
    result = run(app, "teacher@example.com", "--by", "admin@example.com", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 method(s) removed, 1 session(s) ended" in result.output
    teacher = User.by_email("teacher@example.com")
    assert VerificationMethod.select().count() == 0
    assert not teacher.two_step_enabled and teacher.requires_2sv
    assert teacher_browser.get("/profile").status_code == 302
    event = SecurityEvent.get(SecurityEvent.kind == RESET)
    assert event.actor_id == person_id("admin@example.com")
    assert len(reset_emails("teacher@example.com")) == 1


def test_command_asks_before_resetting(app, db):
    seed()
    add_method("teacher@example.com")
    declined = run(app, "Teacher@Example.com", "--by", "admin@example.com", input="n\n")
    assert declined.exit_code != 0
    assert "Terry Teacher" in declined.output
    assert VerificationMethod.select().count() == 1
    accepted = run(app, "Teacher@Example.com", "--by", "admin@example.com", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert VerificationMethod.select().count() == 0


@pytest.mark.parametrize(
    ("email", "admin", "message"),
    [
        ("nobody@example.com", "admin@example.com", "No login has the email"),
        ("teacher@example.com", "parent@example.com", "is not an admin"),
        ("teacher@example.com", "nobody@example.com", "is not an admin"),
        ("teacher@example.com", "maple-admin@example.com", "does not belong"),
        ("admin@example.com", "admin@example.com", "own 2-Step Verification"),
    ],
)
def test_command_refusals_change_nothing(app, db, email, admin, message):
    seed()
    add_method("teacher@example.com")
    add_method("admin@example.com", "totp")
    result = run(app, email, "--by", admin, "--yes")
    assert result.exit_code != 0
    assert message in result.output
    assert VerificationMethod.select().count() == 2
    assert SecurityEvent.select().count() == 0


def test_command_needs_the_admin(app, db):
    result = run(app, "teacher@example.com")
    assert result.exit_code != 0 and "--by" in result.output
