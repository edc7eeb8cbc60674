"""Which language a request is answered in, and the "English · Español" link that changes it
before sign-in (a real link: it works with JavaScript off)."""

from flask import Blueprint, current_app, g, has_request_context, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from blueprints.web import allow_pending, fail, pending_session, redirect_to, safe_next
from services.language import DEFAULT_LANGUAGE, is_supported, set_language, supported

bp = Blueprint("language", __name__)

COOKIE = "twostep_language"
COOKIE_DAYS = 365


def _person():
    """The login this request belongs to, signed in or half signed in, or None."""
    if current_user and current_user.is_authenticated:
        return current_user
    pending = pending_session()
    return pending.user if pending is not None else None


def select_locale() -> str:
    """Flask-Babel's locale selector: the login's stored choice, else the cookie the language
    link set, else the browser's Accept-Language, else English (outside a request: English,
    e.g. a command-line reset: the emails then follow the person's own choice)."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    # Without the database (its 503 page), the login's choice can't be read: the browser's.
    person = None if g.get("database_unavailable") else _person()
    if person is not None and is_supported(person.language):
        return person.language
    chosen = request.cookies.get(COOKIE)
    if is_supported(chosen):
        return chosen
    return request.accept_languages.best_match(supported()) or DEFAULT_LANGUAGE


def remember_in_cookie(response, code: str):
    """Keep `code` in this browser, so the sign-in pages speak it after signing out too."""
    response.set_cookie(
        COOKIE,
        code,
        max_age=COOKIE_DAYS * 24 * 3600,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.route("/language/<code>")
@allow_pending
def choose(code: str):
    """The "English · Español" link: remembers the language in a cookie (nothing on the
    server changes) and goes back to the page it was clicked on."""
    if not is_supported(code):
        fail(404, _l("That language isn't available."))
    return remember_in_cookie(redirect_to(safe_next(request.args.get("next")), 302), code)


def adopt_cookie_language(user) -> None:
    """At sign-in, a login that never chose a language keeps the one picked with the link on
    the sign-in page: emails sent to it later (an admin's reset) then speak it too."""
    chosen = request.cookies.get(COOKIE)
    if not user.language and is_supported(chosen):
        set_language(user, chosen)
