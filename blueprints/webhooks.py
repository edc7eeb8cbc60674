"""The providers' delivery reports: SendGrid's Event Webhook and Vonage's SMS receipts.

POST only, no session and no CSRF token (the provider's signature stands in for both), rate
limited per address. A bad or missing signature, or one older than 5 minutes, gets 403 and
changes nothing; a report about a message we don't know gets 204 like any other. Without
the verification settings both endpoints answer 404, as if they did not exist.
"""

from flask import Blueprint, current_app, request

from blueprints.extensions import csrf, from_setting, limiter
from models.deliveries import SENDGRID, VONAGE
from services.methods import deliveries, delivery_reports

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)

# Both endpoints share one per-IP budget.
_limit = limiter.shared_limit(
    from_setting("WEBHOOK_REQUESTS_PER_IP"), scope="webhooks", methods=["POST"]
)


def _plain(text: str, status: int):
    return text + "\n", status, {"Content-Type": "text/plain; charset=utf-8"}


def _accepted():
    return "", 204


@bp.route("/sendgrid", methods=["POST"])
@_limit
def sendgrid():
    """SendGrid's signed Event Webhook: a JSON list of events about messages we sent."""
    key = current_app.config.get("SENDGRID_WEBHOOK_VERIFICATION_KEY")
    if not key:
        return _plain("Not found.", 404)
    try:
        outcomes = delivery_reports.sendgrid_outcomes(
            request.get_data(),
            request.headers.get(delivery_reports.SENDGRID_SIGNATURE_HEADER),
            request.headers.get(delivery_reports.SENDGRID_TIMESTAMP_HEADER),
            key,
        )
    except delivery_reports.Refused as refusal:
        return _plain(str(refusal), 403)
    except delivery_reports.Unreadable as problem:
        return _plain(str(problem), 400)
    deliveries.apply(SENDGRID, outcomes)
    return _accepted()


@bp.route("/vonage", methods=["POST"])
@_limit
def vonage():
    """Vonage's signed SMS delivery receipt, as a form or as JSON (set the webhook to POST)."""
    config = current_app.config
    secret, api_key = config.get("VONAGE_SIGNATURE_SECRET"), config.get("VONAGE_API_KEY")
    if not secret or not api_key:
        return _plain("Not found.", 404)
    params = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    try:
        outcomes = delivery_reports.vonage_outcomes(
            params, secret, config["VONAGE_SIGNATURE_METHOD"], api_key
        )
    except delivery_reports.Refused as refusal:
        return _plain(str(refusal), 403)
    deliveries.apply(VONAGE, outcomes)
    return _accepted()
