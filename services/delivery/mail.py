"""Rendering the app's emails from templates/email/NAME.txt and .html, and sending them."""

from flask import current_app, render_template

from services.delivery.senders import DeliveryError, email_sender


def send_templated_email(to: str, subject: str, template: str, **context) -> None:
    """Render `template` (.txt and .html) and send it; raises DeliveryError on failure."""
    context.setdefault("product_name", current_app.config["PRODUCT_NAME"])
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
