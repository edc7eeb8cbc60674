"""The 2-Step Verification window, shared by the blueprints that re-render it or its cards
(profile, methods, recovery): its context, its tabs component and the shown-once recovery codes.
"""

from flask import current_app, get_flashed_messages, request, url_for

from blueprints.web import current_session, redirect_to, render, trusted_token
from services.account import sessions
from services.methods import (
    AUTHENTICATOR,
    BY_SLUG,
    EMAIL_KIND,
    SECURITY_KEY,
    MethodKind,
    deliveries,
    enrolment,
    kind_of,
    policy,
    recovery_codes,
    trusted_devices,
    webauthn_keys,
)
from services.security import security_log

# The flash category of "method saved": the window then offers to turn 2SV on (no JavaScript).
METHOD_SAVED = "method-saved"


def window_context(user, **extra) -> dict:
    """What the 2-Step Verification window shows."""
    methods = policy.methods_of(user)
    context = {
        "user": user,
        "methods": [(method, kind_of(method)) for method in methods],
        "delete_decision": policy.can_delete_method(user, len(methods)),
        "locked": bool(user.requires_2sv),
        "toggle_error": "",
        "toggle_notice": "",
        "reminder": "",
        "messages": [],
        "session_messages": [],  # the sessions card's own (not the window's messages twice)
        "window_errors": [],
        "signed_in_sessions": sessions.active_sessions(user),
        "this_session": current_session(),
        "events": security_log.recent_events(user, limit=8),
    }
    context.update(window_extras(user))
    # After a method is saved while 2SV is off, the message offers to turn it on.
    offer = extra.pop("offer_turn_on", False)
    context["offer_turn_on"] = bool(offer and methods and not user.two_step_enabled)
    tabs = extra.pop("tabs", None)
    if tabs is None:
        tabs = tabs_context(user, False, first_tab(user, request.args.get("tab", "")))
    context.update(tabs)
    context.update(extra)
    return context


def render_window(
    user,
    block: str | None = None,
    status: int = 200,
    *,
    retarget: str | None = None,
    reswap: str | None = None,
    **extra,
):
    """The window page, or one of its blocks for HTMX (sent to `retarget` if given)."""
    if "messages" not in extra:
        flashed = get_flashed_messages(with_categories=True)
        extra["messages"] = [message for _, message in flashed]
        if any(category == METHOD_SAVED for category, _ in flashed):
            extra.setdefault("offer_turn_on", True)
    return render(
        "profile/two_step.html",
        block=block,
        status=status,
        retarget=retarget,
        reswap=reswap,
        **window_context(user, **extra),
    )


def first_tab(user, slug: str = "") -> MethodKind:
    """The tab to open: the one asked for if allowed, else the first allowed kind the person
    has not saved yet (the Add tabs' next useful step), else the first allowed one."""
    allowed = policy.allowed_kinds(user)
    asked = BY_SLUG.get(slug)
    if asked in allowed:
        return asked
    saved = {method.kind for method in policy.methods_of(user)}
    not_saved = [kind for kind in allowed if kind.several or kind.kind not in saved]
    return not_saved[0] if not_saved else allowed[0]


def tabs_page(setup_mode: bool, **query) -> str:
    """The page holding the tabs: the forced set-up's, or the 2-Step Verification window."""
    return url_for("methods.setup" if setup_mode else "profile.two_step", **query)


def saved_kinds(user) -> set[str]:
    """The kinds of which `user` has one already (security keys: always room for another)."""
    return {method.kind for method in policy.methods_of(user) if not kind_of(method).several}


def tabs_context(user, setup_mode: bool, active: MethodKind, **extra) -> dict:
    """Everything the tabs component shows for `user` with the `active` tab open."""
    saved = saved_kinds(user)
    context = {
        "kinds": policy.allowed_kinds(user),
        "active": active,
        "saved_kinds": saved,
        "setup_mode": setup_mode,
        "page_url": tabs_page(setup_mode),
        "errors": {},
        "code_minutes": current_app.config["CODE_TTL_MINUTES"],
        "tab_notice": "",
        "error": "",
    }
    if active is AUTHENTICATOR and active.kind not in saved:
        pending = enrolment.pending_authenticator(user)
        if pending is not None:
            context["authenticator"] = enrolment.authenticator_display(user, pending)
    elif active is SECURITY_KEY:
        context["security_keys"] = webauthn_keys.keys_of(user)
    elif active.sends_code:
        pending = enrolment.pending_code_setup(user, active)
        sent_to = pending.destination if pending else ""
        context["sent_to"] = sent_to
        context["masked_sent_to"] = active.masked(sent_to) if sent_to else ""
        default = user.email if active is EMAIL_KIND else ""
        context["destination_value"] = sent_to or default
        if pending is not None and active.kind not in saved:
            context["setup_delivery"] = setup_delivery_context(
                user, setup_mode, active, pending, saved
            )
    context.update(extra)
    return context


def setup_delivery_context(
    user, setup_mode: bool, active: MethodKind, pending, saved: set[str]
) -> dict:
    """What the set-up's code box says became of the newest code sent to the address or
    number being added (templates/challenge/_delivery.html), with its ways on: ask again, or
    open the tab of another method to add (the code box has no button of its own for that).
    Sending a new code is the field's own button above, which sends to what is typed there
    (the failure alert asks to check it): the alert has none sending to the address first
    used. `saved`: saved_kinds(user), which the caller has already."""
    delivery = enrolment.setup_delivery(user, pending)
    other = next(
        (
            kind
            for kind in policy.allowed_kinds(user)
            if kind is not active and (kind.several or kind.kind not in saved)
        ),
        active,
    )
    links = deliveries.BoxLinks(
        status=url_for("methods.delivery_status", slug=active.slug),
        page=tabs_page(setup_mode, tab=active.slug),
        methods=tabs_page(setup_mode),
        methods_swap=url_for("methods.tab", slug=other.slug),
        target="#method-tabs",
        methods_fields=(("tab", other.slug),),
    )
    return {
        "delivery": delivery,
        "delivery_polls": deliveries.keeps_checking(delivery),
        "links": links,
        "masked": active.masked(pending.destination),
        "has_alternatives": other is not active,
        "check_destination": True,
        # The box's own line under the field says to look in the spam folder, whatever the
        # status (a provider may never report "delivered"): the status doesn't repeat it.
        "spam_hint_in_box": active is EMAIL_KIND,
    }


def window_extras(user) -> dict:
    """What the window's Recovery codes and Trusted devices cards show."""
    has_set, remaining = recovery_codes.status(user)
    return {
        "recovery": {
            "has_set": has_set,
            "remaining": remaining,
            "total": recovery_codes.COUNT,
        },
        "recovery_error": "",
        "trusted": {
            "allowed": trusted_devices.allowed_for(user),
            "devices": trusted_devices.devices_of(user),
            "this_device": trusted_devices.current_device_id(user, trusted_token()),
            "days": trusted_devices.days(),
        },
        "device_messages": [],
    }


def show_new_codes(user, next_url: str | None = None):
    """Make a new set for `user`, hold it for this session and lead to the shown-once page
    (an HX-Redirect for HTMX). Used by Regenerate, turning 2SV on and the staff set-up."""
    codes = recovery_codes.generate(user)
    recovery_codes.hold_for_display(current_session(), codes)
    target = url_for("recovery.new_codes", next=next_url) if next_url else None
    return redirect_to(target or url_for("recovery.new_codes"))
