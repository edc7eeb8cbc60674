"""The app exactly as production serves it, plus two things only the benchmark uses: a baseline
route (one indexed read: the floor of this stack) and an `X-Bench-Queries` header counting the
SQL statements of each request through peewee's query log. gunicorn loads
`bench.server:create_bench_app()`."""

import logging
import random

from flask import jsonify

from app import create_app
from models.people import User


class QueryCounter(logging.Handler):
    """Counts peewee's query log records (one per statement sent to the database). Records
    of its child loggers are not statements ("peewee.pool": "Created new connection ...",
    after gunicorn recycles a worker) and are not counted."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        if record.name == "peewee":
            self.count += 1


def create_bench_app():
    app = create_app()
    counter = QueryCounter()
    peewee_log = logging.getLogger("peewee")
    peewee_log.addHandler(counter)
    peewee_log.setLevel(logging.DEBUG)
    peewee_log.propagate = False
    highest_user_id = None

    @app.route("/bench/baseline")
    def baseline():
        """One read of a login by its primary key."""
        nonlocal highest_user_id
        if highest_user_id is None:
            highest_user_id = User.select(User.id).order_by(User.id.desc()).first().id
        user = User.get_by_id(random.randint(1, highest_user_id))
        return jsonify(id=user.id, name=user.name)

    def reset_count():
        counter.count = 0

    def report_count(response):
        response.headers["X-Bench-Queries"] = str(counter.count)
        return response

    # First before every other hook, and last after every other hook.
    app.before_request_funcs.setdefault(None, []).insert(0, reset_count)
    app.after_request_funcs.setdefault(None, []).insert(0, report_count)
    return app
