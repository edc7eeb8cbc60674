"""The method tabs: add an authenticator app, an email or a phone; confirm it; delete a method.

The same tabs serve the 2-Step Verification window (signed in, sudo mode) and the forced set-up
of a staff login that has no method yet (half signed in: password given, no method to verify).
"""

from functools import wraps

from flask import Blueprint, flash, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.extensions import code_attempts_limit, login_manager, send_codes_limit
from blueprints.web import (
    allow_pending,
    asking,
    fail,
    is_swap,
    pending_session,
    redirect_to,
    relying_party,
    render,
    require_recent_auth,
    signed_in,
)
from blueprints.window import (
    METHOD_SAVED,
    first_tab,
    render_window,
    saved_kinds,
    setup_delivery_context,
    show_new_codes,
    tabs_context,
    tabs_page,
)
from services import signin
from services.methods import (
    AUTHENTICATOR,
    BY_SLUG,
    SECURITY_KEY,
    MethodKind,
    enrolment,
    policy,
    recovery_codes,
    webauthn_keys,
)
from services.methods.challenge import Step
from services.signin import grace

bp = Blueprint("methods", __name__)


def acting_user():
    """(user, setup_mode): the signed-in person, or a pending staff login in forced set-up."""
    if current_user.is_authenticated:
        return current_user._get_current_object(), False
    row = pending_session()
    # Only once the set-up is this sign-in's step: staff with saved methods prove one first
    # (Decisions 20).
    if row is not None and signin.screen(row).step is Step.SETUP:
        return row.user, True
    return None, False


def method_view(change: bool = False):
    """Resolve who acts; changes made from the window need sudo mode (a recent sign-in)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user, setup_mode = acting_user()
            if user is None:
                return login_manager.unauthorized()
            if change and not setup_mode:
                guarded = require_recent_auth(lambda: None)()
                if guarded is not None:
                    return guarded
            return view(user, setup_mode, *args, **kwargs)

        return allow_pending(wrapper)

    return decorate


def kind_for(slug: str, user=None) -> MethodKind:
    """The method kind named in the URL, if it exists and `user` may use it."""
    method_kind = BY_SLUG.get(slug)
    if method_kind is None or (user is not None and not policy.is_allowed(user, method_kind.kind)):
        fail(404, _("There is no such verification method."))
    return method_kind


def code_kind_for(slug: str, user=None) -> MethodKind:
    """The method kind in the URL, if it is one we send codes to (email, text message) and
    `user` (when given) may use it."""
    method_kind = kind_for(slug, user)
    if not method_kind.sends_code:
        fail(404, _("%(method)s does not receive codes.", method=method_kind.label))
    return method_kind


def respond(user, setup_mode: bool, active: MethodKind, status: int = 200, **extra):
    """The tabs component (HTMX) or the whole page holding it, with `active` open."""
    context = tabs_context(user, setup_mode, active, **extra)
    if is_swap():
        # The tabs component targets itself (hx-target="this"): no retarget needed.
        return render("methods/_tabs.html", status=status, **context)
    if setup_mode:
        return render(
            "methods/setup.html",
            status=status,
            user=user,
            grace_remaining=grace.remaining(user),
            **context,
        )
    return render_window(user, status=status, tabs=context)


def refused(user, setup_mode, active, outcome):
    """Re-render the tab with the refusal in place (status 409/422/429/502 as decided)."""
    extra = (
        {"errors": {outcome.field: outcome.message}}
        if outcome.field
        else {"error": outcome.message}
    )
    if outcome.field == "destination":
        extra["destination_value"] = request.form.get("destination", "")[:254]
    return respond(user, setup_mode, active, status=outcome.status, **extra)


def saved(user, setup_mode: bool, outcome):
    """A method was saved: finish the forced set-up, or show the updated window."""
    if setup_mode:
        next_url = signed_in(signin.complete(pending_session(), outcome.method.kind, asking()))
        if recovery_codes.needs_first_set(user):
            # Staff who just set up 2SV get their recovery codes next, shown once.
            return show_new_codes(user, next_url)
        return redirect_to(next_url)
    if request.htmx:
        # Asked from inside the tabs, answered with the whole window.
        return render_window(
            user,
            block="window",
            messages=[outcome.message],
            offer_turn_on=True,
            retarget="#two-step-window",
            reswap="outerHTML",
        )
    flash(outcome.message, METHOD_SAVED)
    return redirect_to(url_for("profile.two_step"))


@bp.route("/login/verify/setup")
@method_view()
def setup(user, setup_mode):
    """ "Set up 2-Step Verification to continue": staff with no method, before signing in."""
    if not setup_mode:
        return redirect_to(url_for("profile.two_step"))
    return respond(user, setup_mode, first_tab(user, request.args.get("tab", "")))


@bp.route("/login/verify/setup/skip", methods=["POST"])
@method_view()
def skip_setup(user, setup_mode):
    """ "Not now": within STAFF_SETUP_GRACE_SIGNINS, finish signing in without a method."""
    if not setup_mode:
        return redirect_to(url_for("profile.two_step"))
    done = signin.skip_setup(pending_session(), asking())
    if done is None:
        return respond(user, setup_mode, first_tab(user), status=409, error=_(grace.NO_GRACE_LEFT))
    return redirect_to(signed_in(done))


@bp.route("/profile/2sv/methods/<slug>")
@method_view()
def tab(user, setup_mode, slug):
    """Open one tab of the component (a plain GET: it changes nothing)."""
    return respond(user, setup_mode, kind_for(slug, user))


@bp.route("/profile/2sv/methods/authenticator/start", methods=["POST"])
@method_view(change=True)
def start_authenticator(user, setup_mode):
    """Make the key the QR code shows (reused for 30 minutes)."""
    outcome = enrolment.start_authenticator(user)
    if not outcome.ok:
        return refused(user, setup_mode, AUTHENTICATOR, outcome)
    return respond(user, setup_mode, AUTHENTICATOR)


@bp.route("/profile/2sv/methods/authenticator/confirm", methods=["POST"])
@code_attempts_limit
@method_view(change=True)
def confirm_authenticator(user, setup_mode):
    """Save the authenticator app once a current code from it is typed."""
    outcome = enrolment.confirm_authenticator(user, request.form.get("code", ""))
    if not outcome.ok:
        return refused(user, setup_mode, AUTHENTICATOR, outcome)
    return saved(user, setup_mode, outcome)


@bp.route("/profile/2sv/methods/security-key/options", methods=["POST"])
@send_codes_limit
@method_view(change=True)
def security_key_options(user, setup_mode):
    """The options for navigator.credentials.create() (JSON; static/js/webauthn.js asks)."""
    if not policy.security_keys_available():
        return jsonify({"error": _(webauthn_keys.UNAVAILABLE)}), 404
    if not policy.is_allowed(user, SECURITY_KEY.kind):
        return jsonify({"error": _("Security keys can't be used for staff sign-in here.")}), 403
    options = webauthn_keys.registration_options(user, relying_party())
    return options, 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}


@bp.route("/profile/2sv/methods/security-key/register", methods=["POST"])
@code_attempts_limit
@method_view(change=True)
def register_security_key(user, setup_mode):
    """Save the key the browser just made (JSON in: credential and name; out: where to go)."""
    if not policy.security_keys_available():
        return jsonify({"error": _(webauthn_keys.UNAVAILABLE)}), 404
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify({"error": _("That request was not understood.")}), 400
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    outcome = webauthn_keys.verify_registration(user, relying_party(), body.get("credential"), name)
    if not outcome.ok:
        errors = {outcome.field or "form": outcome.message}
        return jsonify({"error": outcome.message, "errors": errors}), outcome.status
    response = saved(user, setup_mode, outcome)
    target = response.headers.get("HX-Redirect") or response.headers.get("Location")
    return jsonify({"redirect": target or url_for("profile.two_step")})


@bp.route("/profile/2sv/methods/<slug>/send", methods=["POST"])
@send_codes_limit
@method_view(change=True)
def send_code(user, setup_mode, slug):
    """Send a code to the email address or phone number typed in the tab."""
    method_kind = code_kind_for(slug)
    outcome = enrolment.send_setup_code(user, method_kind, request.form.get("destination", ""))
    if not outcome.ok:
        return refused(user, setup_mode, method_kind, outcome)
    return respond(user, setup_mode, method_kind, tab_notice=outcome.message)


@bp.route("/profile/2sv/methods/<slug>/delivery", methods=["GET"])
@method_view()
def delivery_status(user, setup_mode, slug):
    """What became of the newest code sent to the email or phone being added (HTMX polls it
    every 3 s); without HTMX, or when the tab no longer shows that code box, the page itself."""
    method_kind = code_kind_for(slug, user)
    pending = enrolment.pending_code_setup(user, method_kind)
    saved = saved_kinds(user)
    if not request.htmx or pending is None or method_kind.kind in saved:
        return redirect_to(tabs_page(setup_mode, tab=method_kind.slug))
    return render(
        "challenge/_delivery.html",
        **setup_delivery_context(user, setup_mode, method_kind, pending, saved),
    )


@bp.route("/profile/2sv/methods/<slug>/confirm", methods=["POST"])
@code_attempts_limit
@method_view(change=True)
def confirm_code(user, setup_mode, slug):
    """Save the email or phone once the code sent to it is typed back."""
    method_kind = code_kind_for(slug)
    outcome = enrolment.confirm_setup_code(user, method_kind, request.form.get("code", ""))
    if not outcome.ok:
        return refused(user, setup_mode, method_kind, outcome)
    return saved(user, setup_mode, outcome)


def _own_method(user, method_id):
    method = enrolment.find_method(user, method_id)
    if method is None:
        fail(404, _("That verification method doesn't exist, or isn't yours."))
    return method


@bp.route("/profile/2sv/methods/<method_id>/delete", methods=["GET"])
@method_view()
def confirm_delete(user, setup_mode, method_id):
    """Ask before deleting (inline with HTMX, a page of its own without JavaScript)."""
    if setup_mode:
        fail(404, _("There is nothing to delete yet."))
    method = _own_method(user, method_id)
    decision = policy.can_delete_method(user, len(policy.methods_of(user)))
    return render(
        "methods/delete.html",
        block="confirm",
        method=method,
        decision=decision,
        last_method=len(policy.methods_of(user)) == 1,
    )


@bp.route("/profile/2sv/methods/<method_id>/delete", methods=["POST"])
@method_view(change=True)
def delete(user, setup_mode, method_id):
    """Delete a method (staff keep their last one: 409)."""
    if setup_mode:
        fail(404, _("There is nothing to delete yet."))
    method = _own_method(user, method_id)
    outcome = enrolment.delete_method(user, method)
    if not outcome.ok:
        # The delete form targets the whole window (hx-target="#two-step-window").
        return render_window(
            user, block="window", status=outcome.status, window_errors=[outcome.message]
        )
    if request.htmx:
        return render_window(user, block="window", messages=[outcome.message])
    flash(outcome.message)
    return redirect_to(url_for("profile.two_step"))
