"""Creating logins, centers and memberships; the demo data."""

from models import db
from models.people import FAMILY, ROLES, STAFF, Center, Membership, User, normalize_email
from services.account import password_policy
from services.account.passwords import hash_password

DEMO_PASSWORD = "twostep-demo"
SUNSHINE = "Sunshine Early Learning"
MAPLE = "Maple Grove Preschool"

# (email, name, center, [(role, admin)]) - SPEC.md, "Demo data and automation".
DEMO_LOGINS = [
    ("admin@example.com", "Ada Admin", SUNSHINE, [(STAFF, True)]),
    ("teacher@example.com", "Terry Teacher", SUNSHINE, [(STAFF, False)]),
    ("parent@example.com", "Pat Parent", SUNSHINE, [(FAMILY, False)]),
    ("both@example.com", "Blair Both", SUNSHINE, [(STAFF, False), (FAMILY, False)]),
    ("maple-admin@example.com", "Morgan Maple", MAPLE, [(STAFF, True)]),
    ("maple-parent@example.com", "Riley Maple", MAPLE, [(FAMILY, False)]),
]


class AccountError(ValueError):
    """A login could not be created; the message says why."""


def validate_new_password(password: str, email: str) -> list[str]:
    """The reasons `password` may not be used (empty when it may)."""
    return password_policy.problems(password, email)


def create_user(
    *, email: str, name: str, center_name: str, role: str, password: str, is_admin: bool = False
) -> User:
    """Create a login with one role in one center (the center is created if new)."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254:
        raise AccountError("Enter a valid email address.")
    if not name.strip():
        raise AccountError("Enter a name.")
    if role not in ROLES:
        raise AccountError("The role must be family or staff.")
    problems = validate_new_password(password, email)
    if problems:
        raise AccountError(" ".join(problems))
    with db.atomic():
        if User.by_email(email):
            raise AccountError(f"A login with the email {email} exists already.")
        center, _ = Center.get_or_create(name=center_name.strip())
        user = User.create(email=email, name=name.strip(), password_hash=hash_password(password))
        Membership.create(user=user, center=center, role=role, is_admin=is_admin and role == STAFF)
    return user


def seed_demo() -> int:
    """Create the demo centers and logins that do not exist yet; returns how many were new."""
    created = 0
    password_hash = None
    with db.atomic():
        for email, name, center_name, roles in DEMO_LOGINS:
            center, _ = Center.get_or_create(name=center_name)
            user = User.by_email(email)
            if user is None:
                password_hash = password_hash or hash_password(DEMO_PASSWORD)
                user = User.create(email=email, name=name, password_hash=password_hash)
                created += 1
            for role, admin in roles:
                Membership.get_or_create(
                    user=user, center=center, role=role, defaults={"is_admin": admin}
                )
    return created
