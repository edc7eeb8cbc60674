"""The profile page and the 2-Step Verification window: status, toggle, methods, sessions."""

from flask import Blueprint, flash, get_flashed_messages, request, url_for
from flask_login import current_user, login_required

from blueprints.web import redirect_to, render, require_recent_auth
from models.events import SESSIONS_ENDED
from services import enrolment, policy, recovery_codes, security_log, sessions
from services.methods import kind_of

bp = Blueprint("profile", __name__, url_prefix="/profile")


@bp.route("")
@login_required
def show():
    """The person's profile: name, email, centers, and the way to 2-Step Verification."""
    return render(
        "profile/profile.html",
        memberships=current_user.memberships_with_centers(),
        methods=policy.methods_of(current_user),
    )


def window_context(user, **extra) -> dict:
    """What the 2-Step Verification window shows."""
    from blueprints import recovery
    from blueprints.methods import first_tab, tabs_context

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
        "this_session": sessions.current(),
        "events": security_log.recent_events(user, limit=8),
    }
    context.update(recovery.window_extras(user))
    tabs = extra.pop("tabs", None)
    if tabs is None:
        tabs = tabs_context(user, False, first_tab(user, request.args.get("tab", "")))
    context.update(tabs)
    context.update(extra)
    return context


def render_window(user, block: str | None = None, status: int = 200, **extra):
    """The window page, or one of its blocks for HTMX."""
    extra.setdefault("messages", get_flashed_messages())
    return render(
        "profile/two_step.html", block=block, status=status, **window_context(user, **extra)
    )


@bp.route("/2sv")
@login_required
def two_step():
    """The 2-Step Verification window."""
    return render_window(current_user._get_current_object())


@bp.route("/2sv/toggle", methods=["POST"])
@login_required
@require_recent_auth
def toggle():
    """The enable switch: a real form underneath, re-rendering itself in place."""
    user = current_user._get_current_object()
    wanted = request.form.get("enabled", "")
    if wanted not in ("on", "off"):
        return render_window(
            user,
            block="toggle",
            status=422,
            toggle_error="Choose whether 2-Step Verification is on or off.",
        )
    outcome = enrolment.set_enabled(user, wanted == "on")
    if not outcome.ok:
        return render_window(
            user, block="toggle", status=outcome.status, toggle_error=outcome.message
        )
    if wanted == "on" and recovery_codes.needs_first_set(user):
        # The first time 2SV is on: the person's recovery codes, shown once.
        from blueprints.recovery import show_new_codes

        flash(outcome.message)
        return show_new_codes(user)
    if request.htmx:
        if wanted == "on":
            return render_window(user, block="toggle", toggle_notice=outcome.message)
        return render_window(user, block="toggle", reminder=outcome.message)
    flash(outcome.message)
    return redirect_to(url_for("profile.two_step"))


@bp.route("/2sv/sessions/end-others", methods=["POST"])
@login_required
@require_recent_auth
def end_other_sessions():
    """ "Sign out other sessions": every other device of this person is signed out."""
    user = current_user._get_current_object()
    ended = sessions.end_others(user, keep=sessions.current())
    security_log.record(SESSIONS_ENDED, user, detail=f"{ended} other session(s)", notify=False)
    message = (
        f"Signed out {ended} other session{'s' if ended != 1 else ''}."
        if ended
        else "You weren't signed in anywhere else."
    )
    if request.htmx:
        return render_window(user, block="sessions", session_messages=[message])
    flash(message)
    return redirect_to(url_for("profile.two_step"))
