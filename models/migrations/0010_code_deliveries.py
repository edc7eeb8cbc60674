"""Delivery status (issue 20): each code's message, the provider's id for it and what became
of it get a table, and a saved method keeps why its last two codes failed to arrive."""

from peewee import SQL, CharField, DateTimeField, ForeignKeyField, Model

from models.migrations import add_column


def upgrade(database, migrator):
    class Base(Model):
        class Meta:
            database = None
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class OneTimeCode(Base):
        class Meta:
            table_name = "one_time_code"

    class CodeDelivery(Base):
        user = ForeignKeyField(User, backref="+", on_delete="CASCADE")
        code = ForeignKeyField(OneTimeCode, null=True, backref="+", on_delete="SET NULL")
        purpose = CharField(max_length=20)
        channel = CharField(max_length=10)
        destination = CharField(max_length=254)
        provider = CharField(max_length=10)
        message_id = CharField(max_length=128, null=True)
        state = CharField(max_length=10, default="sent")
        reason = CharField(max_length=30, default="")
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            table_name = "code_delivery"
            indexes = (
                (("provider", "message_id"), False),
                (("user", "destination", "created_at"), False),
                (("created_at",), False),
            )

    add_column(
        database,
        migrator,
        "verification_method",
        "delivery_problem",
        CharField(max_length=30, default="", constraints=[SQL("DEFAULT ''")]),
    )
    with database.bind_ctx([User, OneTimeCode, CodeDelivery]):
        database.create_tables([CodeDelivery], safe=True)
