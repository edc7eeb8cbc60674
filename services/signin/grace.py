"""The staff roll-out: "Not now" on the forced set-up for a few sign-ins.

Setting: STAFF_SETUP_GRACE_SIGNINS.

With the setting at N > 0, a staff login with no method may postpone the set-up for its first
N sign-ins after 2-Step Verification became required for it; then the set-up is required as
usual. The count of sign-ins used that way lives on the login and is never given back (an
admin reset does not grant new grace).
"""

from flask import current_app

from models.people import User
from services.language import N_
from services.methods import policy

NO_GRACE_LEFT = N_(
    "Set-up can't be postponed any more: add a verification method to finish signing in."
)


def allowance() -> int:
    """How many sign-ins a staff member may postpone the set-up for (0: never)."""
    return max(0, int(current_app.config.get("STAFF_SETUP_GRACE_SIGNINS") or 0))


def used(user: User) -> int:
    """How many sign-ins `user` has postponed the set-up for, as the database has it now."""
    fresh = User.select(User.grace_signins_used).where(User.id == user.id).first()
    user.grace_signins_used = fresh.grace_signins_used if fresh is not None else 0
    return user.grace_signins_used


def remaining(user: User) -> int:
    """Sign-ins (this one included) `user` may still postpone the set-up for."""
    return max(0, allowance() - (user.grace_signins_used or 0))


def use_one(user: User) -> bool:
    """Spend one grace sign-in, if any is left (one conditional UPDATE, so two tabs can't
    both spend the last one). Returns whether one was spent."""
    if not policy.must_set_up(user):
        return False
    spent = (
        User.update(grace_signins_used=User.grace_signins_used + 1)
        .where(User.id == user.id, User.grace_signins_used < allowance())
        .execute()
    )
    used(user)
    return bool(spent)
