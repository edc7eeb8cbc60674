"""The load balancer's health check: 200 only while the database answers."""

from flask import Blueprint, current_app, jsonify
from peewee import PeeweeException
from playhouse.pool import MaxConnectionsExceeded

import models
from blueprints.web import allow_pending

bp = Blueprint("health", __name__)


@bp.route("/healthz")
@allow_pending
def healthz():
    """200 {"status": "ok"} when a `SELECT 1` works, else 503 (take this instance out)."""
    try:
        models.db.connect(reuse_if_open=True)
        models.db.execute_sql("SELECT 1").fetchone()
    except (PeeweeException, MaxConnectionsExceeded, OSError) as error:
        current_app.logger.warning(
            "Health check: the database does not answer (%s)", type(error).__name__
        )
        response = jsonify(status="unavailable", database="not answering")
        response.status_code = 503
    else:
        response = jsonify(status="ok", database="ok")
    response.headers["Cache-Control"] = "no-store"
    return response
