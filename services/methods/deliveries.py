"""Delivery status of the codes sent by email and text message (issue 20).

Every code that leaves through SendGrid, Vonage or the outbox gets a CodeDelivery row with the
provider's message id. The providers' webhooks (services/methods/delivery_reports.py and
blueprints/webhooks.py) report what became of it: `sent` moves to `deferred`, `delivered` or
`failed`, the failure's reason kept as one of the REASONS keys below. The outbox counts as
delivered at once.

The code box, the 2-Step Verification window and the admin's person page read it from here.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext

from models import db
from models.clock import now
from models.deliveries import (
    DEFERRED,
    DELIVERED,
    FAILED,
    FINAL_STATES,
    OUTBOX,
    SENT,
    CodeDelivery,
    EarlyReport,
)
from models.events import DELIVERY_FAILED
from models.people import User
from models.verification import OneTimeCode, VerificationMethod
from services.language import N_
from services.methods import BY_KIND
from services.security import security_log

# Why a message did not arrive, in plain words: the one table of them. Each completes the
# sentence "We couldn't deliver the code to p•••@example.com: …".
REASONS = {
    "bounced": N_("the address bounced"),
    "blocked": N_("the receiving mail server refused it"),
    "dropped": N_("our email service held it back, because earlier email to this address failed"),
    "spam_report": N_("it was reported as spam"),
    "unreachable": N_("the phone couldn't be reached (it may be off or out of service)"),
    "invalid_number": N_("the number can't receive text messages"),
    "refused_by_phone": N_("the phone is set to refuse messages like this"),
    "carrier_rejected": N_("the mobile carrier refused it"),
    "not_delivered": N_("it could not be delivered"),
}

# A state only ever moves forward: a late "deferred" never hides a "delivered", and nothing
# comes after "failed" (a spam report may still follow a delivery).
_RANK = {SENT: 0, DEFERRED: 1, DELIVERED: 2, FAILED: 3}
# The code box asks again every few seconds for this long after the send, then stops.
POLL_FOR = timedelta(minutes=2)


@dataclass(frozen=True)
class Outcome:
    """What a provider reported about one message: its id, the new state and why."""

    message_id: str
    state: str
    reason: str = ""


def reason_words(reason: str) -> str:
    """The plain words for a stored reason key (a generic phrase for one we don't know)."""
    return gettext(REASONS.get(reason) or REASONS["not_delivered"])


def record_send(
    user: User,
    code: OneTimeCode | None,
    *,
    purpose: str,
    channel: str,
    destination: str,
    provider: str,
    message_id: str | None,
) -> CodeDelivery:
    """Remember that a code left through `provider` with `message_id`; the outbox's count as
    delivered at once. Keeps the method's "last two failed" note in step."""
    moment = now()
    delivery = CodeDelivery.create(
        user=user,
        code=code,
        purpose=purpose,
        channel=channel,
        destination=destination,
        provider=provider,
        message_id=(message_id or None) and message_id[:128],
        state=DELIVERED if provider == OUTBOX else SENT,
        created_at=moment,
        updated_at=moment,
    )
    _refresh_method_problem(user.id, channel, destination)
    return delivery


def apply(provider: str, outcomes: list[Outcome]) -> int:
    """Move the deliveries these outcomes name to their new states; return how many moved.

    Each change is one conditional UPDATE (the state only moves forward), so a provider's
    retries and duplicates change nothing twice, and a failure is logged to the person's
    security activity once. A report on a message id no send has recorded yet is kept
    (EarlyReport): the send that records it takes it (`take_early_reports`); ids that are
    not ours are purged with them after EARLY_REPORT_KEEP.
    """
    changed = 0
    for outcome in outcomes:
        if outcome.state not in _RANK or not outcome.message_id:
            continue
        message_id = outcome.message_id[:128]
        moved = _advance(provider, message_id, outcome.state, outcome.reason)
        if not moved and not _recorded(provider, message_id):
            moved = _keep_early(provider, message_id, outcome)
        changed += moved
    return changed


# How long a report waits for its send to be recorded (a send takes seconds at most).
EARLY_REPORT_KEEP = timedelta(days=1)


def _recorded(provider: str, message_id: str) -> bool:
    return (
        CodeDelivery.select(CodeDelivery.id)
        .where((CodeDelivery.provider == provider) & (CodeDelivery.message_id == message_id))
        .exists()
    )


def _keep_early(provider: str, message_id: str, outcome: Outcome) -> int:
    """Keep a report that came before its send was recorded. Saved first and then checked
    again, while the send saves its delivery first and then looks for reports: whichever
    comes second sees the other, so no report falls between the two."""
    early = EarlyReport.create(
        provider=provider, message_id=message_id, state=outcome.state, reason=outcome.reason
    )
    if not _recorded(provider, message_id):
        return 0
    EarlyReport.delete().where(EarlyReport.id == early.id).execute()
    return _advance(provider, message_id, outcome.state, outcome.reason)


def take_early_reports(provider: str, message_id: str | None) -> int:
    """Apply the reports that came for `message_id` before its send was recorded (call it
    once the delivery is committed); return how many deliveries moved."""
    if not message_id or provider == OUTBOX:
        return 0
    message_id = message_id[:128]
    early = list(
        EarlyReport.select().where(
            (EarlyReport.provider == provider) & (EarlyReport.message_id == message_id)
        )
    )
    moved = 0
    for report in sorted(early, key=lambda each: _RANK.get(each.state, -1)):
        if report.state in _RANK:
            moved += _advance(provider, message_id, report.state, report.reason)
    if early:
        EarlyReport.delete().where(EarlyReport.id.in_([each.id for each in early])).execute()
    return moved


def _advance(provider: str, message_id: str, state: str, reason: str) -> int:
    earlier = [name for name, rank in _RANK.items() if rank < _RANK[state]]
    with db.atomic():
        found = list(
            CodeDelivery.select()
            .where(
                (CodeDelivery.provider == provider)
                & (CodeDelivery.message_id == message_id)
                & CodeDelivery.state.in_(earlier)
            )
            .order_by(CodeDelivery.id)
        )
        moved = 0
        for delivery in found:
            count = (
                CodeDelivery.update(
                    state=state,
                    reason=reason if state in (FAILED, DEFERRED) else "",
                    updated_at=now(),
                )
                .where((CodeDelivery.id == delivery.id) & CodeDelivery.state.in_(earlier))
                .execute()
            )
            if not count:
                continue  # another request moved it first
            moved += 1
            _refresh_method_problem(delivery.user_id, delivery.channel, delivery.destination)
            if state == FAILED:
                kind = BY_KIND[delivery.channel]
                security_log.record(
                    DELIVERY_FAILED,
                    User(id=delivery.user_id),
                    actor=None,
                    method_kind=delivery.channel,
                    detail=kind.masked(delivery.destination),
                    notify=False,
                )
    return moved


def _refresh_method_problem(user_id: int, channel: str, destination: str) -> None:
    """Set the saved method's `delivery_problem` to the reason when the last two deliveries
    to it both failed, else clear it (one read, and a write only when it changes)."""
    last_two = list(
        CodeDelivery.select(CodeDelivery.state, CodeDelivery.reason)
        .where((CodeDelivery.user == user_id) & (CodeDelivery.destination == destination))
        .order_by(CodeDelivery.created_at.desc(), CodeDelivery.id.desc())
        .limit(2)
    )
    both_failed = len(last_two) == 2 and all(each.state == FAILED for each in last_two)
    problem = (last_two[0].reason or "not_delivered") if both_failed else ""
    (
        VerificationMethod.update(delivery_problem=problem)
        .where(
            (VerificationMethod.user == user_id)
            & (VerificationMethod.kind == channel)
            & (VerificationMethod.destination == destination)
            & (VerificationMethod.delivery_problem != problem)
        )
        .execute()
    )


def newest(user: User, purpose: str, destination: str, since: datetime) -> CodeDelivery | None:
    """The newest delivery of a `purpose` code to `destination` sent at or after `since`
    (the code box's: the codes of this sign-in), or None."""
    return (
        CodeDelivery.select()
        .where(
            (CodeDelivery.user == user)
            & (CodeDelivery.purpose == purpose)
            & (CodeDelivery.destination == destination)
            & (CodeDelivery.created_at >= since)
        )
        .order_by(CodeDelivery.created_at.desc(), CodeDelivery.id.desc())
        .first()
    )


@dataclass(frozen=True)
class BoxLinks:
    """Where the code box's delivery status (templates/challenge/_delivery.html) asks again,
    and where its failure alert's "Try another method" goes: the sign-in's, a password reset
    link's or a method set-up's.

    The alert repeats none of the code box's own buttons (polling swaps the status alone, so
    they would show twice): every code box has its own "Send new code", and the sign-in's and
    a reset link's their own "Try another method" too, so theirs leave `methods` empty. Only a
    set-up's alert opens another method's tab."""

    status: str  # the status box alone (HTMX polls it)
    page: str  # the code box's page ("Check again" without JavaScript)
    methods: str = ""  # "Try another method" (a GET form's action); "" for the box's own
    methods_swap: str = ""  # the same with its query, for HTMX
    target: str = ""  # the component that GET swaps
    methods_fields: tuple[tuple[str, str], ...] = ()  # the GET form's hidden fields


def keeps_checking(delivery: CodeDelivery | None) -> bool:
    """Whether the code box should ask again: the send is less than POLL_FOR old and its
    state is not final. The outbox's "delivered" is a stand-in that `flask outbox --fail`
    may still turn into a failure, so the page keeps asking then too (demos, tests)."""
    if delivery is None or now() - delivery.created_at >= POLL_FOR:
        return False
    if not delivery.message_id:
        return False  # the provider gave no id (delivery unknown): no report can name it
    if delivery.provider == OUTBOX:
        return delivery.state != FAILED
    return delivery.state not in FINAL_STATES


def last_by_destination(user: User, methods: list[VerificationMethod]) -> dict[int, CodeDelivery]:
    """Each of `methods`' last delivery (method id -> delivery), for the admin's person page."""
    wanted = {(method.kind, method.destination): method.id for method in methods}
    if not any(kind in ("email", "sms") for kind, _ in wanted):
        return {}
    found: dict[int, CodeDelivery] = {}
    recent = (
        CodeDelivery.select()
        .where(CodeDelivery.user == user)
        .order_by(CodeDelivery.created_at.desc(), CodeDelivery.id.desc())
        .limit(200)
    )
    for delivery in recent:
        method_id = wanted.get((delivery.channel, delivery.destination))
        if method_id is not None and method_id not in found:
            found[method_id] = delivery
    return found


def fail_newest_outbox(address: str) -> CodeDelivery | None:
    """`flask outbox --fail ADDRESS`: mark the newest code the outbox "sent" to `address` as
    not delivered (an email as bounced, a text as unreachable), as a webhook would. None when
    the outbox sent no code there."""
    candidates = {address.strip(), address.strip().lower()}
    delivery = (
        CodeDelivery.select()
        .where((CodeDelivery.provider == OUTBOX) & CodeDelivery.destination.in_(candidates))
        .order_by(CodeDelivery.created_at.desc(), CodeDelivery.id.desc())
        .first()
    )
    if delivery is None:
        return None
    reason = "bounced" if delivery.channel == "email" else "unreachable"
    # Already "delivered": a failure may still follow it, as a bounce or spam report can.
    apply(OUTBOX, [Outcome(delivery.message_id or "", FAILED, reason)])
    return CodeDelivery.get_by_id(delivery.id)


def purge_early_reports() -> int:
    """Delete reports that waited longer than EARLY_REPORT_KEEP for their send (message ids
    that are not ours, or sends that failed after all); return how many went."""
    return EarlyReport.delete().where(EarlyReport.received_at < now() - EARLY_REPORT_KEEP).execute()


def purge_old() -> int:
    """Delete deliveries older than DELIVERY_KEEP_DAYS; return how many went."""
    keep = timedelta(days=current_app.config["DELIVERY_KEEP_DAYS"])
    return CodeDelivery.delete().where(CodeDelivery.created_at < now() - keep).execute()
