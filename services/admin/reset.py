"""An admin's reset of a person's 2-Step Verification (SPEC, "Admin reset").

The People page's **Reset** button and `flask reset-2sv` both call `reset_two_step`, so the
two do exactly the same thing.
"""

from dataclasses import dataclass

from flask_babel import gettext

from models import db
from models.clock import now
from models.events import RESET
from models.people import User
from models.verification import PendingSetup, VerificationMethod
from services.account import sessions
from services.admin import directory
from services.language import N_
from services.methods import codes, kind_of, policy, recovery_codes, trusted_devices
from services.methods.policy import Decision
from services.security import security_log

OWN_ACCOUNT = N_(
    "Admins can't reset their own 2-Step Verification from the admin pages. "
    "Use your own 2-Step Verification window instead."
)


class ResetNotAllowed(Exception):
    """The admin may not reset this person; the message says why."""


@dataclass(frozen=True)
class ResetOutcome:
    """What a reset removed, for the page and the command line to report."""

    methods_removed: int
    sessions_ended: int


def can_reset(person: User, admin: User) -> Decision:
    """Whether `admin` may reset `person`: someone else, in one of the admin's centers."""
    if person.id == admin.id:
        return Decision(False, gettext(OWN_ACCOUNT))
    if not directory.in_scope(admin, person):
        return Decision(False, f"{person.email} does not belong to any of {admin.email}'s centers.")
    return Decision(True)


def reset_two_step(person: User, admin: User) -> ResetOutcome:
    """Remove every method, live code and pending set-up of `person`, turn 2SV off, end all of
    their sessions, log RESET with `admin` as the actor and email the person.

    A staff member then meets the forced set-up at the next sign-in (2SV stays required).
    The wrong-code count and any pause are cleared too, so the person can start again at once.
    Raises ResetNotAllowed when `can_reset` says no.
    """
    decision = can_reset(person, admin)
    if not decision:
        raise ResetNotAllowed(decision.reason)
    with db.atomic():
        removed = [kind_of(method).describe(method) for method in policy.methods_of(person)]
        VerificationMethod.delete().where(VerificationMethod.user == person).execute()
        PendingSetup.delete().where(PendingSetup.user == person).execute()
        codes.discard(person)  # expired, not deleted: the rows still count for the caps
        # Sends from before the reset stop counting towards the limits (Decisions 19).
        User.update(
            two_step_enabled=False,
            failed_code_count=0,
            verification_paused_until=None,
            sends_counted_since=now(),
        ).where(User.id == person.id).execute()
        person.two_step_enabled = False
        person.failed_code_count = 0
        person.verification_paused_until = None
        ended = sessions.end_all(person)
        recovery_codes.void(person)
        trusted_devices.revoke_all(person, "2-Step Verification was reset by an admin")
        detail = "Removed: " + ", ".join(removed) if removed else "No methods were saved."
        security_log.record(RESET, person, actor=admin, detail=detail)
    return ResetOutcome(methods_removed=len(removed), sessions_ended=ended)
