"""Recovery codes and trusted devices: the shown-once page (Download, Print), Regenerate,
Revoke and Revoke all on the 2-Step Verification window, and how many codes are left after
one signed the person in ("Use a recovery code" itself is a sign-in step:
blueprints/challenge.py). The rules live in services/methods/recovery_codes.py and
trusted_devices.py."""

from flask import Blueprint, flash, make_response, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required

from blueprints.web import (
    current_session,
    fail,
    redirect_to,
    render,
    require_recent_auth,
    safe_next,
)
from blueprints.window import render_window, show_new_codes
from services.language import N_
from services.methods import recovery_codes, trusted_devices

bp = Blueprint("recovery", __name__)

GONE_MESSAGE = N_(
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
    codes = recovery_codes.held_for_display(current_session())
    if not codes:
        flash(_(GONE_MESSAGE))
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
    codes = recovery_codes.held_for_display(current_session())
    if not codes:
        fail(404, _(GONE_MESSAGE))
    user = _current_user()
    lines = [
        _("Recovery codes for %(email)s", email=user.email),
        "",
        _("Each code signs you in once when you can't get a verification code."),
        _("Keep them somewhere safe, like a password manager."),
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
    recovery_codes.stop_displaying(current_session())
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
        fail(404, _("That device isn't in your list of trusted devices."))
    trusted_devices.revoke(user, device)
    return _after_change(user, _("%(device)s will be asked for a code again.", device=device.label))


@bp.route("/profile/2sv/devices/revoke-all", methods=["POST"])
@login_required
@require_recent_auth
def revoke_all_devices():
    """Revoke all: every device will be asked for a code again."""
    user = _current_user()
    revoked = trusted_devices.revoke_all(user, "Revoke all")
    if not revoked:
        return _after_change(user, _("No devices were trusted."))
    return _after_change(
        user,
        ngettext(
            "Revoked %(num)d device. It will be asked for a code again.",
            "Revoked %(num)d devices. Each will be asked for a code again.",
            revoked,
        ),
    )
