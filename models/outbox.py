"""The local outbox: where email and text messages go when no provider keys are set."""

from peewee import CharField, DateTimeField, TextField

from models import BaseModel
from models.clock import now


class OutboxMessage(BaseModel):
    """A message the app "sent" without a provider, for developers, demos and tests."""

    channel = CharField(max_length=10)  # email or sms
    to = CharField(max_length=254)
    subject = CharField(max_length=300, default="")
    body = TextField()
    html = TextField(default="")
    created_at = DateTimeField(default=now, index=True)
