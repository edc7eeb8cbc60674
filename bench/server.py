"""The app exactly as production serves it, plus two things only the benchmark uses: a baseline
route (the floor's one indexed read, through every request hook TwoStep has) and an
`X-Bench-Queries` header counting the SQL statements of each request. gunicorn loads
`bench.server:create_bench_app()`."""

import random

from flask import jsonify

import models
from app import create_app
from models.people import User


def count_statements(database) -> list[int]:
    """Count every statement `database` sends (peewee sends each through `execute_sql`) in the
    returned one-item list. Counted there rather than through peewee's DEBUG query log, which
    would build a log record per statement that production never builds."""
    counter = [0]
    send = database.execute_sql

    def counted(sql, params=None, *args, **kwargs):
        counter[0] += 1
        return send(sql, params, *args, **kwargs)

    database.execute_sql = counted
    return counter


def create_bench_app():
    """TwoStep's app with the baseline route and the statement count."""
    app = create_app()
    counter = count_statements(models.db.obj)
    highest_user_id = None

    @app.route("/bench/baseline")
    def baseline():
        """One read of a login by its primary key."""
        nonlocal highest_user_id
        if highest_user_id is None:
            highest_user_id = User.select(User.id).order_by(User.id.desc()).first().id
        user = (
            User.select(User.id, User.name)
            .where(User.id == random.randint(1, highest_user_id))
            .get()
        )
        return jsonify(id=user.id, name=user.name)

    def reset_count():
        counter[0] = 0

    def report_count(response):
        response.headers["X-Bench-Queries"] = str(counter[0])
        return response

    # First before every other hook, and last after every other hook.
    app.before_request_funcs.setdefault(None, []).insert(0, reset_count)
    app.after_request_funcs.setdefault(None, []).insert(0, report_count)
    return app
