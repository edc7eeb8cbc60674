"""Password reset links (one row per "Forgot password?" email, the token kept as a hash), and
the count of staff sign-ins completed with "Not now" during the roll-out."""

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, Model

from models.migrations import add_column


def upgrade(database, migrator):
    class User(Model):
        class Meta:
            legacy_table_names = False

    class PasswordResetToken(Model):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        token_hash = CharField(max_length=64, unique=True)
        created_at = DateTimeField()
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)

        class Meta:
            legacy_table_names = False
            indexes = ((("user", "created_at"), False),)

    with database.bind_ctx([User, PasswordResetToken]):
        database.create_tables([PasswordResetToken], safe=True)
    add_column(database, migrator, "user", "grace_signins_used", IntegerField(default=0))
