"""Delivery of email and text messages behind two small interfaces.

The outbox (messages stored in the database) is used whenever no provider keys are set.
"""

from typing import Protocol

from flask import current_app

from models.outbox import OutboxMessage


class DeliveryError(Exception):
    """A provider refused the message or did not answer. The text never holds a code."""


class EmailSender(Protocol):
    def send_email(self, to: str, subject: str, text: str, html: str = "") -> None: ...


class SmsSender(Protocol):
    def send_sms(self, to: str, body: str) -> None: ...


class OutboxSender:
    """Writes messages to the outbox table instead of sending them."""

    def send_email(self, to: str, subject: str, text: str, html: str = "") -> None:
        OutboxMessage.create(channel="email", to=to, subject=subject, body=text, html=html)

    def send_sms(self, to: str, body: str) -> None:
        OutboxMessage.create(channel="sms", to=to, subject="", body=body)


def email_sender() -> EmailSender:
    """The email sender the configuration chooses."""
    return OutboxSender()


def sms_sender() -> SmsSender:
    """The text-message sender the configuration chooses."""
    return OutboxSender()


def outbox_in_use() -> bool:
    """Whether either channel writes to the outbox (so the developer viewer makes sense)."""
    config = current_app.config
    return not (config.get("SENDGRID_API_KEY") and config.get("VONAGE_API_KEY"))
