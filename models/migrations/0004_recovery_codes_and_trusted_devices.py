"""Recovery codes (one row per code, hashed), the just-made set held for its shown-once page,
and trusted devices ("Don't ask again on this device"). The security log's method_kind grows
to 20 characters for the sign-ins that used neither a method ("recovery", "trusted_device")."""

from peewee import CharField, DateTimeField, ForeignKeyField, Model, TextField


def upgrade(database, migrator):
    class Base(Model):
        class Meta:
            database = None
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class UserSession(Base):
        class Meta:
            table_name = "user_session"

    class RecoveryCode(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        lookup = CharField(max_length=64)
        code_hash = CharField(max_length=255)
        created_at = DateTimeField()
        used_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("user", "lookup"), True),
                (("user", "used_at"), False),
            )

    class FreshRecoveryCodes(Base):
        session = ForeignKeyField(UserSession, backref="+", unique=True, on_delete="CASCADE")
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        codes = TextField()
        created_at = DateTimeField()

    class TrustedDevice(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        token_hash = CharField(max_length=64, unique=True)
        label = CharField(max_length=100, default="")
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        expires_at = DateTimeField()

        class Meta:
            indexes = ((("user", "expires_at"), False),)

    tables = [RecoveryCode, FreshRecoveryCodes, TrustedDevice]
    with database.bind_ctx([User, UserSession, *tables]):
        database.create_tables(tables, safe=True)
    migrator.alter_column_type(
        "security_event", "method_kind", CharField(max_length=20, default="")
    ).run()
