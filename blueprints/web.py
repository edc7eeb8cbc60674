"""What every blueprint shares: rendering a page or one of its blocks, HTMX-aware redirects,
the pending-sign-in gate and sudo mode."""

import re
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, g, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2_fragments.flask import render_block

from models.sessions import PENDING
from services import sessions

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


def render(template: str, block: str | None = None, status: int = 200, **context):
    """The full page, or only `block` of it when HTMX asks (history restores get the page)."""
    swap = bool(request.htmx) and not request.htmx.history_restore_request
    if block and swap:
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    if swap:
        body = compact(body)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def redirect_to(url: str, status: int = 303):
    """A redirect that also works for HTMX: HX-Redirect makes the browser load the page."""
    if request.htmx:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
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


def pending_session():
    """The pending (password-only) session of this browser, or None."""
    row = sessions.current()
    return row if row is not None and row.state == PENDING else None


def require_recent_auth(view):
    """Sudo mode: changing security settings needs a sign-in within SUDO_MINUTES."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            abort(401)
        if not sessions.is_recent(g.get("user_session") or sessions.current()):
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
