"""The profile page and the 2-Step Verification window: status, toggle, methods, sessions."""

from flask import Blueprint, flash, get_flashed_messages, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext, refresh
from flask_login import current_user, login_required

from blueprints.language_choice import remember_in_cookie
from blueprints.web import current_session, redirect_to, render, require_recent_auth
from blueprints.window import render_window, show_new_codes
from models.events import SESSIONS_ENDED
from services import language
from services.account import sessions
from services.methods import enrolment, policy, recovery_codes
from services.security import security_log

bp = Blueprint("profile", __name__, url_prefix="/profile")


@bp.route("")
@login_required
def show():
    """The person's profile: name, email, centers, and the way to 2-Step Verification."""
    return render_profile()


def render_profile(status: int = 200, language_error: str = ""):
    """The profile page (again with `language_error` when the language choice was refused)."""
    return render(
        "profile/profile.html",
        status=status,
        memberships=current_user.memberships_with_centers(),
        methods=policy.methods_of(current_user),
        messages=get_flashed_messages(),
        language_error=language_error,
    )


@bp.route("/language", methods=["POST"])
@login_required
def choose_language():
    """**Language**: the person's choice, kept with the login (emails and text messages use
    it too) and in this browser's cookie (the sign-in page after signing out)."""
    code = request.form.get("language", "")
    if not language.is_supported(code):
        return render_profile(422, _("Choose English or Español."))
    language.set_language(current_user, code)
    refresh()  # the message below, and the page after, in the new language
    flash(_("Language saved."))
    return remember_in_cookie(redirect_to(url_for("profile.show")), code)


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
            toggle_error=_("Choose whether 2-Step Verification is on or off."),
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
        ngettext("Signed out %(num)d other session.", "Signed out %(num)d other sessions.", ended)
        if ended
        else _("You weren't signed in anywhere else.")
    )
    if request.htmx:
        return render_window(user, block="sessions", session_messages=[message])
    flash(message)
    return redirect_to(url_for("profile.two_step"))
