"""The 2-Step Verification window as JSON: its state, the switch, adding, confirming and
deleting methods, a new set of recovery codes, and asking for the password again (the web's
sudo mode).

Every rule is the web's (services/methods/enrolment.py, services/methods/policy.py): the same
limits, events and emails. One difference is the mobile app's (SPEC Decisions 21): the
first method saved through the API turns 2-Step Verification on.
"""

from datetime import timedelta
from functools import wraps

from flask import current_app, g
from flask_babel import gettext

from blueprints.api.core import ApiProblem, bp, responses, seconds_until, signed_in, spec
from blueprints.api.schemas import (
    AddMethod,
    AuthenticatorStarted,
    CodeSent,
    ConfirmMethod,
    Method,
    MethodChoice,
    MethodSaved,
    PendingAuthenticator,
    PendingCode,
    Reauth,
    Reauthenticated,
    RecoveryCodes,
    TwoStep,
    TwoStepChange,
    utc,
)
from blueprints.extensions import code_attempts_limit, limiter, send_codes_limit
from models import crypto
from models.verification import TOTP, PendingSetup
from services import signin
from services.account import sessions
from services.language import N_
from services.methods import BY_KIND, enrolment, kind_of, policy, recovery_codes, totp

TAG = "2-Step Verification"
SIGNED_IN = {"bearerAuth": []}


def choice(method) -> MethodChoice:
    """A method as the sign-in picker lists it, destination masked (as on the web)."""
    method_kind = kind_of(method)
    return MethodChoice(
        id=method.id,
        kind=method.kind,
        label=method_kind.label,
        masked=method_kind.masked(method.destination),
    )


def method_document(method) -> Method:
    """A saved method as the window shows it: the picker's fields, added and last used."""
    return Method(
        **choice(method).model_dump(),
        added_at=utc(method.created_at),
        last_used_at=utc(method.last_used_at),
    )


def window(user) -> TwoStep:
    """What the 2-Step Verification window shows, as a document."""
    return TwoStep(
        enabled=bool(user.two_step_enabled),
        required=bool(user.requires_2sv),
        methods=[method_document(method) for method in policy.methods_of(user)],
        recovery_codes_left=recovery_codes.remaining(user),
    )


def refusal(outcome: enrolment.Outcome) -> ApiProblem:
    """A refused enrolment step as a problem, with the web's words and status."""
    extra = {}
    if outcome.retry_at is not None:
        extra["retry_after"] = seconds_until(outcome.retry_at)
    if outcome.field:
        extra["errors"] = {outcome.field: outcome.message}
    return ApiProblem(outcome.status, outcome.message, **extra)


def recent_sign_in(view):
    """Changes need a sign-in (or the password again) within SUDO_MINUTES: else 403
    `reauth_required`, and POST /reauth renews it."""

    @wraps(view)
    def wrapper(user, *args, **kwargs):
        if not sessions.is_recent(g.user_session):
            raise ApiProblem(
                403,
                N_("For your security, enter your password again before changing these settings."),
                code="reauth_required",
            )
        return view(user, *args, **kwargs)

    return wrapper


@bp.get("/two-step")
@signed_in
@spec.validate(resp=responses(401, HTTP_200=TwoStep), tags=[TAG], security=SIGNED_IN)
def two_step(user):
    """Whether 2-Step Verification is on, whether it is required, and the saved methods."""
    return window(user).model_dump(mode="json")


@bp.put("/two-step")
@signed_in
@recent_sign_in
@spec.validate(
    json=TwoStepChange,
    resp=responses(401, 403, 409, 422, HTTP_200=TwoStep),
    tags=[TAG],
    security=SIGNED_IN,
)
def change_two_step(user, json: TwoStepChange):
    """Turn 2-Step Verification on (needs a method: 422) or off (staff cannot: 409)."""
    outcome = enrolment.set_enabled(user, json.enabled)
    if not outcome.ok:
        raise refusal(outcome)
    return window(user).model_dump(mode="json")


@bp.post("/two-step/methods")
@send_codes_limit
@signed_in
@recent_sign_in
@spec.validate(
    json=AddMethod,
    resp=responses(401, 403, 409, 422, 502, HTTP_201=AuthenticatorStarted, HTTP_202=CodeSent),
    tags=[TAG],
    security=SIGNED_IN,
)
def add_method(user, json: AddMethod):
    """Start adding a method: an authenticator key (201), or a code sent to an email address
    or a mobile number (202); POST /two-step/methods/confirm saves it."""
    return start_adding(user, json.kind, json.destination)


def start_adding(user, kind: str, destination: str | None):
    """Start adding a method of `kind` (the window, and a staff login's set-up at sign-in):
    the pending authenticator key (201) or the code sent to `destination` (202)."""
    method_kind = BY_KIND[kind]
    if kind == TOTP:
        outcome = enrolment.start_authenticator(user)
        if not outcome.ok:
            raise refusal(outcome)
        pending = enrolment.pending_authenticator(user)
        secret = crypto.decrypt(pending.secret)
        body = AuthenticatorStarted(
            pending=PendingAuthenticator(
                id=pending.id,
                key=secret,
                otpauth_uri=totp.provisioning_uri(secret, user.email),
            )
        )
        return body.model_dump(mode="json"), 201
    if destination is None and kind == "email":
        destination = user.email  # the web's Email tab is filled in with it too
    outcome = enrolment.send_setup_code(user, method_kind, destination or "")
    if not outcome.ok:
        raise refusal(outcome)
    pending = PendingSetup.get(PendingSetup.user == user, PendingSetup.kind == kind)
    body = CodeSent(
        pending=PendingCode(id=pending.id, masked=method_kind.masked(pending.destination)),
        message=outcome.message,
    )
    return body.model_dump(mode="json"), 202


def confirm_adding(user, pending_id: int, code: str):
    """Save the method being added once its code is right (the web's rules and emails);
    the saved method, or a problem."""
    pending = PendingSetup.get_or_none(PendingSetup.id == pending_id, PendingSetup.user == user)
    if pending is None:
        raise ApiProblem(404, N_("There is no set-up waiting with that id. Start again."))
    if pending.kind == TOTP:
        outcome = enrolment.confirm_authenticator(user, code)
    else:
        outcome = enrolment.confirm_setup_code(user, BY_KIND[pending.kind], code)
    if not outcome.ok:
        raise refusal(outcome)
    return outcome.method


@bp.post("/two-step/methods/confirm")
@code_attempts_limit
@signed_in
@recent_sign_in
@spec.validate(
    json=ConfirmMethod,
    resp=responses(401, 403, 404, 409, 422, HTTP_201=MethodSaved),
    tags=[TAG],
    security=SIGNED_IN,
)
def confirm_method(user, json: ConfirmMethod):
    """Save the method being added once its code is typed back; the first method saved
    turns 2-Step Verification on (and the "device added" email goes, as on the web)."""
    method = confirm_adding(user, json.pending_id, json.code)
    turned_on = enrolment.turn_on_with_first_method(user)
    if not turned_on.ok:
        raise refusal(turned_on)
    body = MethodSaved(method=method_document(method), enabled=user.two_step_enabled)
    return body.model_dump(mode="json"), 201


@bp.delete("/two-step/methods/<int:method_id>")
@signed_in
@recent_sign_in
@spec.validate(resp=responses(401, 403, 404, 409, HTTP_204=None), tags=[TAG], security=SIGNED_IN)
def delete_method(user, method_id: int):
    """Delete a saved method (a staff member's last one: 409); a family's last turns 2-Step
    Verification off."""
    method = enrolment.find_method(user, method_id)
    if method is None:
        raise ApiProblem(404, N_("That verification method doesn't exist, or isn't yours."))
    outcome = enrolment.delete_method(user, method)
    if not outcome.ok:
        raise refusal(outcome)
    return "", 204


@bp.post("/two-step/recovery-codes")
@signed_in
@recent_sign_in
@spec.validate(
    resp=responses(401, 403, 409, HTTP_201=RecoveryCodes), tags=[TAG], security=SIGNED_IN
)
def new_recovery_codes(user):
    """A new set of ten recovery codes, shown this once; the old ones stop working at once
    (and, when there was a set, the person is emailed). Needs 2-Step Verification on: 409."""
    decision = recovery_codes.can_generate(user)
    if not decision:
        raise ApiProblem(409, decision.reason)
    return RecoveryCodes(codes=recovery_codes.generate(user)).model_dump(mode="json"), 201


@bp.post("/reauth")
@limiter.limit(lambda: current_app.config["SIGN_IN_ATTEMPTS_PER_IP"], methods=["POST"])
@signed_in
@spec.validate(
    json=Reauth,
    resp=responses(401, 422, HTTP_200=Reauthenticated),
    tags=[TAG],
    security=SIGNED_IN,
)
def reauth(user, json: Reauth):
    """Give the password again: changes are allowed for the next SUDO_MINUTES. Limited as
    the web's re-check: past the wrong passwords allowed per account, 429 and the token ends."""
    recheck = signin.confirm_password(user, json.password)
    if recheck is signin.Recheck.LIMITED:
        signin.sign_out(g.user_session)
        raise ApiProblem(429, signin.RECHECK_LIMITED_MESSAGE, code="signed_out")
    if recheck is not signin.Recheck.RIGHT:
        wrong = N_("That password is not right.")
        raise ApiProblem(422, wrong, errors={"password": gettext(wrong)})
    sessions.mark_authenticated(g.user_session)
    until = g.user_session.authenticated_at + timedelta(minutes=current_app.config["SUDO_MINUTES"])
    return Reauthenticated(valid_until=utc(until)).model_dump(mode="json")
