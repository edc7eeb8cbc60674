"""Rendering the app's emails from templates/email/NAME.txt and .html, and sending them."""

from flask import current_app, render_template
from flask_babel import gettext

from services.delivery.senders import DeliveryError, email_sender
from services.language import speaking_to


def send_templated_email(to: str, subject: str, template: str, **context) -> None:
    """Render `template` (.txt and .html) and translate `subject` (English, in the catalogue)
    into the language of `context["user"]`, and send it; raises DeliveryError on failure."""
    context.setdefault("product_name", current_app.config["PRODUCT_NAME"])
    with speaking_to(context.get("user")):
        subject = gettext(subject)
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **context)
    email_sender().send_email(to, subject, text, html)


def send_notice(to: str, subject: str, template: str, **context) -> bool:
    """Send an informational email; a delivery failure is logged, not raised."""
    try:
        send_templated_email(to, subject, template, **context)
    except DeliveryError as error:
        current_app.logger.warning("Could not send %r email: %s", template, error)
        return False
    return True
