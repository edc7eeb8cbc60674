"""Recovery codes and trusted devices: the shown-once page (Download, Print), Regenerate,
Revoke and Revoke all on the 2-Step Verification window, and "Use a recovery code" at the
sign-in challenge. The rules live in services/recovery_codes.py and trusted_devices.py."""

from flask import Blueprint, flash, make_response, request, url_for
from flask_login import current_user, login_required

from blueprints.web import fail, redirect_to, render, require_recent_auth, safe_next
from blueprints.window import render_window, show_new_codes
from services import recovery_codes, sessions, trusted_devices
from services.challenge import Screen, Step

bp = Blueprint("recovery", __name__)

GONE_MESSAGE = (
    "For your security, recovery codes are shown only once. If you didn't save them, "
    "use Regenerate to get a new set."
)


def _current_user():
    return current_user._get_current_object()


# --- the shown-once page --------------------------------------------------------------------


@bp.route("/profile/2sv/recovery-codes/new")
@login_required
def new_codes():
    """The codes just made, with Download, Print and "I've saved them"."""
    codes = recovery_codes.held_for_display(sessions.current())
    if not codes:
        flash(GONE_MESSAGE)
        return redirect_to(url_for("profile.two_step"))
    response = render(
        "profile/recovery_codes.html",
        codes=codes,
        next_url=safe_next(request.args.get("next"), url_for("profile.two_step")),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/profile/2sv/recovery-codes/new.txt")
@login_required
def download():
    """The same codes as a .txt file; only while the shown-once page may show them."""
    codes = recovery_codes.held_for_display(sessions.current())
    if not codes:
        fail(404, GONE_MESSAGE)
    user = _current_user()
    lines = [
        f"Recovery codes for {user.email}",
        "",
        "Each code signs you in once when you can't get a verification code.",
        "Keep them somewhere safe, like a password manager.",
        "",
        *codes,
        "",
    ]
    response = make_response("\r\n".join(lines))
    response.mimetype = "text/plain"
    response.headers["Content-Disposition"] = 'attachment; filename="recovery-codes.txt"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/profile/2sv/recovery-codes/done", methods=["POST"])
@login_required
def done():
    """ "I've saved them": the codes are not shown again."""
    recovery_codes.stop_displaying(sessions.current())
    return redirect_to(safe_next(request.form.get("next"), url_for("profile.two_step")))


@bp.route("/profile/2sv/recovery-codes", methods=["POST"])
@login_required
@require_recent_auth
def regenerate():
    """Regenerate: a new set of ten; the old codes stop working at once."""
    user = _current_user()
    decision = recovery_codes.can_generate(user)
    if not decision:
        return _window_card(user, "recovery", status=409, recovery_error=decision.reason)
    return show_new_codes(user)


@bp.route("/profile/2sv/recovery-codes/left")
@login_required
def left():
    """After signing in with a recovery code: how many are left, then on to `next`."""
    user = _current_user()
    return render(
        "recovery/left.html",
        count=recovery_codes.remaining(user),
        next_url=safe_next(request.args.get("next")),
    )


# --- trusted devices on the window ----------------------------------------------------------


def _window_card(user, block: str, status: int = 200, **extra):
    """Re-render one card of the window (HTMX) or the whole window."""
    return render_window(user, block=block, status=status, **extra)


def _after_change(user, message: str):
    if request.htmx:
        return _window_card(user, "devices", device_messages=[message])
    flash(message)
    return redirect_to(url_for("profile.two_step"))


@bp.route("/profile/2sv/devices/<device_id>/revoke", methods=["POST"])
@login_required
@require_recent_auth
def revoke_device(device_id):
    """Revoke one trusted device: it will be asked for a code again."""
    user = _current_user()
    device = trusted_devices.find(user, device_id)
    if device is None:
        fail(404, "That device isn't in your list of trusted devices.")
    trusted_devices.revoke(user, device)
    return _after_change(user, f"{device.label} will be asked for a code again.")


@bp.route("/profile/2sv/devices/revoke-all", methods=["POST"])
@login_required
@require_recent_auth
def revoke_all_devices():
    """Revoke all: every device will be asked for a code again."""
    user = _current_user()
    revoked = trusted_devices.revoke_all(user, "Revoke all")
    if not revoked:
        return _after_change(user, "No devices were trusted.")
    return _after_change(
        user,
        f"Revoked {revoked} device{'s' if revoked != 1 else ''}. "
        "Each will be asked for a code again.",
    )


# --- "Use a recovery code" at the sign-in challenge -----------------------------------------

CHALLENGE_TEMPLATE = "recovery/challenge.html"


def _show_form(status: int = 200, errors=()):
    return render(
        CHALLENGE_TEMPLATE,
        block="challenge",
        status=status,
        errors=[message for message in errors if message],
    )


def use_code(user, screen: Screen):
    """ "Use a recovery code": the form (a plain GET that changes nothing). Routed as
    challenge.recovery, one of the verification steps."""
    if screen.step is Step.NOT_NEEDED:
        return redirect_to(url_for("challenge.verify"))
    return _show_form()


def submit_code(user, screen: Screen):
    """Check a recovery code; a right one signs the person in and says how many are left.
    Routed as challenge.submit_recovery (per-IP limited with the other code checks)."""
    if screen.step is Step.NOT_NEEDED:
        return redirect_to(url_for("challenge.verify"))
    result = recovery_codes.verify_at_sign_in(user, request.form.get("recovery_code", ""))
    if result.ok:
        return redirect_to(url_for("recovery.left", next=safe_next(result.next_url)))
    return _show_form(status=result.status, errors=[result.message])
