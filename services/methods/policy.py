"""Who must, who may: the rules of 2-Step Verification for families and staff, in one place."""

from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _

from models.people import User
from models.request_cache import remember, remembered
from models.verification import WEBAUTHN, VerificationMethod
from services.methods import KIND_ORDER, KINDS


def needs_second_step(user: User) -> bool:
    """Whether signing in as `user` asks for a code after the password."""
    return user.two_step_enabled or user.requires_2sv


def methods_of(user: User) -> list[VerificationMethod]:
    """The saved methods of `user`, in tab order."""
    found = remembered("verification_method", user.id)
    if found is None:
        found = remember(
            "verification_method",
            user.id,
            list(VerificationMethod.select().where(VerificationMethod.user == user)),
        )
    return sorted(found, key=lambda method: (KIND_ORDER.index(method.kind), method.id))


def staff_method_kinds() -> set[str]:
    """The kinds staff may use (setting STAFF_METHODS, e.g. "totp,sms" to leave email out as
    NIST SP 800-63B suggests)."""
    setting = current_app.config["STAFF_METHODS"]
    names = setting.split(",") if isinstance(setting, str) else setting
    return {name.strip() for name in names if name.strip()}


def security_keys_available() -> bool:
    """Whether security keys can be used: production needs WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN."""
    config = current_app.config
    if config.get("PRODUCTION"):
        return bool(config.get("WEBAUTHN_RP_ID") and config.get("WEBAUTHN_ORIGIN"))
    return True


def allowed_kinds(user: User):
    """The method kinds `user` may add and sign in with, in tab order."""
    kinds = [kind for kind in KINDS if kind.kind != WEBAUTHN or security_keys_available()]
    if not user.requires_2sv:
        return kinds
    permitted = staff_method_kinds()
    return [method_kind for method_kind in kinds if method_kind.kind in permitted]


def is_allowed(user: User, kind: str) -> bool:
    """Whether `user` may use methods of `kind`."""
    return any(method_kind.kind == kind for method_kind in allowed_kinds(user))


def usable_methods(user: User) -> list[VerificationMethod]:
    """The saved methods `user` may sign in with (staff: only the kinds the policy allows)."""
    permitted = {method_kind.kind for method_kind in allowed_kinds(user)}
    return [method for method in methods_of(user) if method.kind in permitted]


def provable_methods(user: User) -> list[VerificationMethod]:
    """The saved methods of `user` that can be checked here at all, whatever STAFF_METHODS
    says: security keys only while they are available."""
    keys_work = security_keys_available()
    return [method for method in methods_of(user) if method.kind != WEBAUTHN or keys_work]


def sign_in_methods(user: User) -> list[VerificationMethod]:
    """The methods the second step offers `user`: those the policy allows; when it allows
    none of the saved ones, those that can be checked (Decisions 20: a narrower
    STAFF_METHODS never skips proving what is saved; the set-up comes after)."""
    return usable_methods(user) or provable_methods(user)


def stranded(user: User) -> bool:
    """Saved methods, none of which can be checked here: only an admin's reset (or a
    recovery code) lets the person in; never a set-up (Decisions 20)."""
    return bool(methods_of(user)) and not provable_methods(user)


def must_set_up(user: User) -> bool:
    """A login that requires 2SV (staff) but has no usable method: it must add one to sign in."""
    return user.requires_2sv and not usable_methods(user)


@dataclass(frozen=True)
class Decision:
    """A yes or no, with the reason to show when it is no."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def can_turn_on(user: User, method_count: int) -> Decision:
    """2SV can be turned on once a method exists."""
    if method_count == 0:
        return Decision(
            False, _("Add a verification method before turning on 2-Step Verification.")
        )
    return Decision(True)


def can_turn_off(user: User) -> Decision:
    """Families may turn 2SV off; staff may not."""
    if user.requires_2sv:
        return Decision(
            False, _("2-Step Verification is required for staff accounts, so it stays on.")
        )
    return Decision(True)


def can_delete_method(user: User, method_count: int) -> Decision:
    """Staff keep at least one method; families may delete their last (2SV then turns off)."""
    if user.requires_2sv and method_count <= 1:
        return Decision(
            False,
            _(
                "Staff accounts need at least one method. "
                "Add another method before deleting this one."
            ),
        )
    return Decision(True)
