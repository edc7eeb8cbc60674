"""Signing in with the password, signing out, and asking for the password again (sudo mode)."""

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from blueprints.forms import ConfirmPasswordForm, LoginForm
from blueprints.web import redirect_to, render, safe_next
from services import challenge, sessions, signin
from services.extensions import from_setting, limiter

bp = Blueprint("auth", __name__)

GENERIC_ERROR = "That email and password don't match an account. Check them and try again."


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
    user = signin.check_password(form.email.data, form.password.data)
    if user is None:
        return render(
            "auth/login.html",
            block="login_form",
            status=422,
            form=form,
            next_url=next_url,
            error=GENERIC_ERROR,
        )
    return redirect_to(challenge.after_password(user, safe_next(next_url)))


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out: the session row is deleted, so the cookie no longer works anywhere."""
    signin.sign_out()
    return redirect_to(url_for("auth.login"))


@bp.route("/confirm-password", methods=["GET", "POST"])
@login_required
def confirm_password():
    """Ask for the password again before a change to security settings."""
    form = ConfirmPasswordForm()
    next_url = safe_next(request.values.get("next"))
    if form.validate_on_submit():
        if signin.confirm_password(current_user, form.password.data):
            sessions.mark_authenticated(sessions.current())
            return redirect_to(next_url)
        form.password.errors.append("That password is not right.")
    status = 422 if request.method == "POST" else 200
    return render(
        "auth/confirm_password.html", block="content", status=status, form=form, next_url=next_url
    )
