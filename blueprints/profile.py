"""The profile page and the 2-Step Verification window: status, toggle, methods, sessions."""

from flask import Blueprint, flash, request, url_for
from flask_login import current_user, login_required

from blueprints.web import current_session, redirect_to, render, require_recent_auth
from blueprints.window import render_window, show_new_codes
from models.events import SESSIONS_ENDED
from services.account import sessions
from services.methods import enrolment, policy, recovery_codes
from services.security import security_log

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
    ended = sessions.end_others(user, keep=current_session())
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
