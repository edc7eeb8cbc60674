"""Centers, logins and the roles a login holds in each center."""

from peewee import SQL, BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField

from models import BaseModel
from models.clock import now
from models.request_cache import ForgetOnWrite, remember, remembered

FAMILY = "family"
STAFF = "staff"
ROLES = (FAMILY, STAFF)


class Center(BaseModel):
    """A childcare center; people belong to centers through memberships."""

    name = CharField(max_length=200, unique=True)
    created_at = DateTimeField(default=now)


class User(BaseModel):
    """One login, identified by its email address (stored lower-cased)."""

    email = CharField(max_length=254, unique=True)
    name = CharField(max_length=200)
    password_hash = CharField(max_length=255)
    two_step_enabled = BooleanField(default=False)
    failed_code_count = IntegerField(default=0)
    verification_paused_until = DateTimeField(null=True)
    # Sends before this moment (an admin's reset) no longer count towards the send limits.
    sends_counted_since = DateTimeField(null=True)
    last_sign_in_at = DateTimeField(null=True)
    # Staff roll-out: sign-ins completed with "Not now" on the forced set-up (never reset).
    # The default is in the database too (migration 0008): code from before the column keeps
    # creating logins during a rolling upgrade.
    grace_signins_used = IntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    # The language chosen on the profile ("" until chosen: the request's language is used).
    language = CharField(max_length=10, default="", constraints=[SQL("DEFAULT ''")])
    created_at = DateTimeField(default=now)

    # Flask-Login's interface.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @classmethod
    def by_email(cls, email: str):
        """The login with this email address, compared case-insensitively, or None."""
        return cls.get_or_none(cls.email == normalize_email(email))

    def memberships_with_centers(self):
        """This login's memberships, each with its center, ordered by center name."""
        return list(
            Membership.select(Membership, Center)
            .join(Center)
            .where(Membership.user == self)
            .order_by(Center.name, Membership.role)
        )

    def _roles(self) -> list[tuple[int, str, bool]]:
        """(center id, role, admin flag) of each membership, read once per request."""
        roles = remembered("membership", self.id)
        if roles is None:
            roles = remember(
                "membership",
                self.id,
                list(
                    Membership.select(Membership.center, Membership.role, Membership.is_admin)
                    .where(Membership.user == self)
                    .tuples()
                ),
            )
        return roles

    @property
    def is_staff(self) -> bool:
        flags = remembered("membership", ("flags", self.id))  # read with the session
        if flags is not None:
            return flags[0]
        return any(role == STAFF for _, role, _ in self._roles())

    @property
    def requires_2sv(self) -> bool:
        """Staff in any center must use 2-Step Verification, whatever role they sign in as."""
        return self.is_staff

    def admin_center_ids(self) -> list[int]:
        """The centers where this login is staff with the admin flag (SPEC Decisions 13)."""
        return [center for center, role, admin in self._roles() if role == STAFF and admin]

    @property
    def is_admin(self) -> bool:
        flags = remembered("membership", ("flags", self.id))  # read with the session
        if flags is not None:
            return flags[1]
        return bool(self.admin_center_ids())


class Membership(ForgetOnWrite, BaseModel):
    """A role (family or staff, staff optionally admin) that a login holds in a center."""

    user = ForeignKeyField(User, backref="memberships", on_delete="CASCADE")
    center = ForeignKeyField(Center, backref="memberships", on_delete="CASCADE")
    role = CharField(max_length=10, choices=[(r, r) for r in ROLES])
    is_admin = BooleanField(default=False)

    class Meta:
        indexes = ((("user", "center", "role"), True),)


def normalize_email(email: str) -> str:
    """The stored form of an email address: trimmed and lower-cased."""
    return (email or "").strip().lower()
