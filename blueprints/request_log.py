"""One structured (JSON) log line per request: request id, user id, method, path, status and
duration. Nothing from the form, the query string or the cookies is ever logged, so no code,
key, password or phone number reaches the logs. The SQL query log (peewee's DEBUG records) keeps
the statements but never their parameters: those carry outbox bodies with codes, phone numbers
and hashes."""

import json
import logging
import re
import time
import uuid

from flask import Flask, g, request
from flask.logging import default_handler

REQUEST_ID_HEADER = "X-Request-ID"
# A request id from the load balancer is kept only if it looks like one (no log injection).
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Path segments bound to view arguments with these names are secrets (a reset link's token).
_SECRET_ARGS = re.compile(r"token|code|secret|key", re.IGNORECASE)


class JsonFormatter(logging.Formatter):
    """Every record as one line of JSON; request lines are JSON already and pass through."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "json_line", False):
            return record.getMessage()
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_id():
            line["request_id"] = g.request_id
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def has_request_id() -> bool:
    try:
        return "request_id" in g
    except RuntimeError:  # outside a request
        return False


class SqlParametersRedacted(logging.Filter):
    """Keeps peewee's query log records (the statement, which counts and tests look at) but
    replaces their parameter values by how many there were."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], str):
            parameters = message[1]
            count = len(parameters) if isinstance(parameters, list | tuple | dict) else 0
            record.msg = (message[0], f"[{count} parameters not logged]")
            record.args = ()
        return True


_REDACT_SQL = SqlParametersRedacted()


def redact_sql_parameters() -> None:
    """Install the filter on peewee's logger (once per process)."""
    logger = logging.getLogger("peewee")
    if not any(isinstance(each, SqlParametersRedacted) for each in logger.filters):
        logger.addFilter(_REDACT_SQL)


def init_app(app: Flask) -> None:
    """Give the app JSON logs and log each request when it ends (LOG_REQUESTS)."""
    default_handler.setFormatter(JsonFormatter())
    redact_sql_parameters()
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def start_request_clock():
        g.request_started = time.perf_counter()
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _GOOD_ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def log_request(response):
        response.headers.setdefault(REQUEST_ID_HEADER, g.get("request_id", ""))
        logger = app.logger
        if app.config.get("LOG_REQUESTS", True) and logger.isEnabledFor(logging.INFO):
            # The record made directly: logger.info() would also walk the stack to find its
            # caller, a third of the line's cost, for a place that is always this one.
            line = json.dumps(request_fields(response.status_code))
            logger.handle(
                logger.makeRecord(
                    logger.name, logging.INFO, __file__, 0, line, (), None,
                    func="log_request", extra={"json_line": True},
                )
            )  # fmt: skip
        return response


def request_fields(status: int) -> dict:
    """What the log line of this request says."""
    started = g.get("request_started")
    row = g.get("user_session")
    return {
        "event": "request",
        "request_id": g.get("request_id", ""),
        "method": request.method,
        "path": safe_path(),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "user_id": row.user_id if row is not None else None,
        "ip": request.remote_addr or "",
    }


def safe_path() -> str:
    """The path without its query string, with secret path segments (tokens) blanked."""
    path = request.path
    for name, value in (request.view_args or {}).items():
        if _SECRET_ARGS.search(name) and isinstance(value, str) and value:
            path = path.replace(value, "[redacted]")
    return path[:300]
