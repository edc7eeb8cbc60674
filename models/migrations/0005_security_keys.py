"""Security keys and passkeys (WebAuthn): several "webauthn" methods per login, so the one-per-
kind unique index becomes partial (every kind but "webauthn"); the methods table gains the
credential's id, public key, signature counter and transports; and the single-use challenges
handed to the browser get a table of their own."""

from peewee import (
    SQL,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    Model,
    TextField,
)

from models.migrations import add_column, add_index

ONE_PER_KIND = "verification_method_user_id_kind"


def upgrade(database, migrator):
    class Base(Model):
        class Meta:
            database = None
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class WebAuthnChallenge(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        purpose = CharField(max_length=20)
        challenge = CharField(max_length=128)
        created_at = DateTimeField()
        used_at = DateTimeField(null=True)

        class Meta:
            table_name = "webauthn_challenge"
            indexes = ((("user", "purpose", "challenge"), False),)

    table = "verification_method"
    add_column(database, migrator, table, "credential_id", CharField(max_length=1400, null=True))
    empty, zero = [SQL("DEFAULT ''")], [SQL("DEFAULT 0")]
    add_column(database, migrator, table, "public_key", TextField(default="", constraints=empty))
    add_column(
        database, migrator, table, "sign_count", BigIntegerField(default=0, constraints=zero)
    )
    add_column(
        database,
        migrator,
        table,
        "transports",
        CharField(max_length=200, default="", constraints=empty),
    )
    add_index(database, migrator, table, ("credential_id",), unique=True)

    database.execute_sql(f'DROP INDEX IF EXISTS "{ONE_PER_KIND}"')
    database.execute(
        SQL(
            f'CREATE UNIQUE INDEX "{ONE_PER_KIND}" ON "{table}" ("user_id", "kind") '
            "WHERE (\"kind\" != 'webauthn')"
        )
    )

    with database.bind_ctx([User, WebAuthnChallenge]):
        database.create_tables([WebAuthnChallenge], safe=True)
