"""What became of each code sent by email or text message, as the provider reports it."""

from peewee import CharField, DateTimeField, ForeignKeyField

from models import BaseModel
from models.clock import now
from models.people import User
from models.verification import OneTimeCode

SENT = "sent"  # the provider took the message; nothing more is known yet
DEFERRED = "deferred"  # the provider is still trying (a mail server said "later")
DELIVERED = "delivered"
FAILED = "failed"  # bounced, dropped, reported as spam, refused by the carrier, unreachable
STATES = (SENT, DEFERRED, DELIVERED, FAILED)
FINAL_STATES = (DELIVERED, FAILED)

SENDGRID = "sendgrid"
VONAGE = "vonage"
OUTBOX = "outbox"


class CodeDelivery(BaseModel):
    """One code's message: where it went, the provider's id for it and what became of it.

    Kept longer than the code itself (which is purged an hour after it expires), so the
    2-Step Verification window and the admin's person page can say how the last deliveries
    to a method went.
    """

    user = ForeignKeyField(User, backref="code_deliveries", on_delete="CASCADE")
    code = ForeignKeyField(OneTimeCode, null=True, backref="deliveries", on_delete="SET NULL")
    purpose = CharField(max_length=20)
    channel = CharField(max_length=10)  # email or sms
    destination = CharField(max_length=254)
    provider = CharField(max_length=10)  # sendgrid, vonage or outbox
    # SendGrid's X-Message-Id, Vonage's message-id, the outbox row's id; None if not given.
    message_id = CharField(max_length=128, null=True)
    state = CharField(max_length=10, default=SENT)
    # A key of services.methods.deliveries.REASONS when the state is failed (or deferred), else "".
    reason = CharField(max_length=30, default="")
    created_at = DateTimeField(default=now)
    updated_at = DateTimeField(default=now)

    class Meta:
        table_name = "code_delivery"
        indexes = (
            (("provider", "message_id"), False),  # the webhooks find the message
            (("user", "destination", "created_at"), False),  # a method's last deliveries
            (("created_at",), False),  # purge
        )


class EarlyReport(BaseModel):
    """A provider's report on a message whose send is not recorded yet: the webhook came
    before the request that sent it had saved the message's id. Kept until that send is
    recorded and takes it (services.methods.deliveries), or purged after a day."""

    provider = CharField(max_length=10)
    message_id = CharField(max_length=128)
    state = CharField(max_length=10)
    reason = CharField(max_length=30, default="")
    received_at = DateTimeField(default=now)

    class Meta:
        table_name = "early_delivery_report"
        indexes = (
            (("provider", "message_id"), False),  # the send that comes later finds it
            (("received_at",), False),  # purge
        )
