"""Sessions on the server: the browser's cookie names a row here (SPEC Decisions 2)."""

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField

from models import BaseModel
from models.clock import now
from models.people import User

PENDING = "pending"  # password right, second step not done yet
ACTIVE = "active"  # fully signed in

# UserSession.challenge_method of a pending staff sign-in whose second step was proven with a
# method the staff policy now leaves out: only the set-up of an allowed one remains
# (Decisions 20). Never a method id (those are positive).
PROVEN = -1

WEB = "web"  # a browser: the token is in its signed cookie
APP = "app"  # the mobile app: the token is a bearer token (blueprints/api)


class UserSession(BaseModel):
    """One sign-in of one browser or app. The client keeps a token (the web's cookie, the API's
    bearer token); only its SHA-256 is stored."""

    token_hash = CharField(max_length=64, unique=True)
    user = ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    state = CharField(max_length=10, default=ACTIVE)
    created_at = DateTimeField(default=now)
    last_seen_at = DateTimeField(default=now)
    # When the password (or the second step) was last given: sudo mode checks this.
    authenticated_at = DateTimeField(default=now)
    ip = CharField(max_length=64, default="")
    user_agent = CharField(max_length=300, default="")
    # Who holds the token: a browser (its cookie) or the mobile app (a bearer token), and
    # for the app the device name it gave, shown under "Where you're signed in".
    kind = CharField(max_length=10, default=WEB)
    device_name = CharField(max_length=100, default="")
    # A pending sign-in: the id of the method it is challenging (re-checked to be the person's
    # own on every use), or None while the picker shows.
    challenge_method = IntegerField(null=True)

    class Meta:
        indexes = (
            (("user", "state"), False),
            (("state", "created_at"), False),  # purge: ended pending sign-ins, too-old sessions
            (("last_seen_at",), False),  # purge: idle sessions
        )
