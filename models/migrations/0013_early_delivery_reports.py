"""Delivery reports that come before their send is recorded (issue 20's follow-up): a table
holds them until the send is saved and takes them."""

from peewee import CharField, DateTimeField, Model


def upgrade(database, migrator):
    class Base(Model):
        class Meta:
            database = None
            legacy_table_names = False

    class EarlyReport(Base):
        provider = CharField(max_length=10)
        message_id = CharField(max_length=128)
        state = CharField(max_length=10)
        reason = CharField(max_length=30, default="")
        received_at = DateTimeField()

        class Meta:
            table_name = "early_delivery_report"
            indexes = (
                (("provider", "message_id"), False),
                (("received_at",), False),
            )

    with database.bind_ctx([EarlyReport]):
        database.create_tables([EarlyReport], safe=True)
