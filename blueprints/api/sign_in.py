"""Signing in from the mobile app: the password, the second step, the staff's set-up, and
signing out, on the web's own sign-in flow (services/signin/).

A right password that needs a second step gives a `pending_token` (a pending session row of
kind "app"); every later step names it. Its last step answers a bearer token. The password
step, codes, pauses, caps, events and emails are the web's, unchanged. A code sent by email
or text message comes with its `delivery` (what the provider reported, as the web's code box
shows it), and POST /sign-in/delivery asks again.
"""

from flask import current_app, g

from blueprints.api.core import (
    ApiProblem,
    bp,
    pending_sign_in,
    responses,
    seconds_until,
    signed_in,
    spec,
)
from blueprints.api.schemas import (
    AuthenticatorStarted,
    ChooseMethod,
    CodeSent,
    Delivery,
    DeliveryStatus,
    PendingRequest,
    RecoveryCode,
    SecondStep,
    SetUp,
    SetUpConfirm,
    SetUpMethod,
    SignedIn,
    SignIn,
    SignInAnswer,
    VerifyCode,
    utc,
)
from blueprints.api.two_step import choice, confirm_adding, start_adding
from blueprints.extensions import code_attempts_limit, limiter, send_codes_limit
from models.sessions import APP
from models.verification import SIGN_IN, WEBAUTHN
from services import signin
from services.account import sessions
from services.language import N_
from services.methods import challenge, deliveries, kind_of, policy
from services.methods.challenge import Step
from services.security import client, throttle
from services.signin import grace

TAG = "Sign-in"
NO_TOKEN = {}  # these operations take no bearer token: the pending token is in the body
KEY_IN_APP = N_("Security keys can't be used from the app. Choose another method.")
NO_CODE_SENT = N_("No code sent yet")


def device_name(raw: str) -> str:
    """The device's name as "Where you're signed in" shows it: printable, trimmed."""
    return "".join(ch for ch in raw if ch.isprintable()).strip() or "Mobile app"


def signed_in_document(done: signin.SignedIn) -> dict:
    """The answer that ends a sign-in: the bearer token and until when it works unused."""
    return SignedIn(token=done.token, expires_at=utc(sessions.expires_at(done.session))).model_dump(
        mode="json"
    )


def delivery_document(pending, method) -> Delivery | None:
    """What became of the newest code this sign-in sent to `method` (an email address or a
    phone), and whether to ask again - the web's code box (blueprints/challenge.py) - or None
    while no send is recorded since the sign-in started."""
    found = deliveries.newest(pending.user, SIGN_IN, method.destination, since=pending.created_at)
    if found is None:
        return None
    reason = found.reason or None
    if reason is not None and reason not in deliveries.REASONS:
        reason = "not_delivered"  # a key this version doesn't know: the generic one
    return Delivery(state=found.state, reason=reason, check_again=deliveries.keeps_checking(found))


def second_step_document(pending, token: str, sent=None) -> dict:
    """Where the pending sign-in stands: the methods (security keys left out: the app can't
    use them), the challenged one, whether this request sent a code and, for email and text
    message, what became of the newest code sent."""
    screen = signin.screen(pending)
    methods = [each for each in screen.choices if each.kind != WEBAUTHN]
    method = screen.method if screen.step is Step.CODE and screen.method.kind != WEBAUTHN else None
    sends_code = method is not None and kind_of(method).sends_code
    return SecondStep(
        pending_token=token,
        methods=[choice(each) for each in methods],
        method=choice(method) if method is not None else None,
        sent=sent is not None
        and sent.ok
        and sent.method is not None
        and kind_of(sent.method).sends_code,
        message=sent.message if sent is not None else "",
        delivery=delivery_document(pending, method) if sends_code else None,
    ).model_dump(mode="json")


def set_up_document(pending, token: str) -> dict:
    """A staff login with no method: the kinds it may add here (the app can't add keys)."""
    kinds = [each.kind for each in policy.allowed_kinds(pending.user) if each.kind != WEBAUTHN]
    return SetUp(pending_token=token, kinds=kinds).model_dump(mode="json")


def send_refused(result, pending) -> ApiProblem:
    """A refused send (cooldown or caps: 429 with when; the provider failing: 502)."""
    extra = {}
    if result.status == 429:
        method = result.method
        when = challenge.next_send_at(method, pending.user) if method is not None else None
        when = when or throttle.paused_until(pending.user)
        if when is not None:
            extra["retry_after"] = seconds_until(when)
    return ApiProblem(result.status, result.message, **extra)


@bp.post("/sign-in")
@limiter.limit(lambda: current_app.config["SIGN_IN_ATTEMPTS_PER_IP"], methods=["POST"])
@spec.validate(
    json=SignIn, resp=responses(401, 403, 502, HTTP_200=SignInAnswer), tags=[TAG], security=NO_TOKEN
)
def sign_in(json: SignIn):
    """Email and password: a token (2-Step Verification off), the second step (a code sent
    to a lone email or phone), or a staff login's set-up; a wrong pair is 401."""
    started = signin.start(
        json.email,
        json.password,
        client.current(),
        kind=APP,
        device_name=device_name(json.device_name),
    )
    if started.outcome is signin.Outcome.REFUSED:
        raise ApiProblem(401, started.message, code="wrong_email_or_password")
    if started.outcome is signin.Outcome.SIGNED_IN:
        return signed_in_document(signin.SignedIn(started.session, started.token))
    if started.outcome is signin.Outcome.SETUP:
        return set_up_document(started.session, started.token)
    if started.outcome is signin.Outcome.ASK_ADMIN:
        raise ask_admin(started.session)
    return second_step_document(started.session, started.token, started.sent)


def ask_admin(pending) -> ApiProblem:
    """Saved methods none of which can be checked (security keys switched off): 403, and the
    pending sign-in ends; only an admin's reset helps, never a set-up (Decisions 20)."""
    signin.sign_out(pending)
    return ApiProblem(403, challenge.ASK_ADMIN_MESSAGE, code="ask_admin_to_reset")


def _verifying(json):
    """The pending sign-in, which must be at its second step (not the staff's set-up)."""
    pending = pending_sign_in(json.pending_token)
    step = signin.screen(pending).step
    if step is Step.SETUP:
        raise ApiProblem(409, N_("Set up a verification method first."), code="set_up_required")
    if step is Step.ASK_ADMIN:
        raise ask_admin(pending)
    return pending


def _after_second_step(verified, pending, token: str) -> dict:
    """Signed in (a token), or - proven with a method the staff policy leaves out - the
    set-up of an allowed one, under the same pending token (Decisions 20)."""
    if verified.set_up:
        return set_up_document(pending, token)
    return signed_in_document(verified.signed_in)


@bp.post("/sign-in/method")
@send_codes_limit
@spec.validate(
    json=ChooseMethod,
    resp=responses(401, 403, 409, 422, 502, HTTP_200=SecondStep),
    tags=[TAG],
    security=NO_TOKEN,
)
def choose_method(json: ChooseMethod):
    """Choose where the code goes (one of `methods`): email and text message get a code now;
    for the authenticator app, type its code."""
    pending = _verifying(json)
    method = challenge.own_method(pending.user, json.method_id)
    if method is not None and method.kind == WEBAUTHN:
        raise ApiProblem(422, KEY_IN_APP)
    result = signin.choose(pending, json.method_id)
    if result.method is None or result.status == 502:
        raise ApiProblem(result.status, result.message)
    if not result.ok:
        raise send_refused(result, pending)
    return second_step_document(pending, json.pending_token, result)


@bp.post("/sign-in/resend")
@send_codes_limit
@spec.validate(
    json=PendingRequest,
    resp=responses(401, 403, 409, 422, 502, HTTP_200=SecondStep),
    tags=[TAG],
    security=NO_TOKEN,
)
def resend(json: PendingRequest):
    """Send a new code to the chosen email or phone; earlier codes keep working."""
    pending = _verifying(json)
    result = signin.resend(pending)
    if not result.ok:
        raise send_refused(result, pending)
    return second_step_document(pending, json.pending_token, result)


@bp.post("/sign-in/delivery")
@spec.validate(
    json=PendingRequest,
    resp=responses(401, 403, 409, 422, HTTP_200=DeliveryStatus),
    tags=[TAG],
    security=NO_TOKEN,
)
def delivery_status(json: PendingRequest):
    """What became of the newest code sent by email or text message at this sign-in: ask
    again every few seconds while `check_again` is true. Changes nothing, spends no send or
    code attempt. 409 when the sign-in is not at an emailed or texted code (`choose_method`:
    the picker; `no_code_sent`: the authenticator app, or no code is asked)."""
    pending = _verifying(json)
    shown = signin.screen(pending)
    method = shown.method
    if shown.step is Step.PICKER:
        raise ApiProblem(409, challenge.CHOOSE_MESSAGE, code="choose_method")
    if shown.step is not Step.CODE or method is None:
        raise ApiProblem(409, NO_CODE_SENT, code="no_code_sent")
    if method.kind == WEBAUTHN:
        raise ApiProblem(409, KEY_IN_APP, code="no_code_sent")
    if not kind_of(method).sends_code:
        raise ApiProblem(409, challenge.NO_SEND_MESSAGE, code="no_code_sent")
    return DeliveryStatus(
        method=choice(method), delivery=delivery_document(pending, method)
    ).model_dump(mode="json")


def _refused_code(result) -> ApiProblem:
    """A refused code: 422 (wrong, expired, used); 429 while paused, with when; 429 when codes
    are locked (no when: a recovery code or an admin's reset is the way out)."""
    extra = {}
    if result.paused_until is not None:
        extra["retry_after"] = seconds_until(result.paused_until)
        extra["code"] = "verification_paused"
    elif result.reason is challenge.Reason.LOCKED:
        extra["code"] = "verification_locked"
    return ApiProblem(result.status, result.message, **extra)


@bp.post("/sign-in/verify")
@code_attempts_limit
@spec.validate(
    json=VerifyCode,
    resp=responses(401, 403, 409, 422, HTTP_200=SignInAnswer),
    tags=[TAG],
    security=NO_TOKEN,
)
def verify(json: VerifyCode):
    """The code from the authenticator app, or sent by email or text: a right one ends the
    sign-in with a token (or, for staff whose saved methods the policy now leaves out, leads
    to the set-up); wrong ones count towards the pause (429 with when)."""
    pending = _verifying(json)
    shown = signin.screen(pending)
    if shown.step is Step.PICKER:
        raise ApiProblem(422, challenge.CHOOSE_MESSAGE, code="choose_method")
    verified = signin.verify_code(pending, json.code, client.current(), shown)
    if not verified.ok:
        raise _refused_code(verified.result)
    return _after_second_step(verified, pending, json.pending_token)


@bp.post("/sign-in/recovery")
@code_attempts_limit
@spec.validate(
    json=RecoveryCode,
    resp=responses(401, 403, 409, 422, HTTP_200=SignInAnswer),
    tags=[TAG],
    security=NO_TOKEN,
)
def recovery(json: RecoveryCode):
    """A recovery code in place of the second step (each works once)."""
    pending = _verifying(json)
    verified = signin.verify_recovery_code(pending, json.recovery_code, client.current())
    if not verified.ok:
        raise _refused_code(verified.result)
    return _after_second_step(verified, pending, json.pending_token)


def _setting_up(json):
    pending = pending_sign_in(json.pending_token)
    if signin.screen(pending).step is not Step.SETUP:
        raise ApiProblem(409, N_("This sign-in has no set-up to do."), code="not_set_up")
    return pending


@bp.post("/sign-in/set-up")
@send_codes_limit
@spec.validate(
    json=SetUpMethod,
    resp=responses(401, 403, 409, 422, 502, HTTP_201=AuthenticatorStarted, HTTP_202=CodeSent),
    tags=[TAG],
    security=NO_TOKEN,
)
def set_up(json: SetUpMethod):
    """A staff login with no method: start adding one, as in the window."""
    pending = _setting_up(json)
    return start_adding(pending.user, json.kind, json.destination)


@bp.post("/sign-in/set-up/confirm")
@code_attempts_limit
@spec.validate(
    json=SetUpConfirm,
    resp=responses(401, 403, 404, 409, 422, HTTP_200=SignedIn),
    tags=[TAG],
    security=NO_TOKEN,
)
def confirm_set_up(json: SetUpConfirm):
    """Save the method with its code; 2-Step Verification is then on and the sign-in ends
    with a token."""
    pending = _setting_up(json)
    method = confirm_adding(pending.user, json.pending_id, json.code)
    return signed_in_document(signin.complete(pending, method.kind, client.current()))


@bp.post("/sign-in/set-up/skip")
@spec.validate(
    json=PendingRequest, resp=responses(401, 409, HTTP_200=SignedIn), tags=[TAG], security=NO_TOKEN
)
def skip_set_up(json: PendingRequest):
    """ "Not now": within the staff's grace sign-ins, signed in without a method (409 when
    none is left)."""
    pending = _setting_up(json)
    done = signin.skip_setup(pending, client.current())
    if done is None:
        raise ApiProblem(409, grace.NO_GRACE_LEFT, code="no_grace_left")
    return signed_in_document(done)


@bp.post("/sign-out")
@signed_in
@spec.validate(resp=responses(401, HTTP_204=None), tags=[TAG], security={"bearerAuth": []})
def sign_out(user):
    """End this token's session (it answers 401 from now on)."""
    signin.sign_out(g.user_session)
    return "", 204
