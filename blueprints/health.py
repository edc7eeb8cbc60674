"""The load balancer's health check: 503 when the database does not answer (take this instance
out), 200 "degraded" when it does but something the instance leans on is wrong, else 200 "ok".
"""

import threading

from flask import Blueprint, current_app, jsonify
from peewee import PeeweeException
from playhouse.pool import MaxConnectionsExceeded

import models
from blueprints.extensions import limiter
from blueprints.web import allow_pending

bp = Blueprint("health", __name__)


class _DatabaseCheck:
    """One `SELECT 1` on its own thread, so a database that hangs cannot hold the answer."""

    def __init__(self, logger):
        self.logger = logger
        self.done = threading.Event()
        self.ok = False

    def run(self) -> None:
        try:
            models.db.connect(reuse_if_open=True)
            models.db.execute_sql("SELECT 1").fetchone()
            self.ok = True
        except (PeeweeException, MaxConnectionsExceeded, OSError) as error:
            self.logger.warning(
                "Health check: the database does not answer (%s)", type(error).__name__
            )
        finally:
            try:
                if not models.db.is_closed():
                    models.db.close()
            except (PeeweeException, OSError):
                pass
            self.done.set()


_check_lock = threading.Lock()
_current_check: list[_DatabaseCheck] = []


def database_answers(timeout: float) -> bool:
    """Whether the database answers a `SELECT 1` within `timeout` seconds. While an earlier
    check still waits on a hung database, this one waits on it rather than starting another."""
    with _check_lock:
        if not _current_check or _current_check[0].done.is_set():
            _current_check[:] = [_DatabaseCheck(current_app.logger)]
            threading.Thread(target=_current_check[0].run, name="health-check", daemon=True).start()
        check = _current_check[0]
    return check.done.wait(timeout) and check.ok


def rate_limits_storage_answers() -> bool:
    """Whether the rate limits' shared storage (Redis) answers; memory always does."""
    if not current_app.config["RATELIMIT_STORAGE_URI"].startswith(("redis", "rediss")):
        return True
    try:
        return bool(limiter.storage.check())
    except Exception:  # check() itself may raise when Redis is gone
        return False


@bp.route("/healthz")
@allow_pending
def healthz():
    """503 {"status": "unavailable"} when a `SELECT 1` does not answer within
    HEALTH_CHECK_TIMEOUT; 200 {"status": "degraded", ...} when Redis does not answer (limits
    per process) or some stored authenticator keys can't be opened; else 200 {"status": "ok"}."""
    config = current_app.config
    if not database_answers(config["HEALTH_CHECK_TIMEOUT"]):
        response = jsonify(status="unavailable", database="not answering")
        response.status_code = 503
    else:
        problems = {}
        if not rate_limits_storage_answers():
            problems["rate_limits"] = "Redis does not answer: limits counted per process"
        if config.get("ENCRYPTION_KEYS_PROBLEM"):
            problems["encryption_keys"] = config["ENCRYPTION_KEYS_PROBLEM"]
        response = jsonify(status="degraded" if problems else "ok", database="ok", **problems)
    response.headers["Cache-Control"] = "no-store"
    return response
