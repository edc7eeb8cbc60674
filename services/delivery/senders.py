"""Delivery of email and text messages behind two small interfaces.

SendGrid sends email and Vonage sends text messages, each through its official SDK, when its
keys are set; otherwise the outbox (messages stored in the database) stands in, so
development, demos and tests need nothing outside the machine. Every provider failure becomes
a DeliveryError whose text never holds the message itself: the message holds a code.
"""

import http.client
import json
import logging
import re
import socket
import urllib.error
from typing import Protocol

import requests
from flask import current_app
from python_http_client.exceptions import HTTPError as SendGridHttpError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from models.outbox import OutboxMessage

logger = logging.getLogger(__name__)

SENDGRID_HOST = "https://api.sendgrid.com"
VONAGE_REST_HOST = "rest.nexmo.com"

# Both SDKs log every request at DEBUG, the message text (the code) and credentials included.
for _sdk in ("python_http_client", "vonage"):
    if logging.getLogger(_sdk).level == logging.NOTSET:
        logging.getLogger(_sdk).setLevel(logging.INFO)


class DeliveryError(Exception):
    """A provider refused the message or did not answer. The text never holds a code."""


class DeliveryUnknown(DeliveryError):
    """The message went out but no answer came back (no answer within the timeout, or the
    connection dropped): the provider (`provider`: "sendgrid", "vonage") may have it and
    deliver it late."""

    def __init__(self, text: str, provider: str):
        super().__init__(text)
        self.provider = provider


# Each sender returns the provider's id for the message it sent (None if it gave none), and
# names its provider, so a code's delivery can be followed (services/methods/deliveries.py).


class EmailSender(Protocol):
    provider: str

    def send_email(self, to: str, subject: str, text: str, html: str = "") -> str | None: ...


class SmsSender(Protocol):
    provider: str

    def send_sms(self, to: str, body: str) -> str | None: ...


class OutboxSender:
    """Writes messages to the outbox table instead of sending them; the row's id is the
    message id."""

    provider = "outbox"

    def send_email(self, to: str, subject: str, text: str, html: str = "") -> str | None:
        """Store the email in the outbox; return the outbox row's id."""
        row = OutboxMessage.create(channel="email", to=to, subject=subject, body=text, html=html)
        return str(row.id)

    def send_sms(self, to: str, body: str) -> str | None:
        """Store the text message in the outbox; return the outbox row's id."""
        return str(OutboxMessage.create(channel="sms", to=to, subject="", body=body).id)


class SendGridEmailSender:
    """Sends email through SendGrid's v3 Mail Send API (plain text, plus HTML when given)."""

    provider = "sendgrid"

    def __init__(
        self, api_key: str, mail_from: str, host: str | None = None, timeout: float = 10.0
    ):
        self.mail_from = mail_from
        self.timeout = timeout
        self.client = SendGridAPIClient(api_key, host=host or SENDGRID_HOST)
        # The SDK's HTTP client (python_http_client) waits forever unless it has a timeout;
        # the one set here is handed to every request it builds.
        self.client.client.timeout = timeout

    def send_email(self, to: str, subject: str, text: str, html: str = "") -> str | None:
        """Send one email and return SendGrid's X-Message-Id for it; raise DeliveryError if
        SendGrid refuses it or does not answer."""
        message = Mail(
            from_email=self.mail_from,
            to_emails=to,
            subject=subject,
            plain_text_content=text,
            html_content=html or None,
        )
        private = (to, subject, text, html)
        try:
            response = self.client.send(message)
        except SendGridHttpError as error:
            detail = _sendgrid_errors(error.body)
            problem = f"answered HTTP {error.status_code}" + (f" ({detail})" if detail else "")
            raise _failure("SendGrid", "email", problem, private) from error
        except (OSError, http.client.HTTPException) as error:
            # urllib: URLError when refused or unreachable, TimeoutError while waiting.
            problem = _network_problem(error, self.timeout)
            raise _failure("SendGrid", "email", problem, private, error) from error
        headers = getattr(response, "headers", None)
        return (headers.get("X-Message-Id") if headers is not None else None) or None


class VonageSmsSender:
    """Sends text messages through Vonage's SMS API, once: the SDK's retries are off."""

    provider = "vonage"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        sms_from: str,
        rest_host: str | None = None,
        timeout: float = 10.0,
    ):
        # Imported here, not at the top: the vonage package takes most of a second to import,
        # which every `flask` command and test run would pay without using it.
        from vonage import Auth, HttpClientOptions, Vonage

        self.sms_from = sms_from
        self.timeout = timeout
        # max_retries=0 turns off urllib3's retries; pool_maxsize=1 makes the SDK's own loop
        # for dropped connections (it tries pool_maxsize times) a single attempt.
        options = HttpClientOptions(
            rest_host=rest_host or VONAGE_REST_HOST,
            max_retries=0,
            pool_connections=1,
            pool_maxsize=1,
        )
        # The SDK types `timeout` as whole seconds yet hands it to requests, which takes any
        # number of seconds: set it past the int check so 0.5 s stays 0.5 s.
        options = options.model_copy(update={"timeout": timeout})
        self.client = Vonage(Auth(api_key=api_key, api_secret=api_secret), options)

    def send_sms(self, to: str, body: str) -> str | None:
        """Send one text message and return Vonage's message-id for it; raise DeliveryError
        if Vonage refuses it or does not answer."""
        from pydantic import ValidationError
        from vonage import VonageError
        from vonage_http_client.errors import HttpRequestError as VonageHttpError
        from vonage_sms import SmsError, SmsMessage

        private = (to, body)
        try:
            # Vonage wants the E.164 number without its leading "+".
            message = SmsMessage(to=to.removeprefix("+"), from_=self.sms_from, text=body)
        except ValidationError as error:
            fields = ", ".join(str(item["loc"][0]) for item in error.errors() if item["loc"])
            problem = f"was not given a valid {fields}"
            # from None: pydantic's own text quotes the input, the code included.
            raise _failure("Vonage", "text message", problem, private) from None
        try:
            response = self.client.sms.send(message)
        except SmsError as error:
            # Status "2", "29" and the like arrive as HTTP 200 with the status in the body.
            reason = str(error).removeprefix("Sms.send_message method failed with ")
            raise _failure("Vonage", "text message", f"refused it: {reason}", private) from error
        except VonageHttpError as error:
            problem = f"answered HTTP {error.response.status_code}"
            raise _failure("Vonage", "text message", problem, private) from error
        except VonageError as error:
            raise _failure("Vonage", "text message", type(error).__name__, private) from error
        except requests.RequestException as error:  # refused, timed out, TLS, dropped
            problem = _network_problem(error, self.timeout)
            raise _failure("Vonage", "text message", problem, private, error) from error
        except (KeyError, TypeError, ValueError) as error:
            problem = f"gave an answer we could not read ({type(error).__name__})"
            raise _failure("Vonage", "text message", problem, private) from None
        # A long text goes as several parts, each with its id: a code fits in one.
        parts = getattr(response, "messages", None) or []
        return (getattr(parts[0], "message_id", None) if parts else None) or None


def email_sender() -> EmailSender:
    """SendGrid when SENDGRID_API_KEY is set, else the outbox."""
    config = current_app.config
    if _sendgrid_configured(config):
        return SendGridEmailSender(
            config["SENDGRID_API_KEY"],
            config["MAIL_FROM"],
            host=config.get("SENDGRID_HOST") or None,
            timeout=float(config["DELIVERY_TIMEOUT"]),
        )
    _warn_if_production("email", "SENDGRID_API_KEY")
    return OutboxSender()


def sms_sender() -> SmsSender:
    """Vonage when VONAGE_API_KEY and VONAGE_API_SECRET are set, else the outbox."""
    config = current_app.config
    if _vonage_configured(config):
        return VonageSmsSender(
            config["VONAGE_API_KEY"],
            config["VONAGE_API_SECRET"],
            config["SMS_FROM"],
            rest_host=config.get("VONAGE_REST_HOST") or None,
            timeout=float(config["DELIVERY_TIMEOUT"]),
        )
    _warn_if_production("text messages", "VONAGE_API_KEY and VONAGE_API_SECRET")
    return OutboxSender()


def outbox_in_use() -> bool:
    """Whether either channel writes to the outbox (so the developer viewer makes sense)."""
    config = current_app.config
    return not (_sendgrid_configured(config) and _vonage_configured(config))


def _sendgrid_configured(config) -> bool:
    return bool(config.get("SENDGRID_API_KEY"))


def _vonage_configured(config) -> bool:
    return bool(config.get("VONAGE_API_KEY") and config.get("VONAGE_API_SECRET"))


def _warn_if_production(channel: str, settings: str) -> None:
    if current_app.config.get("PRODUCTION"):
        logger.warning("Production has no %s set: %s go to the outbox.", settings, channel)


def _failure(
    provider: str,
    what: str,
    problem: str,
    private: tuple[str, ...],
    network_error: BaseException | None = None,
) -> DeliveryError:
    """Log the failure and make the DeliveryError for it, both free of the message itself: a
    DeliveryUnknown when a network error came after the request may have reached the provider."""
    if network_error is not None and _may_have_arrived(network_error):
        text = f"{provider} may not have sent the {what}: {_scrubbed(problem, private)}"
        logger.warning("%s", text)
        return DeliveryUnknown(text, provider.lower())
    text = f"{provider} did not send the {what}: {_scrubbed(problem, private)}"
    logger.warning("%s", text)
    return DeliveryError(text)


def _may_have_arrived(error: BaseException) -> bool:
    """Whether the request may have reached the provider before `error`: not when the
    connection was never made (refused, unreachable, a connect timeout, a TLS failure, which
    urllib wraps in URLError), else yes (no answer in time, the connection dropped)."""
    never_connected = (
        urllib.error.URLError,
        ConnectionRefusedError,
        socket.gaierror,
        requests.exceptions.ConnectTimeout,
        requests.exceptions.SSLError,
    )
    return not any(isinstance(cause, never_connected) for cause in _causes(error))


def _scrubbed(text: str, private: tuple[str, ...]) -> str:
    """`text` without the message, its destination or anything shaped like a code."""
    for value in private:
        if value and len(value) >= 3:
            text = text.replace(value, "[…]")
    text = re.sub(r"(?<!\d)\d{6}(?!\d)", "[…]", text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:299] + "…"


def _sendgrid_errors(body) -> str:
    """The `errors[].message` texts of a SendGrid error answer, if it has any."""
    try:
        errors = json.loads(body or b"").get("errors") or []
        return "; ".join(str(item.get("message", "")) for item in errors if item.get("message"))
    except (ValueError, AttributeError, TypeError):
        return ""


def _network_problem(error: BaseException, timeout: float) -> str:
    """Say in a few words why a provider could not be reached (no URL or payload)."""
    causes = _causes(error)
    if any(isinstance(cause, TimeoutError | requests.Timeout) for cause in causes):
        return f"no answer within {timeout:g} seconds"
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return "the connection was refused"
    if any(isinstance(cause, requests.exceptions.SSLError) for cause in causes):
        return "the secure connection failed"
    return f"could not be reached ({type(causes[-1]).__name__})"


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and what caused it, following `reason` (urllib, urllib3) and exception chains."""
    seen: list[BaseException] = []
    queue: list[object] = [error]
    while queue and len(seen) < 20:
        item = queue.pop(0)
        if not isinstance(item, BaseException) or any(item is known for known in seen):
            continue
        seen.append(item)
        queue.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        queue.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return seen


def outbox_messages(limit: int | None = None, newest_first: bool = True) -> list[OutboxMessage]:
    """The `limit` newest outbox messages (all when None), newest first unless asked otherwise."""
    query = OutboxMessage.select().order_by(
        OutboxMessage.created_at.desc(),
        OutboxMessage.id.desc(),
    )
    if limit is not None:
        query = query.limit(limit)
    messages = list(query)
    return messages if newest_first else messages[::-1]


def clear_outbox() -> int:
    """Delete every outbox message; return how many there were."""
    return OutboxMessage.delete().execute()


def outbox_channels() -> list[str]:
    """The channels ("email", "sms") that write to the outbox with this configuration."""
    config = current_app.config
    channels = [] if _sendgrid_configured(config) else ["email"]
    return channels if _vonage_configured(config) else [*channels, "sms"]


def outbox_count() -> int:
    """How many messages the outbox holds."""
    return OutboxMessage.select().count()
