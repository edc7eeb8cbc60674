"""The schema of the foundation: centers, logins, memberships, sessions, verification methods,
pending set-ups, one-time codes, the security log and the outbox.

Frozen copies of the tables as they were then; never import the live models here.
"""

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


def upgrade(database, migrator):
    class Base(Model):
        class Meta:
            database = None
            legacy_table_names = False

    class Center(Base):
        name = CharField(max_length=200, unique=True)
        created_at = DateTimeField()

    class User(Base):
        email = CharField(max_length=254, unique=True)
        name = CharField(max_length=200)
        password_hash = CharField(max_length=255)
        two_step_enabled = BooleanField(default=False)
        failed_code_count = IntegerField(default=0)
        verification_paused_until = DateTimeField(null=True)
        last_sign_in_at = DateTimeField(null=True)
        created_at = DateTimeField()

    class Membership(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        center = ForeignKeyField(Center, backref="+", on_delete="CASCADE")
        role = CharField(max_length=10)
        is_admin = BooleanField(default=False)

        class Meta:
            indexes = ((("user", "center", "role"), True),)

    class UserSession(Base):
        token_hash = CharField(max_length=64, unique=True)
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        state = CharField(max_length=10)
        created_at = DateTimeField()
        last_seen_at = DateTimeField()
        authenticated_at = DateTimeField()
        ip = CharField(max_length=64)
        user_agent = CharField(max_length=300)

        class Meta:
            indexes = ((("user", "state"), False),)

    class VerificationMethod(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        kind = CharField(max_length=10)
        destination = CharField(max_length=254)
        secret = TextField()
        last_totp_step = BigIntegerField(default=0)
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("user", "kind"), True),)

    class PendingSetup(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        kind = CharField(max_length=10)
        destination = CharField(max_length=254)
        secret = TextField()
        failed_attempts = IntegerField(default=0)
        created_at = DateTimeField()

        class Meta:
            indexes = ((("user", "kind"), True),)

    class OneTimeCode(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        purpose = CharField(max_length=20)
        channel = CharField(max_length=10)
        destination = CharField(max_length=254)
        code_hash = CharField(max_length=64)
        created_at = DateTimeField()
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)

        class Meta:
            indexes = ((("user", "purpose", "used_at"), False),)

    class SecurityEvent(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        actor = ForeignKeyField(User, backref="+", null=True, on_delete="SET NULL")
        kind = CharField(max_length=30)
        method_kind = CharField(max_length=10)
        detail = TextField()
        ip = CharField(max_length=64)
        user_agent = CharField(max_length=300)
        created_at = DateTimeField(index=True)

        class Meta:
            indexes = ((("user", "created_at"), False),)

    class OutboxMessage(Base):
        channel = CharField(max_length=10)
        to = CharField(max_length=254)
        subject = CharField(max_length=300)
        body = TextField()
        html = TextField()
        created_at = DateTimeField(index=True)

    tables = [
        Center,
        User,
        Membership,
        UserSession,
        VerificationMethod,
        PendingSetup,
        OneTimeCode,
        SecurityEvent,
        OutboxMessage,
    ]
    # safe=True: a database made by `create_tables()` before migrations existed is adopted.
    with database.bind_ctx(tables):
        database.create_tables(tables, safe=True)
