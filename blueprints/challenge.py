"""The second step of signing in: the method picker and the code box.

Every view here is reachable while the sign-in is pending (password right, code not yet
given). The flow itself lives in services/challenge.py; these views parse the form, call it
and render the `challenge` component of templates/challenge/verify.html - the whole page
normally, only the component for HTMX. The staff's forced set-up is blueprints/methods.py.
"""

from functools import wraps

from flask import Blueprint, jsonify, request, session, url_for

from blueprints import recovery as recovery_views
from blueprints.web import allow_pending, pending_session, redirect_to, render, safe_next
from services import challenge, policy, throttle, trusted_devices, webauthn_keys
from services.challenge import Screen, Step
from services.extensions import code_attempts_limit, send_codes_limit
from services.methods import kind_of

bp = Blueprint("challenge", __name__, url_prefix="/login/verify")

TEMPLATE = "challenge/verify.html"
NOTICE_KEY = challenge.NOTICE_KEY


def _show(
    user,
    screen: Screen,
    *,
    status: int = 200,
    step: Step | None = None,
    alerts=(),
    info: str = "",
    code_errors=(),
):
    """Render the challenge component (or its page) for `screen`, with messages."""
    step = step or screen.step
    method = screen.method
    context = {
        "step": step.value,
        "alerts": [message for message in alerts if message],
        "info": info,
        "code_errors": [message for message in code_errors if message],
        "has_alternatives": screen.has_alternatives,
        "choices": [],
        "method_kind": None,
        "masked": "",
        "next_send_words": "",
        # "Don't ask again on this device" (services/trusted_devices.py).
        "trust_allowed": trusted_devices.allowed_for(user),
        "trust_days": trusted_devices.days(),
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
    elif step is Step.CODE and method is not None:
        method_kind = kind_of(method)
        context["method_kind"] = method_kind
        context["masked"] = method_kind.masked(method.destination)
        retry_at = challenge.next_send_at(method, user)
        if retry_at is not None:
            context["next_send_words"] = throttle.in_words(retry_at)
    return render(TEMPLATE, block="challenge", status=status, **context)


def challenge_view(view):
    """A verification step: reachable while pending; gets (user, screen) of the sign-in.

    Without a pending sign-in (never started, signed out, expired) it goes back to the
    password; a staff login with no method goes to the forced set-up.
    """

    @wraps(view)
    def wrapper():
        row = pending_session()
        if row is None:
            return redirect_to(url_for("auth.login"))
        user = row.user
        screen = challenge.screen(user)
        if screen.step is Step.SETUP:
            return redirect_to(challenge.url_for_step(Step.SETUP))
        return view(user, screen)

    return allow_pending(wrapper)


@bp.route("", methods=["GET"])
@challenge_view
def verify(user, screen: Screen):
    """The code box, or the picker when several methods are saved and none is chosen yet."""
    # What the password POST's send said (that POST only redirects here).
    notice = session.pop(NOTICE_KEY, None) or {}
    alerts = [] if notice.get("ok") else [notice.get("message", "")]
    until = throttle.paused_until(user)
    if until is not None and screen.step is Step.CODE:
        alerts = [challenge.paused_message(until)]
    info = notice.get("message", "") if notice.get("ok") else ""
    return _show(user, screen, info=info, alerts=alerts)


@bp.route("/methods", methods=["GET"])
@challenge_view
def methods(user, screen: Screen):
    """The picker ("Try another method"): a plain GET that changes nothing."""
    if screen.step is Step.NOT_NEEDED:
        return _show(user, screen)
    return _show(user, screen, step=Step.PICKER)


@bp.route("", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit(user, screen: Screen):
    """Check the typed code; a right one signs the person in and sends them on."""
    if screen.step is Step.NOT_NEEDED:
        return redirect_to(safe_next(challenge.finish(user, method_kind="")))
    if screen.step is Step.PICKER:
        return _show(user, screen, status=422, alerts=[challenge.CHOOSE_MESSAGE])
    result = challenge.verify(user, request.form.get("code", ""), screen.method)
    if result.ok:
        response = redirect_to(safe_next(result.next_url))
        if request.form.get("trust") == "on":
            trusted_devices.remember(user, response)
        return response
    return _show(user, screen, status=result.status, code_errors=[result.message])


@bp.route("/method", methods=["POST"])
@send_codes_limit
@challenge_view
def choose(user, screen: Screen):
    """The picker's choice (form field `method_id`): email and text get a code now."""
    if screen.step is Step.NOT_NEEDED:
        return _show(user, screen, status=409)
    result = challenge.choose(user, request.form.get("method_id", ""))
    if result.method is None or result.status == 502:
        # Not one of this person's methods, or the provider failed: stay on the picker.
        return _show(user, screen, step=Step.PICKER, status=result.status, alerts=[result.message])
    screen = challenge.screen(user)
    if result.ok:
        return _show(user, screen, info=result.message)
    return _show(user, screen, status=result.status, alerts=[result.message])


@bp.route("/resend", methods=["POST"])
@send_codes_limit
@challenge_view
def resend(user, screen: Screen):
    """ "Send new code" to the challenged email address or phone; earlier codes stay alive."""
    if screen.step is Step.NOT_NEEDED:
        return _show(user, screen, status=409)
    if screen.step is Step.PICKER:
        return _show(user, screen, status=422, alerts=[challenge.CHOOSE_MESSAGE])
    result = challenge.resend(user)
    if result.ok:
        return _show(user, screen, info=result.message)
    return _show(user, screen, status=result.status, alerts=[result.message])


@bp.route("/recovery", methods=["GET"])
@challenge_view
def recovery(user, screen: Screen):
    """ "Use a recovery code": its form (blueprints/recovery.py)."""
    return recovery_views.use_code(user, screen)


@bp.route("/recovery", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit_recovery(user, screen: Screen):
    """Check a recovery code; counted with the other wrong codes (blueprints/recovery.py)."""
    return recovery_views.submit_code(user, screen)


# --- security keys (services/webauthn_keys.py; the browser side is static/js/webauthn.js) ----


def _json_error(message: str, status: int):
    return jsonify({"error": message}), status


@bp.route("/security-key/options", methods=["POST"])
@send_codes_limit
@challenge_view
def security_key_options(user, screen: Screen):
    """The options for navigator.credentials.get() over this person's keys (JSON)."""
    if not policy.security_keys_available():
        return _json_error(webauthn_keys.UNAVAILABLE, 404)
    until = throttle.paused_until(user)
    if until is not None:
        return _json_error(challenge.paused_message(until), 429)
    options = webauthn_keys.authentication_options(user)
    if options is None:
        return _json_error("There is no security key saved for this account.", 409)
    return options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.route("/security-key", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit_security_key(user, screen: Screen):
    """Check the key's answer (JSON: `credential`, and `trust` true for "Don't ask again on
    this device"); a good one signs the person in (JSON: where to go next)."""
    if not policy.security_keys_available():
        return _json_error(webauthn_keys.UNAVAILABLE, 404)
    until = throttle.paused_until(user)
    if until is not None:
        return _json_error(challenge.paused_message(until), 429)
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    result = webauthn_keys.verify_authentication(user, credential)
    if not result.ok:
        pause_end = throttle.record_failure(user, "webauthn")
        if pause_end is not None:
            return _json_error(challenge.paused_message(pause_end), 429)
        return _json_error(result.message, 422)
    throttle.record_success(user)
    response = jsonify({"redirect": safe_next(challenge.finish(user, method_kind="webauthn"))})
    if isinstance(body, dict) and body.get("trust") is True:
        # "Don't ask again on this device": only for whoever may (trusted_devices.allowed_for).
        trusted_devices.remember(user, response)
    return response
