"""Developer tools: the outbox viewer (only while the outbox sends and not in production)
and the `flask outbox` command."""

import ipaddress
import json
from datetime import UTC

import click
from flask import Blueprint, abort, current_app, request
from flask_babel import gettext

import models
from blueprints.web import allow_pending, render
from models.outbox import OutboxMessage
from services.delivery import senders
from services.language import N_
from services.methods import deliveries

bp = Blueprint("dev", __name__, url_prefix="/dev", cli_group=None)

# The viewer shows this many of the newest messages; `flask outbox` shows them all.
PAGE_SIZE = 100

CHANNEL_NAMES = {"email": N_("Email"), "sms": N_("Text message")}


@bp.get("/outbox")
@allow_pending
def outbox():
    """What the outbox "sent", newest first. No sign-in needed (a developer reads the code
    to sign in with, half-signed-in included), so it shows live codes only to this machine:
    404 in production, when both channels go to real providers, or to any other address."""
    if current_app.config.get("PRODUCTION") or not senders.outbox_in_use():
        abort(404)
    if not from_loopback():
        abort(404)
    messages = senders.outbox_messages(limit=PAGE_SIZE)
    response = render(
        "dev/outbox.html",
        block="content",
        messages=messages,
        total=senders.outbox_count(),
        channels=list(senders.outbox_channels()),
        channel_name=lambda channel, default: gettext(CHANNEL_NAMES.get(channel, default)),
        iso=_iso,
    )
    response.headers["Cache-Control"] = "no-store"  # the page shows live codes
    return response


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def from_loopback() -> bool:
    """Whether the request comes from this machine: the peer and, behind PROXY_FIX_X_FOR,
    the address the proxy passed on, both loopback addresses."""
    original = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR")
    peer = original or request.environ.get("REMOTE_ADDR")
    return _loopback(peer) and _loopback(request.remote_addr)


@bp.cli.command("outbox")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the N newest messages (default: all).",
)
@click.option("--clear", is_flag=True, help="Delete every message in the outbox.")
@click.option(
    "--fail",
    "fail_address",
    metavar="ADDRESS",
    default=None,
    help="Mark the newest code sent to ADDRESS (email or phone) as not delivered: bounced.",
)
def outbox_command(as_json, limit, clear, fail_address):
    """List what the outbox "sent", newest last (or clear it, or fail a delivery)."""
    opened = models.db.is_closed()
    if opened:
        models.db.connect()
    try:
        if fail_address is not None:
            _fail_delivery(fail_address)
            return
        if clear:
            click.echo(f"Cleared the outbox ({senders.clear_outbox()} messages).")
            return
        messages = senders.outbox_messages(limit=limit, newest_first=False)
        if as_json:
            for message in messages:
                click.echo(json.dumps(_as_dict(message), ensure_ascii=False))
        elif messages:
            click.echo("\n\n".join(_as_block(message) for message in messages))
        else:
            click.echo("The outbox is empty.")
    finally:
        if opened:
            models.db.close()


def _fail_delivery(address: str) -> None:
    """`--fail ADDRESS`: what a provider's bounce report does, for demos and tests."""
    delivery = deliveries.fail_newest_outbox(address)
    if delivery is None:
        raise click.ClickException(f"The outbox has sent no verification code to {address}.")
    words = deliveries.reason_words(delivery.reason)
    sent_at = _utc_text(delivery.created_at)
    click.echo(f"Marked the code sent to {delivery.destination} at {sent_at} as failed: {words}.")


def _as_dict(message: OutboxMessage) -> dict:
    return {
        "channel": message.channel,
        "to": message.to,
        "subject": message.subject,
        "body": message.body,
        "created_at": _iso(message.created_at),
    }


def _as_block(message: OutboxMessage) -> str:
    """One message as a few readable lines: who, when, subject, then the text."""
    name = CHANNEL_NAMES.get(message.channel, message.channel)
    lines = [f"=== {name} to {message.to} · {_utc_text(message.created_at)}"]
    if message.subject:
        lines.append(f"Subject: {message.subject}")
    lines.extend(["", message.body.rstrip("\n")])
    return "\n".join(lines)


def _iso(moment) -> str:
    """A naive UTC time from the database as ISO 8601 with its offset."""
    return moment.replace(tzinfo=UTC).isoformat()


def _utc_text(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
