"""The second step of signing in: the method picker, the code box, a recovery code and a
security key.

Every view here is reachable while the sign-in is pending (password right, code not yet
given). The flow itself lives in services/signin/ (the JSON API calls the same functions);
these views parse the form, call it, keep the session it earns in the cookie and render the
`challenge` component of templates/challenge/verify.html - the whole page normally, only the
component for HTMX. The staff's forced set-up is blueprints/methods.py.
"""

from functools import wraps

from flask import Blueprint, jsonify, request, session, url_for
from flask_babel import gettext as _

from blueprints.extensions import code_attempts_limit, from_setting, limiter, send_codes_limit
from blueprints.web import (
    NOTICE_KEY,
    allow_pending,
    asking,
    pending_session,
    redirect_to,
    relying_party,
    render,
    signed_in,
    trust_this_device,
)
from models.verification import SIGN_IN
from services import signin
from services.methods import challenge, deliveries, kind_of, policy, trusted_devices, webauthn_keys
from services.methods.challenge import Screen, Step
from services.security import throttle

bp = Blueprint("challenge", __name__, url_prefix="/login/verify")

TEMPLATE = "challenge/verify.html"
RECOVERY_TEMPLATE = "recovery/challenge.html"


def _choice_sends_nothing() -> bool:
    """Whether the picker's choice names a method that sends no code (an authenticator, a
    security key): such a choice spends nothing of the per-IP send budget. An id that is not
    the person's own is refused by the view, which sends nothing either."""
    return not challenge.choice_sends_code(request.form.get("method_id", ""))


# The send budget of blueprints.extensions.send_codes_limit (the same scope), less the choices
# that send nothing.
choose_limit = limiter.shared_limit(
    from_setting("SEND_CODES_PER_IP"),
    scope="send-codes",
    methods=["POST"],
    exempt_when=_choice_sends_nothing,
)


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
        # "Don't ask again on this device" (services/methods/trusted_devices.py).
        "trust_allowed": trusted_devices.allowed_for(user),
        "trust_days": trusted_devices.days(),
        "ask_admin_message": _(challenge.ASK_ADMIN_MESSAGE),
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
        if method_kind.sends_code:
            context.update(_delivery_context(user, method))
    return render(TEMPLATE, block="challenge", status=status, **context)


def _delivery_context(user, method) -> dict:
    """The newest code of this sign-in sent to `method`, and whether the page should keep
    asking what became of it (templates/challenge/_delivery.html). A failure's ways on are
    the code box's own Send new code and Try another method: the alert repeats neither."""
    started = pending_session().created_at
    delivery = deliveries.newest(user, SIGN_IN, method.destination, since=started)
    links = deliveries.BoxLinks(
        status=url_for("challenge.delivery_status"),
        page=url_for("challenge.verify"),
    )
    return {
        "delivery": delivery,
        "delivery_polls": deliveries.keeps_checking(delivery),
        "links": links,
    }


def challenge_view(view):
    """A verification step: reachable while pending; gets (pending, screen) of the sign-in.

    Without a pending sign-in (never started, signed out, expired) it goes back to the
    password; a staff login with no method goes to the forced set-up.
    """

    @wraps(view)
    def wrapper():
        pending = pending_session()
        if pending is None:
            return redirect_to(url_for("auth.login"))
        screen = signin.screen(pending)
        if screen.step is Step.SETUP:
            return redirect_to(url_for("methods.setup"))
        return view(pending, screen)

    return allow_pending(wrapper)


def _go_on(done: signin.SignedIn | None, trust: bool = False):
    """Signed in: keep the new session and go where the sign-in was going (with "Don't ask
    again on this device" ticked, the device is trusted too). None: the second step was
    proven with a method the staff policy leaves out, so the set-up comes first."""
    if done is None:
        return redirect_to(url_for("methods.setup"))
    response = redirect_to(signed_in(done))
    if trust:
        trust_this_device(response, done.session.user)
    return response


@bp.route("", methods=["GET"])
@challenge_view
def verify(pending, screen: Screen):
    """The code box, or the picker when several methods are saved and none is chosen yet."""
    user = pending.user
    # What the password POST's send said (that POST only redirects here).
    notice = session.pop(NOTICE_KEY, None) or {}
    alerts = [] if notice.get("ok") else [notice.get("message", "")]
    until = throttle.paused_until(user)
    if until is not None and screen.step is Step.CODE:
        alerts = [challenge.paused_message(until)]
    elif throttle.is_locked(user) and screen.step is Step.CODE:
        alerts = [_(challenge.LOCKED_MESSAGE)]
    info = notice.get("message", "") if notice.get("ok") else ""
    return _show(user, screen, info=info, alerts=alerts)


@bp.route("/delivery", methods=["GET"])
@challenge_view
def delivery_status(pending, screen: Screen):
    """What became of the newest code (HTMX polls it every 3 s); without HTMX, or when the
    code box no longer shows an email or text code, the page itself."""
    method = screen.method
    if not request.htmx or screen.step is not Step.CODE or not kind_of(method).sends_code:
        return redirect_to(url_for("challenge.verify"))
    context = _delivery_context(pending.user, method)
    return render(
        "challenge/_delivery.html",
        masked=kind_of(method).masked(method.destination),
        has_alternatives=screen.has_alternatives,
        **context,
    )


@bp.route("/methods", methods=["GET"])
@challenge_view
def methods(pending, screen: Screen):
    """The picker ("Try another method"): a plain GET that changes nothing."""
    if screen.step in (Step.NOT_NEEDED, Step.ASK_ADMIN):
        return _show(pending.user, screen)
    return _show(pending.user, screen, step=Step.PICKER)


@bp.route("", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit(pending, screen: Screen):
    """Check the typed code; a right one signs the person in and sends them on."""
    user = pending.user
    if screen.step is Step.NOT_NEEDED:
        return _go_on(signin.complete(pending, "", asking()))
    if screen.step is Step.ASK_ADMIN:
        return _show(user, screen, status=409)
    if screen.step is Step.PICKER:
        return _show(user, screen, status=422, alerts=[_(challenge.CHOOSE_MESSAGE)])
    verified = signin.verify_code(pending, request.form.get("code", ""), asking(), screen)
    if verified.ok:
        return _go_on(verified.signed_in, trust=request.form.get("trust") == "on")
    result = verified.result
    return _show(user, screen, status=result.status, code_errors=[result.message])


@bp.route("/method", methods=["POST"])
@choose_limit
@challenge_view
def choose(pending, screen: Screen):
    """The picker's choice (form field `method_id`): email and text get a code now."""
    user = pending.user
    if screen.step in (Step.NOT_NEEDED, Step.ASK_ADMIN):
        return _show(user, screen, status=409)
    result = signin.choose(pending, request.form.get("method_id", ""))
    if result.method is None or result.status == 502:
        # Not one of this person's methods, or the provider failed: stay on the picker.
        return _show(user, screen, step=Step.PICKER, status=result.status, alerts=[result.message])
    screen = signin.screen(pending)
    if result.ok:
        return _show(user, screen, info=result.message)
    return _show(user, screen, status=result.status, alerts=[result.message])


@bp.route("/resend", methods=["POST"])
@send_codes_limit
@challenge_view
def resend(pending, screen: Screen):
    """ "Send new code" to the challenged email address or phone; earlier codes stay alive."""
    user = pending.user
    if screen.step in (Step.NOT_NEEDED, Step.ASK_ADMIN):
        return _show(user, screen, status=409)
    if screen.step is Step.PICKER:
        return _show(user, screen, status=422, alerts=[_(challenge.CHOOSE_MESSAGE)])
    result = signin.resend(pending)
    if result.ok:
        return _show(user, screen, info=result.message)
    return _show(user, screen, status=result.status, alerts=[result.message])


# --- "Use a recovery code" (services/methods/recovery_codes.py) ----------------------------


def _show_recovery_form(status: int = 200, errors=()):
    return render(
        RECOVERY_TEMPLATE,
        block="challenge",
        status=status,
        errors=[message for message in errors if message],
    )


@bp.route("/recovery", methods=["GET"])
@challenge_view
def recovery(pending, screen: Screen):
    """ "Use a recovery code": its form (a plain GET that changes nothing)."""
    if screen.step is Step.NOT_NEEDED:
        return redirect_to(url_for("challenge.verify"))
    return _show_recovery_form()


@bp.route("/recovery", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit_recovery(pending, screen: Screen):
    """Check a recovery code, counted with the other wrong codes; a right one signs the person
    in and says how many are left."""
    if screen.step is Step.NOT_NEEDED:
        return redirect_to(url_for("challenge.verify"))
    verified = signin.verify_recovery_code(pending, request.form.get("recovery_code", ""), asking())
    if verified.set_up:
        return redirect_to(url_for("methods.setup"))
    if verified.ok:
        next_url = signed_in(verified.signed_in)
        return redirect_to(url_for("recovery.left", next=next_url))
    result = verified.result
    return _show_recovery_form(status=result.status, errors=[result.message])


# --- security keys (services/methods/webauthn_keys.py; the browser side: static/js/webauthn.js)


def _json_error(message: str, status: int):
    return jsonify({"error": message}), status


@bp.route("/security-key/options", methods=["POST"])
@send_codes_limit
@challenge_view
def security_key_options(pending, screen: Screen):
    """The options for navigator.credentials.get() over this person's keys (JSON)."""
    if not policy.security_keys_available():
        return _json_error(_(webauthn_keys.UNAVAILABLE), 404)
    result = signin.security_key_options(pending, relying_party())
    if not result.ok:
        return _json_error(result.message, result.status)
    return result.options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.route("/security-key", methods=["POST"])
@code_attempts_limit
@challenge_view
def submit_security_key(pending, screen: Screen):
    """Check the key's answer (JSON: `credential`, and `trust` true for "Don't ask again on
    this device"); a good one signs the person in (JSON: where to go next)."""
    if not policy.security_keys_available():
        return _json_error(_(webauthn_keys.UNAVAILABLE), 404)
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    result, done = signin.verify_security_key(pending, relying_party(), credential, asking())
    if not result.ok:
        return _json_error(result.message, result.status)
    if done is None:  # proven; an allowed method is set up first (Decisions 20)
        return jsonify({"redirect": url_for("methods.setup")})
    response = jsonify({"redirect": signed_in(done)})
    if isinstance(body, dict) and body.get("trust") is True:
        # "Don't ask again on this device": only for whoever may (trusted_devices.allowed_for).
        trust_this_device(response, done.session.user)
    return response
