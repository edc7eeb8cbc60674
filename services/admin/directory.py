"""What an admin may see: the people of the admin's own centers, their roles and 2SV state,
the adoption counts and the security log of those people (SPEC Decisions 12 and 13).

Every admin page and the `reset-2sv` command ask this module who is in scope, so the rule
"an admin acts only on people who belong to one of the admin's centers" lives here once.
Each listing is a fixed number of queries whatever its length: method counts come from one
GROUP BY subquery, memberships from one query per page.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from math import ceil

from flask_babel import gettext
from peewee import JOIN, fn

from models.events import EVENT_LABELS, SecurityEvent
from models.people import FAMILY, STAFF, Center, Membership, User
from models.verification import VerificationMethod
from services.language import N_
from services.security import throttle
from services.signin import grace

ALL = "all"
STAFF_TAB = "staff"
FAMILIES_TAB = "families"
# The labels in English (N_): the People page translates them as it shows them.
TABS = ((ALL, N_("All")), (STAFF_TAB, N_("Staff")), (FAMILIES_TAB, N_("Families")))
TAB_ROLES = {ALL: None, STAFF_TAB: STAFF, FAMILIES_TAB: FAMILY}

ON = "on"
OFF = "off"
REQUIRED = "required"
LOCKED = "locked"  # on, but codes stopped working after too many wrong ones (Decisions 18)
STATE_LABELS = {
    ON: N_("On"),
    OFF: N_("Off"),
    REQUIRED: N_("Required \u2014 not set up"),
    LOCKED: N_("Locked"),
}

# Ids above this are not ids at all (PostgreSQL's integer); they answer "not found".
MAX_ID = 2**31 - 1


def two_step_state(*, two_step_enabled: bool, is_staff: bool, method_count: int) -> str:
    """ON, OFF or REQUIRED. Staff must use 2SV: with a method it is on, without one they are
    "required - not set up". Families choose: on when they turned it on."""
    if is_staff:
        return ON if method_count else REQUIRED
    return ON if two_step_enabled else OFF


@dataclass
class Person:
    """A login as an admin sees it: its roles in the admin's centers and its 2SV state."""

    user: User
    method_count: int
    is_staff: bool  # staff in any center, so 2SV is required (SPEC, People)
    memberships: list[Membership] = field(default_factory=list)

    @property
    def state(self) -> str:
        state = two_step_state(
            two_step_enabled=self.user.two_step_enabled,
            is_staff=self.is_staff,
            method_count=self.method_count,
        )
        if state == ON and throttle.is_locked(self.user):
            return LOCKED
        return state

    @property
    def state_label(self) -> str:
        return gettext(STATE_LABELS[self.state])

    @property
    def grace_remaining(self) -> int:
        """Sign-ins a staff member not set up yet may still choose "Not now" for."""
        return grace.remaining(self.user) if self.state == REQUIRED else 0

    @property
    def roles(self) -> list[str]:
        """The role names across the admin's centers, each once, staff first."""
        found = {m.role for m in self.memberships}
        roles = ((STAFF, N_("Staff")), (FAMILY, N_("Family")))
        return [gettext(label) for role, label in roles if role in found]

    @property
    def centers(self) -> list[str]:
        """The names of the admin's centers this person belongs to."""
        return sorted({m.center.name for m in self.memberships})


@dataclass
class Page:
    """One page of a listing."""

    items: list
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


@dataclass
class CenterAdoption:
    """How far 2SV has spread in one center, and who has not got there yet."""

    center: Center
    families: list[Person] = field(default_factory=list)
    staff: list[Person] = field(default_factory=list)

    @property
    def families_on(self) -> int:
        return sum(1 for person in self.families if person.state in (ON, LOCKED))

    @property
    def staff_set_up(self) -> int:
        return sum(1 for person in self.staff if person.state in (ON, LOCKED))

    @property
    def families_off(self) -> list[Person]:
        return [person for person in self.families if person.state not in (ON, LOCKED)]

    @property
    def staff_not_set_up(self) -> list[Person]:
        return [person for person in self.staff if person.state not in (ON, LOCKED)]


# --- Scope ----------------------------------------------------------------------------------


def admin_centers(admin: User) -> list[Center]:
    """The centers `admin` administers, by name."""
    return list(
        Center.select().where(Center.id.in_(admin.admin_center_ids())).order_by(Center.name)
    )


def _members_of(center_ids: list[int], role: str | None = None):
    """A subquery: the ids of the logins with a membership (of `role`) in `center_ids`."""
    query = Membership.select(Membership.user).where(Membership.center.in_(center_ids))
    if role is not None:
        query = query.where(Membership.role == role)
    return query


def in_scope(admin: User, person: User) -> bool:
    """Whether `person` belongs to one of the centers `admin` administers."""
    center_ids = admin.admin_center_ids()
    if not center_ids:
        return False
    return (
        Membership.select()
        .where(Membership.user == person, Membership.center.in_(center_ids))
        .exists()
    )


def find_person(admin: User, user_id) -> Person | None:
    """The person with this id if `admin` may see them, else None - whether the login does
    not exist or belongs to other centers, the answer is the same."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    if not 0 < user_id <= MAX_ID:
        return None
    center_ids = admin.admin_center_ids()
    if not center_ids:
        return None
    people = _people_query(center_ids).where(User.id == user_id)
    found = _with_memberships(list(people), center_ids)
    return found[0] if found else None


# --- The directory --------------------------------------------------------------------------


def _method_counts():
    """A subquery: (user_id, n) - how many methods each login has saved."""
    return (
        VerificationMethod.select(
            VerificationMethod.user.alias("user_id"),
            fn.COUNT(VerificationMethod.id).alias("n"),
        )
        .group_by(VerificationMethod.user)
        .alias("method_counts")
    )


def _staff_logins():
    """A subquery: the ids of the logins that are staff in any center."""
    return (
        Membership.select(Membership.user.alias("user_id"))
        .where(Membership.role == STAFF)
        .distinct()
        .alias("staff_logins")
    )


def _people_query(center_ids: list[int], role: str | None = None):
    """Logins of `center_ids` (with `role` there), each with its method count and whether it
    is staff anywhere, ordered by name."""
    counts = _method_counts()
    staff = _staff_logins()
    return (
        User.select(
            User,
            fn.COALESCE(counts.c.n, 0).alias("method_count"),
            staff.c.user_id.is_null(False).alias("staff_login"),
        )
        .join(counts, JOIN.LEFT_OUTER, on=(counts.c.user_id == User.id))
        .switch(User)
        .join(staff, JOIN.LEFT_OUTER, on=(staff.c.user_id == User.id))
        .where(User.id.in_(_members_of(center_ids, role)))
        .order_by(fn.LOWER(User.name), User.id)
    )


def _with_memberships(users: list[User], center_ids: list[int]) -> list[Person]:
    """Wrap `users` (rows of `_people_query`) as people, with their memberships in
    `center_ids` fetched in one query."""
    if not users:
        return []
    by_user = defaultdict(list)
    memberships = (
        Membership.select(Membership, Center)
        .join(Center)
        .where(
            Membership.user.in_([user.id for user in users]),
            Membership.center.in_(center_ids),
        )
        .order_by(Center.name, Membership.role)
    )
    for membership in memberships:
        by_user[membership.user_id].append(membership)
    return [
        Person(
            user=user,
            method_count=int(user.method_count or 0),
            is_staff=bool(user.staff_login),
            memberships=by_user[user.id],
        )
        for user in users
    ]


def parse_page(raw) -> int:
    """The page number asked for; anything that is not a positive number means page 1."""
    try:
        number = int(raw)
    except (TypeError, ValueError):
        return 1
    return min(max(number, 1), 100_000)


def _paginate(query, number: int, size: int) -> tuple[list, int, int]:
    """(rows of page `number`, total, the page number actually shown - the last page when
    `number` is past the end)."""
    total = query.count()
    last = max(1, ceil(total / size))
    number = min(number, last)
    return list(query.paginate(number, size)), total, number


def people(admin: User, *, tab: str = ALL, search: str = "", page: int = 1, size: int = 20) -> Page:
    """A page of the people of `admin`'s centers: everyone, staff or families, whose name or
    email contains `search` (case-insensitive)."""
    center_ids = admin.admin_center_ids()
    if not center_ids:
        return Page([], 1, size, 0)
    query = _people_query(center_ids, TAB_ROLES.get(tab))
    search = search.strip()
    if search:
        query = query.where(User.name.contains(search) | User.email.contains(search.lower()))
    users, total, number = _paginate(query, page, size)
    return Page(_with_memberships(users, center_ids), number, size, total)


def people_choices(admin: User) -> list[User]:
    """Everyone in `admin`'s centers (id, name, email), for the activity filter."""
    center_ids = admin.admin_center_ids()
    if not center_ids:
        return []
    return list(
        User.select(User.id, User.name, User.email)
        .where(User.id.in_(_members_of(center_ids)))
        .order_by(fn.LOWER(User.name), User.id)
    )


def adoption(admin: User) -> list[CenterAdoption]:
    """For each of `admin`'s centers: its families and staff with their 2SV state."""
    centers = admin_centers(admin)
    if not centers:
        return []
    by_center = {center.id: CenterAdoption(center) for center in centers}
    counts = _method_counts()
    staff = _staff_logins()
    rows = (
        Membership.select(
            Membership,
            User,
            fn.COALESCE(counts.c.n, 0).alias("method_count"),
            staff.c.user_id.is_null(False).alias("staff_login"),
        )
        .join(User)
        .join(counts, JOIN.LEFT_OUTER, on=(counts.c.user_id == User.id))
        .switch(User)
        .join(staff, JOIN.LEFT_OUTER, on=(staff.c.user_id == User.id))
        .where(Membership.center.in_(list(by_center)))
        .order_by(fn.LOWER(User.name), User.id)
    )
    for row in rows:
        person = Person(
            user=row.user,
            method_count=int(row.method_count or 0),
            is_staff=bool(row.staff_login),
        )
        center = by_center[row.center_id]
        (center.staff if row.role == STAFF else center.families).append(person)
    return list(by_center.values())


# --- Security activity ----------------------------------------------------------------------


def event_kinds() -> list[tuple[str, str]]:
    """(kind, label) of every event the log records, for the filter, in the current language."""
    return [(kind, str(label)) for kind, label in EVENT_LABELS.items()]


def _activity_query(admin: User, person: User | None = None, kind: str = ""):
    """The security events of `admin`'s people (or of one person, of one kind), newest first,
    each with its person and its actor."""
    actor = User.alias("actor")
    query = (
        SecurityEvent.select(SecurityEvent, User, actor)
        .join(User, on=(SecurityEvent.user == User.id))
        .switch(SecurityEvent)
        .join(actor, JOIN.LEFT_OUTER, on=(SecurityEvent.actor == actor.id))
        .where(SecurityEvent.user.in_(_members_of(admin.admin_center_ids())))
        .order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
    )
    if person is not None:
        query = query.where(SecurityEvent.user == person)
    if kind:
        query = query.where(SecurityEvent.kind == kind)
    return query


def activity(
    admin: User, *, person: User | None = None, kind: str = "", page: int = 1, size: int = 20
) -> Page:
    """A page of the security log of `admin`'s people, filtered by person and by kind."""
    if not admin.admin_center_ids():
        return Page([], 1, size, 0)
    events, total, number = _paginate(_activity_query(admin, person, kind), page, size)
    return Page(events, number, size, total)


def activity_export(admin: User, *, person: User | None = None, kind: str = ""):
    """Every matching event, newest first, for the CSV export."""
    if not admin.admin_center_ids():
        return []
    return _activity_query(admin, person, kind).iterator()
