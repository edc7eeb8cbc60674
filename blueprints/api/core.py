"""What every endpoint of the mobile app's JSON API shares: the blueprint, the OpenAPI
document made from the code, RFC 9457 problems for every error, and bearer-token sign-in.

The API calls the same services as the web pages (sign-in, enrolment, policy, codes); this
layer only turns JSON into their arguments and their results into JSON. It sets no cookie
and reads none: a request is who its `Authorization: Bearer` token says, and nobody else.

spectree (with pydantic) builds the OpenAPI 3.1 document from the request and response models
on each view: pydantic v2 emits JSON Schema 2020-12, the dialect OpenAPI 3.1 uses, so the
document needs no translation, and the same models validate what comes in.
"""

import math
import time
from functools import wraps

from flask import Blueprint, current_app, g, json, request
from flask_babel import gettext, ngettext
from flask_limiter.errors import RateLimitExceeded
from spectree import Response as Responses
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from werkzeug.exceptions import HTTPException

from blueprints.api.field_errors import field_errors
from blueprints.api.schemas import Problem
from blueprints.extensions import csrf, limiter
from models.clock import now
from models.sessions import ACTIVE, APP, PENDING
from services.account import sessions
from services.language import N_

PREFIX = "/api/v1"
PROBLEM_TYPE = "application/problem+json"
BEARER = "bearerAuth"

bp = Blueprint("api", __name__, url_prefix=PREFIX)
csrf.exempt(bp)  # no cookie, so nothing for a forged cross-site request to ride on


def _before_validation(req, resp, error, instance, model_adapter):
    """A body that does not fit its model: 422, the fields and what is wrong with each."""
    if error is None:
        return
    errors = field_errors(error.errors())  # in the request's language, not pydantic's English
    raise ApiProblem(422, N_("Some fields are missing or not valid."), errors=errors)


spec = SpecTree(
    "flask",
    title="TwoStep mobile API",
    version="1",
    description=(
        "Sign-in with the second step and the 2-Step Verification window, for the mobile "
        "app. Errors are RFC 9457 problem documents (application/problem+json)."
    ),
    mode="strict",  # only the views decorated here; the web pages are not part of it
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_model=Problem,
    before=_before_validation,
    security_schemes=[
        SecurityScheme(name=BEARER, data=SecuritySchemeData(type="http", scheme="bearer")),
    ],
)


def responses(*problems: int, **successes) -> Responses:
    """The documented answers of an operation: its successes and the problems it may give
    (every operation may also answer 400, 413, 415, 429, and 503 while the database or an
    authenticator key can't be read)."""
    always = {400, 413, 415, 429, 503}
    codes = {f"HTTP_{status}": Problem for status in sorted({*always, *problems})}
    return Responses(**successes, **codes)


class ApiProblem(Exception):
    """Raised anywhere in the API to answer with an RFC 9457 problem document."""

    def __init__(self, status: int, detail: str, **extra):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


TITLES = {
    400: N_("Bad request"),
    401: N_("Not signed in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflict"),
    413: N_("Too large"),
    415: N_("Unsupported media type"),
    422: N_("Not valid"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    502: N_("Delivery failed"),
    503: N_("Unavailable"),
}


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    retry_after: int | None = None,
    errors: dict | None = None,
    headers: dict | None = None,
):
    """An RFC 9457 problem response: `type`, `title`, `status`, `detail` and the extension
    members `code` (machine-readable), `retry_after` (seconds, on 429) and `errors`."""
    body = Problem(
        title=gettext(TITLES.get(status, N_("Error"))),
        status=status,
        detail=gettext(detail) if detail else detail,
        code=code,
        retry_after=retry_after,
        errors=errors,
    ).model_dump(exclude_none=True)
    response = current_app.json.response(body)  # as compact as every other answer
    response.status_code = status
    response.mimetype = PROBLEM_TYPE
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def answers_api() -> bool:
    """Whether this request is for the API (its errors are problem documents, not pages)."""
    return request.path == PREFIX or request.path.startswith(f"{PREFIX}/")


def error_response(error: BaseException):
    """The problem document for an error raised while serving an API request."""
    if isinstance(error, ApiProblem):
        return problem(error.status, error.detail, **error.extra)
    if isinstance(error, RateLimitExceeded):
        current = limiter.current_limit
        wait = max(1, int(current.reset_at - time.time())) if current is not None else 60
        return problem(
            429,
            ngettext(
                "Too many attempts from this network. Try again in %(num)d second.",
                "Too many attempts from this network. Try again in %(num)d seconds.",
                wait,
            ),
            code="rate_limited",
            retry_after=wait,
        )
    if isinstance(error, HTTPException):
        status = error.code or 500
        if status < 400:
            return error  # a redirect (a trailing slash), not an error
        if status == 401:
            return _unauthorized()
        detail = error.description if getattr(error, "twostep_message", False) else None
        headers = {}
        if status == 405 and getattr(error, "valid_methods", None):
            headers["Allow"] = ", ".join(error.valid_methods)
        return problem(
            status, detail or _DETAILS.get(status, TITLES.get(status, "")), headers=headers
        )
    if isinstance(error, UnicodeDecodeError):
        return problem(400, N_("The request was not valid UTF-8 text."))
    current_app.logger.exception("Unhandled error in the API")
    return problem(500, N_("We could not finish that. Please try again."))


_DETAILS = {
    400: N_("Something in that request was not right."),
    404: N_("There is nothing at this address."),
    405: N_("This address cannot be used with that method."),
    413: N_("That request was too large."),
}


@bp.errorhandler(ApiProblem)
@bp.errorhandler(RateLimitExceeded)
def _handle_problem(error):
    return error_response(error)


def _unauthorized(detail: str = N_("Sign in first: send Authorization: Bearer <token>.")):
    return problem(401, detail, code="unauthorized", headers={"WWW-Authenticate": "Bearer"})


# --- the request as JSON ------------------------------------------------------------------


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


@bp.before_request
def json_only():
    """No cookie session here; a body must be JSON (415 otherwise, 400 when malformed)."""
    # The API never looks at the cookie: nobody is signed in until a token says so.
    g.user_session = None
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding")
    if not has_body:
        return
    if not request.is_json:
        raise ApiProblem(415, N_("Send the request body as JSON (Content-Type: application/json)."))
    body = request.get_json(silent=True)
    if body is None:
        raise ApiProblem(400, N_("The request body is not valid JSON."))
    if _has_nul(body):
        raise ApiProblem(400, N_("The request contained a character that isn't allowed."))


@bp.after_request
def no_store(response):
    """Answers may hold tokens and codes' destinations: no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"
    return response


# --- bearer tokens ------------------------------------------------------------------------


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def signed_in(view):
    """The view needs a signed-in app session: it gets the person; otherwise 401 (a browser's
    cookie counts for nothing here)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        if token is None:
            return _unauthorized()
        row = sessions.find(token, kind=APP)
        if row is None or row.state != ACTIVE:
            return _unauthorized(N_("This token is not valid any more (signed out or expired)."))
        g.user_session = row  # what the web's current_session() (and Flask-Login) answer now
        return view(row.user, *args, **kwargs)

    return wrapper


def pending_sign_in(token: str):
    """The app's sign-in waiting for its second step that `pending_token` names, or 401."""
    row = sessions.find(token, kind=APP)
    if row is None or row.state != PENDING:
        raise ApiProblem(
            401,
            N_(
                "This sign-in has expired or is not valid. "
                "Start again with your email and password."
            ),
            code="sign_in_expired",
        )
    g.user_session = row
    return row


def seconds_until(moment) -> int:
    """Whole seconds from now until `moment` (at least 1): a problem's `retry_after`."""
    return max(1, math.ceil((moment - now()).total_seconds()))


def spec_document() -> dict:
    """The OpenAPI document as served: problems are `application/problem+json`."""
    document = json.loads(json.dumps(spec.spec))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if int(status) >= 400 and "application/json" in content:
                    answer["content"] = {PROBLEM_TYPE: content["application/json"]}
    return document


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API, generated from the code."""
    return current_app.json.response(spec_document())
