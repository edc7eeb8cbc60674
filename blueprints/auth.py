"""Signing in with the password, signing out, and asking for the password again (sudo mode)."""

from flask import Blueprint, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.extensions import from_setting, limiter
from blueprints.forms import ConfirmPasswordForm, LoginForm
from blueprints.language_choice import adopt_cookie_language
from blueprints.web import (
    NEXT_KEY,
    NOTICE_KEY,
    asking,
    current_session,
    end_session,
    keep_session,
    redirect_to,
    render,
    safe_next,
    trusted_token,
)
from services import signin
from services.account import sessions

bp = Blueprint("auth", __name__)

GENERIC_ERROR = signin.GENERIC_ERROR


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(from_setting("SIGN_IN_ATTEMPTS_PER_IP"), methods=["POST"])
def login():
    """The sign-in page; a right password leads on to the second step when 2SV is on."""
    next_url = request.values.get("next")
    if current_user.is_authenticated and request.method == "GET":
        return redirect_to(safe_next(next_url))
    form = LoginForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render(
            "auth/login.html", block="login_form", status=status, form=form, next_url=next_url
        )
    started = signin.start(
        form.email.data,
        form.password.data,
        asking(),
        trusted_token=trusted_token(),
        replacing=current_session(),
    )
    if not started.ok:
        return render(
            "auth/login.html",
            block="login_form",
            status=422,
            form=form,
            next_url=next_url,
            error=started.message,
        )
    next_url = safe_next(next_url)
    keep_session(started.session, started.token)
    adopt_cookie_language(started.session.user)
    if started.outcome is signin.Outcome.SIGNED_IN:
        return redirect_to(next_url)
    session[NEXT_KEY] = next_url
    if started.sent is not None:
        session[NOTICE_KEY] = {"ok": started.sent.ok, "message": started.sent.message}
    if started.outcome is signin.Outcome.SETUP:
        return redirect_to(url_for("methods.setup"))
    return redirect_to(url_for("challenge.verify"))


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out: the session row is deleted, so the cookie no longer works anywhere."""
    end_session()
    return redirect_to(url_for("auth.login"))


@bp.route("/confirm-password", methods=["GET", "POST"])
@limiter.limit(from_setting("SIGN_IN_ATTEMPTS_PER_IP"), methods=["POST"])
@login_required
def confirm_password():
    """Ask for the password again before a change to security settings; wrong passwords
    are limited per account (signin.confirm_password) as well as per IP."""
    form = ConfirmPasswordForm()
    next_url = safe_next(request.values.get("next"))
    if form.validate_on_submit():
        recheck = signin.confirm_password(current_user, form.password.data)
        if recheck is signin.Recheck.RIGHT:
            sessions.mark_authenticated(current_session())
            return redirect_to(next_url)
        if recheck is signin.Recheck.LIMITED:
            # Too many wrong passwords for this account: this session ends (429).
            end_session()
            return render(
                "auth/login.html",
                block="login_form",
                status=429,
                form=LoginForm(formdata=None),
                next_url=next_url,
                error=_(signin.RECHECK_LIMITED_MESSAGE),
            )
        form.password.errors.append(_("That password is not right."))
    status = 422 if request.method == "POST" else 200
    return render(
        "auth/confirm_password.html", block="content", status=status, form=form, next_url=next_url
    )
