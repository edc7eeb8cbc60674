"""What every blueprint shares: rendering a page or one of its blocks, HTMX-aware redirects,
the session cookie and the other values the domain is handed (who is asking, the trusted-device
token, the WebAuthn relying party), the pending-sign-in gate and sudo mode."""

import re
from functools import wraps
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from htmx_flask import make_response as htmx_make_response
from jinja2_fragments.flask import render_block

from models.sessions import PENDING, UserSession
from services import signin
from services.account import sessions
from services.methods import trusted_devices, webauthn_keys
from services.security.client import Client

# Endpoints a half-signed-in person may reach (the challenge blueprint adds its own).
PENDING_ALLOWED = {"static", "auth.login", "auth.logout"}


def allow_pending(view):
    """Mark a view as one of the verification steps, reachable before the code is given."""
    PENDING_ALLOWED.add(f"{view.__module__.rsplit('.', 1)[-1]}.{view.__name__}")
    return view


# Indentation and blank lines between tags mean nothing to a browser: a partial (an HTMX
# swap) is sent without them, unless it holds text whose whitespace is content.
_INDENTATION = re.compile(r"\n\s+")


def compact(html: str) -> str:
    """`html` without leading whitespace on its lines (and so without blank lines)."""
    if "<pre" in html or "<textarea" in html:
        return html
    return _INDENTATION.sub("\n", html).strip()


def is_swap() -> bool:
    """Whether HTMX asks for a part of a page to swap in (a history restore wants the page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def htmx_response(body, status: int = 200, *, retarget=None, reswap=None, redirect=None):
    """The one place HTMX response headers are written (htmx-flask's make_response): swap the
    body into `retarget` by `reswap` instead of the element that asked, or load `redirect`.

    htmx-flask 0.1 refuses "beforebegin" and "afterbegin" as a reswap, so those are set here.
    """
    if reswap in ("beforebegin", "afterbegin"):
        response = htmx_make_response(body, status, retarget=retarget, redirect=redirect)
        response.headers["HX-Reswap"] = reswap
        return response
    return htmx_make_response(body, status, retarget=retarget, reswap=reswap, redirect=redirect)


def render(
    template: str,
    block: str | None = None,
    status: int = 200,
    *,
    retarget: str | None = None,
    reswap: str | None = None,
    **context,
):
    """The full page, or only `block` of it when HTMX asks (history restores get the page);
    a swapped part can be sent to another element (`retarget`, swapped by `reswap`)."""
    swap = is_swap()
    if block and swap:
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    if swap:
        response = htmx_response(compact(body), status, retarget=retarget, reswap=reswap)
    else:
        response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def redirect_to(url: str, status: int = 303):
    """A redirect that also works for HTMX: HX-Redirect makes the browser load the page."""
    if request.htmx:
        return htmx_response("", 200, redirect=url)
    return redirect(url, status)


def is_safe_next(target: str | None) -> bool:
    """Whether `target` is a same-site path we may send the person to after signing in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and "\\" not in target


def safe_next(target: str | None, default: str | None = None) -> str:
    """`target` if it is a safe same-site path, else `default` (the home page)."""
    return target if is_safe_next(target) else (default or url_for("home.index"))


# The cookie session's keys: the session token, where a sign-in goes once it is complete, and
# what the password POST's send said (shown once by the page it leads to).
SESSION_TOKEN_KEY = "sid"
NEXT_KEY = "next"
NOTICE_KEY = "challenge_notice"
# "Don't ask again on this device": the cookie holding the trusted-device token.
TRUSTED_DEVICE_COOKIE = "twostep_trusted"


def asking() -> Client:
    """Who this request comes from, as the domain records it."""
    return Client.of(request.remote_addr, request.user_agent.string)


def current_session() -> UserSession | None:
    """The live session row this browser's cookie names, or None (read once per request)."""
    if "user_session" not in g:
        g.user_session = sessions.find(session.get(SESSION_TOKEN_KEY))
    return g.user_session


def keep_session(row: UserSession, token: str) -> None:
    """Make `row` this browser's session: a new cookie value (and so a new CSRF token)."""
    _forget_session_values()
    session[SESSION_TOKEN_KEY] = token
    session.permanent = True
    g.user_session = row


def signed_in(done: signin.SignedIn, next_url: str | None = None) -> str:
    """Keep the session a sign-in earned; return where to go: `next_url`, or where the sign-in
    was going when the password was given (the home page by default)."""
    target = safe_next(next_url or session.get(NEXT_KEY))
    keep_session(done.session, done.token)
    return target


def _forget_session_values() -> None:
    """Empty the cookie's session, and with it this request's signed CSRF token (Flask-WTF
    keeps it on `g`), which named the old session's token."""
    session.clear()
    g.pop(current_app.config["WTF_CSRF_FIELD_NAME"], None)


def end_session() -> None:
    """Sign this browser out: its session row ends and the cookie forgets it."""
    signin.sign_out(current_session())
    g.pop("user_session", None)
    _forget_session_values()


def trusted_token() -> str | None:
    """This browser's trusted-device token, if it sent one."""
    return request.cookies.get(TRUSTED_DEVICE_COOKIE)


def trust_this_device(response, user) -> None:
    """ "Don't ask again on this device": a new trusted-device token for `user` in a cookie on
    `response` (nothing for whoever may not use trusted devices)."""
    token = signin.remember_device(user, asking(), trusted_token())
    if token is None:
        return
    config = current_app.config
    response.set_cookie(
        TRUSTED_DEVICE_COOKIE,
        token,
        max_age=trusted_devices.days() * 24 * 3600,
        path="/",
        httponly=True,
        secure=bool(config["PRODUCTION"] or config.get("SESSION_COOKIE_SECURE")),
        samesite="Lax",
    )


def relying_party() -> webauthn_keys.RelyingParty:
    """The WebAuthn relying party for the host this request came to (or as configured)."""
    return webauthn_keys.relying_party(request.host, request.scheme)


def pending_session():
    """The pending (password-only) session of this browser, or None."""
    row = current_session()
    return row if row is not None and row.state == PENDING else None


def require_recent_auth(view):
    """Sudo mode: changing security settings needs a sign-in within SUDO_MINUTES."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            abort(401)
        if not sessions.is_recent(current_session()):
            back = request.full_path.rstrip("?") if request.method == "GET" else request.referrer
            if not is_safe_next(back):
                parts = urlsplit(back or "")
                back = parts.path + (f"?{parts.query}" if parts.query else "")
            return redirect_to(url_for("auth.confirm_password", next=safe_next(back)))
        return view(*args, **kwargs)

    return wrapper


def fail(status: int, message: str):
    """Stop the request with `status` and a message meant for the person reading the page."""
    error = _ERRORS[status](message)
    error.twostep_message = True
    raise error


def _errors():
    from werkzeug import exceptions

    return {
        cls.code: cls
        for cls in vars(exceptions).values()
        if isinstance(cls, type)
        and issubclass(cls, exceptions.HTTPException)
        and cls.code is not None
    }


_ERRORS = _errors()
