"""Forgot password, the reset link (with the second step, or a recovery code, first when 2SV
is on), and the profile's Change password. The rules and side effects live in
services/signin/password_reset.py."""

from collections.abc import Callable
from functools import wraps

from flask import (
    Blueprint,
    current_app,
    flash,
    get_flashed_messages,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, ValidationError

import models
from blueprints.extensions import code_attempts_limit, from_setting, limiter, send_codes_limit
from blueprints.web import allow_pending, current_session, redirect_to, relying_party, render
from services.language import N_
from services.methods import challenge, deliveries, kind_of, policy, webauthn_keys
from services.methods.challenge import Screen, Step
from services.security import throttle
from services.signin import password_reset

bp = Blueprint("passwords", __name__)

SENT_MESSAGE = N_(
    "If an account exists for that email address, we sent it a link to choose a new password. "
    "The link works for %(minutes)s minutes."
)
VERIFIED = N_("Thanks, that's you. Now choose a new password.")
VERIFIED_CATEGORY = "password_reset_verified"
# The reset component's step for "Use a recovery code" (the others are challenge.Step values).
RECOVERY_STEP = "recovery"
RESET_DONE = N_(
    "Your password was changed and you were signed out everywhere. Sign in with it now."
)
CHANGED = N_("Your password was changed. Every other session was signed out.")

_PASSWORD_LENGTH = Length(max=1024, message=_l("That password is too long."))


class ForgotPasswordForm(FlaskForm):
    """The address a reset link goes to."""

    email = EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=254, message=_l("An email address has at most 254 characters.")),
        ],
    )

    def validate_email(self, field):
        value = (field.data or "").strip()
        if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
            raise ValidationError(_("Enter an email address, like name@example.com."))


class NewPasswordForm(FlaskForm):
    """A new password, typed twice."""

    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(_l("Enter a new password.")), _PASSWORD_LENGTH],
    )
    confirm_password = PasswordField(
        _l("Confirm new password"),
        validators=[DataRequired(_l("Type the new password again.")), _PASSWORD_LENGTH],
    )


class ChangePasswordForm(NewPasswordForm):
    """The current password, then the new one twice."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Enter your current password.")), _PASSWORD_LENGTH],
    )


def _apply(form: FlaskForm, outcome: password_reset.Outcome) -> list[str]:
    """Put a refusal's messages on its field; return those that belong to no field."""
    field = getattr(form, outcome.field, None) if outcome.field else None
    if field is None:
        return list(outcome.messages)
    field.errors = list(field.errors) + list(outcome.messages)
    return []


def _after_response(job: Callable[[], None]) -> Callable[[], None]:
    """Run `job` once the answer has been sent, with the app and the database at hand."""
    app = current_app._get_current_object()

    def run() -> None:
        with app.app_context():
            opened = models.db.connect(reuse_if_open=True)
            try:
                job()
            except Exception:
                app.logger.exception("A job after the response failed")
            finally:
                if opened and not models.db.is_closed():
                    models.db.close()

    return run


# --- Forgot password --------------------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(from_setting("PASSWORD_RESET_REQUESTS_PER_IP"), methods=["POST"])
@allow_pending
def forgot():
    """Ask for a reset link. The answer is the same whether or not the address has a login."""
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render("passwords/forgot.html", block="forgot", status=status, form=form)
    deliver = password_reset.request_link(
        form.email.data,
        lambda token: url_for("passwords.reset", token=token, _external=True),
    )
    message = _(SENT_MESSAGE, minutes=current_app.config["PASSWORD_RESET_MINUTES"])
    response = render("passwords/forgot.html", block="forgot", form=None, sent=message)
    response.call_on_close(_after_response(deliver))
    return response


# --- The reset link ---------------------------------------------------------------------------


# This browser's progress with a reset link (services/signin/password_reset.py), in the cookie.
PROGRESS_KEY = "password_reset"


def _progress() -> dict:
    """This browser's progress with reset links: a copy the service may change, then `_keep`."""
    stored = session.get(PROGRESS_KEY)
    return dict(stored) if isinstance(stored, dict) else {}


def _keep(progress: dict) -> None:
    """Store `progress` in the cookie again (or forget it when it ended)."""
    if progress:
        session[PROGRESS_KEY] = progress
    else:
        session.pop(PROGRESS_KEY, None)


def _link_or_page(token: str):
    """(link, None) when the link works, else (None, the page that says why)."""
    link = password_reset.open_link(token)
    if link.valid:
        return link, None
    status = 404 if link.state is password_reset.LinkState.UNKNOWN else 410
    page = render("passwords/reset.html", block="reset", status=status, problem=link.message)
    page.headers["Cache-Control"] = "no-store"
    return None, page


def _show(
    link,
    token,
    *,
    form=None,
    status=200,
    step=None,
    recovery=False,
    alerts=(),
    info="",
    code_errors=(),
):
    """The reset component: the second step (picker, code box, or with `recovery` the
    recovery-code form; `code_errors` go on its field) or the new-password form."""
    row = link.row
    context = {
        "token": token,
        "user": row.user,
        "alerts": [message for message in alerts if message],
        "info": info,
        "code_errors": [message for message in code_errors if message],
    }
    progress = _progress()
    if password_reset.is_verified(row, progress):
        context["step"] = "password"
        context["form"] = form or NewPasswordForm()
    else:
        screen: Screen = password_reset.screen(row, progress)
        step = step or screen.step
        context.update(_verification_context(row.user, screen, step))
        if step is Step.CODE and screen.method is not None and kind_of(screen.method).sends_code:
            context.update(_delivery_context(row, token, screen.method))
        if recovery:
            context["step"] = RECOVERY_STEP
    response = render("passwords/reset.html", block="reset", status=status, **context)
    response.headers["Cache-Control"] = "no-store"
    return response


def _second_step(view):
    """For the second step's POSTs: the link must work and its step must still be ahead; once
    it is passed (in another tab, say), the answer is the new-password form."""

    @wraps(view)
    def wrapper(token):
        link, page = _link_or_page(token)
        if page is not None:
            return page
        if password_reset.is_verified(link.row, _progress()):
            return _show(link, token)
        return view(link, token)

    return wrapper


def _after_send(link, token, result: challenge.SendResult):
    """The code box after a send: what was sent where, or why nothing was."""
    if result.ok:
        return _show(link, token, info=result.message)
    return _show(link, token, status=result.status, alerts=[result.message])


def _verification_context(user, screen: Screen, step: Step) -> dict:
    context = {
        "step": step.value,
        "has_alternatives": screen.has_alternatives,
        "choices": [],
        "method_kind": None,
        "masked": "",
        "next_send_words": "",
    }
    if step is Step.PICKER:
        context["choices"] = [
            {
                "id": each.id,
                "label": kind_of(each).label,
                # One "Security Key" entry stands for all of the person's keys: no name.
                "masked": "" if kind_of(each).several else kind_of(each).masked(each.destination),
            }
            for each in screen.choices
        ]
    elif screen.method is not None:
        method_kind = kind_of(screen.method)
        context["method_kind"] = method_kind
        context["masked"] = method_kind.masked(screen.method.destination)
        if method_kind.sends_code:
            retry_at = throttle.send_retry_at(user, screen.method.destination)
            if retry_at is not None:
                context["next_send_words"] = throttle.in_words(retry_at)
    return context


def _delivery_context(row, token: str, method) -> dict:
    """The newest code of this reset link sent to `method`, and whether the page should keep
    asking what became of it (templates/challenge/_delivery.html). A failure's ways on are
    the code box's own Send new code and Try another method: the alert repeats neither."""
    delivery = deliveries.newest(
        row.user, password_reset.PURPOSE, method.destination, since=row.created_at
    )
    links = deliveries.BoxLinks(
        status=url_for("passwords.delivery_status", token=token),
        page=url_for("passwords.reset", token=token),
    )
    return {
        "delivery": delivery,
        "delivery_polls": deliveries.keeps_checking(delivery),
        "links": links,
    }


@bp.route("/reset-password/<token>/delivery", methods=["GET"])
@allow_pending
def delivery_status(token):
    """What became of the newest code (HTMX polls it every 3 s); without HTMX, or once the
    code box no longer shows an email or text code, the reset page itself."""
    link, page = _link_or_page(token)
    if page is not None:
        return page
    progress = _progress()
    screen: Screen = password_reset.screen(link.row, progress)
    method = screen.method
    if (
        not request.htmx
        or password_reset.is_verified(link.row, progress)
        or screen.step is not Step.CODE
        or not kind_of(method).sends_code
    ):
        return redirect_to(url_for("passwords.reset", token=token))
    response = render(
        "challenge/_delivery.html",
        masked=kind_of(method).masked(method.destination),
        has_alternatives=screen.has_alternatives,
        **_delivery_context(link.row, token, method),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@limiter.limit(from_setting("SIGN_IN_ATTEMPTS_PER_IP"), methods=["POST"])
@allow_pending
def reset(token):
    """ "Choose a new password" - after the second step when 2-Step Verification is on."""
    link, page = _link_or_page(token)
    if page is not None:
        return page
    if request.method == "GET":
        # "Try another method" is this page with ?methods, "Use a recovery code" with
        # ?recovery (GETs that change nothing).
        step = Step.PICKER if "methods" in request.args else None
        recovery = "recovery" in request.args
        # A security key's step sends the browser back here once it is passed.
        info = " ".join(get_flashed_messages(category_filter=[VERIFIED_CATEGORY]))
        return _show(link, token, step=step, recovery=recovery, info=info)
    form = NewPasswordForm()
    progress = _progress()
    if not form.validate_on_submit():
        if not password_reset.is_verified(link.row, progress):
            return _show(link, token, status=403, alerts=[_(password_reset.VERIFY_FIRST)])
        return _show(link, token, form=form, status=422)
    outcome = password_reset.reset_password(
        link.row, progress, form.new_password.data, form.confirm_password.data
    )
    _keep(progress)
    if outcome.ok:
        flash(_(RESET_DONE))
        return redirect_to(url_for("auth.login"))
    if outcome.status == 410:
        return _link_or_page(token)[1]
    alerts = _apply(form, outcome)
    return _show(link, token, form=form, status=outcome.status, alerts=alerts)


@bp.route("/reset-password/<token>/method", methods=["POST"])
@send_codes_limit
@allow_pending
@_second_step
def choose_method(link, token):
    """The picker's choice (`method_id`): email and text message get a code now."""
    progress = _progress()
    result = password_reset.choose(link.row, progress, request.form.get("method_id", ""))
    _keep(progress)
    if result.method is None or result.status == 502:
        return _show(link, token, step=Step.PICKER, status=result.status, alerts=[result.message])
    return _after_send(link, token, result)


@bp.route("/reset-password/<token>/resend", methods=["POST"])
@send_codes_limit
@allow_pending
@_second_step
def resend_code(link, token):
    """ "Send new code" to the challenged email address or phone."""
    return _after_send(link, token, password_reset.resend(link.row, _progress()))


@bp.route("/reset-password/<token>/verify", methods=["POST"])
@code_attempts_limit
@allow_pending
@_second_step
def verify_code(link, token):
    """Check the code; a right one opens the new-password form (nobody is signed in)."""
    progress = _progress()
    if password_reset.screen(link.row, progress).step is Step.PICKER:
        return _show(link, token, status=422, alerts=[_(challenge.CHOOSE_MESSAGE)])
    result = password_reset.verify(link.row, progress, request.form.get("code", ""))
    _keep(progress)
    if result.ok:
        return _show(link, token, info=_(VERIFIED))
    return _show(link, token, status=result.status, code_errors=[result.message])


@bp.route("/reset-password/<token>/recovery", methods=["POST"])
@code_attempts_limit
@allow_pending
@_second_step
def verify_recovery(link, token):
    """A recovery code in place of the second step: a right one opens the new-password form
    (nobody is signed in); wrong ones count towards the same pause as wrong codes."""
    progress = _progress()
    result = password_reset.verify_recovery(
        link.row, progress, request.form.get("recovery_code", "")
    )
    _keep(progress)
    if result.ok:
        return _show(link, token, info=_(VERIFIED))
    return _show(link, token, recovery=True, status=result.status, code_errors=[result.message])


# --- The second step with a security key (JSON for static/js/webauthn.js) ------------------


def _key_json(link, token, result: challenge.KeyResult):
    if result.ok and result.options is not None:
        response = current_app.response_class(result.options, mimetype="application/json")
    elif result.ok:
        flash(_(VERIFIED), VERIFIED_CATEGORY)
        response = jsonify({"redirect": url_for("passwords.reset", token=token)})
    else:
        response = jsonify({"error": result.message})
        response.status_code = result.status
    response.headers["Cache-Control"] = "no-store"
    return response


def _key_link(token):
    """(link, None) for a link that still needs its second step, else (None, a JSON answer)."""
    if not policy.security_keys_available():
        return None, (jsonify({"error": _(webauthn_keys.UNAVAILABLE)}), 404)
    link = password_reset.open_link(token)
    if not link.valid:
        status = 404 if link.state is password_reset.LinkState.UNKNOWN else 410
        return None, (jsonify({"error": link.message}), status)
    if password_reset.is_verified(link.row, _progress()):
        # Passed already (another tab): the script follows this to the new-password form.
        return None, redirect(url_for("passwords.reset", token=token), 303)
    return link, None


@bp.route("/reset-password/<token>/security-key/options", methods=["POST"])
@send_codes_limit
@allow_pending
def security_key_options(token):
    """The options for navigator.credentials.get() over the person's keys."""
    link, answer = _key_link(token)
    if answer is not None:
        return answer
    result = password_reset.key_options(link.row, _progress(), relying_party())
    return _key_json(link, token, result)


@bp.route("/reset-password/<token>/security-key", methods=["POST"])
@code_attempts_limit
@allow_pending
def submit_security_key(token):
    """Check the key's answer; a good one opens the new-password form (nobody is signed in)."""
    link, answer = _key_link(token)
    if answer is not None:
        return answer
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    progress = _progress()
    result = password_reset.verify_key(link.row, progress, relying_party(), credential)
    _keep(progress)
    return _key_json(link, token, result)


# --- Change password (signed in) --------------------------------------------------------------


@bp.route("/profile/password", methods=["GET", "POST"])
@login_required
@limiter.limit(from_setting("SIGN_IN_ATTEMPTS_PER_IP"), methods=["POST"])
def change():
    """Change password: the current one, then the new one twice; other sessions end."""
    user = current_user._get_current_object()
    form = ChangePasswordForm()
    messages = get_flashed_messages()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render(
            "passwords/change.html", block="change", status=status, form=form, messages=messages
        )
    outcome = password_reset.change_password(
        user,
        current_session(),
        form.current_password.data,
        form.new_password.data,
        form.confirm_password.data,
    )
    if not outcome.ok:
        alerts = _apply(form, outcome)
        return render(
            "passwords/change.html", block="change", status=outcome.status, form=form, alerts=alerts
        )
    if request.htmx:
        return render(
            "passwords/change.html",
            block="change",
            form=ChangePasswordForm(formdata=None),
            messages=[_(CHANGED)],
        )
    flash(_(CHANGED))
    return redirect_to(url_for("passwords.change"))
