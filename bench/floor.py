"""The floor: a bare Flask + peewee app with one route doing one indexed SELECT (a login's name
by its primary key) on the benchmark's database, and nothing else: no extensions, no request
hooks but the connection's. What TwoStep's pages cost is reported against it. gunicorn loads
`bench.floor:create_floor_app()`, with the same settings as TwoStep's server.

`/floor` opens and closes its connection on every request, as the floor the budgets were set
against did (issue 22). On SQLite that is a new connection and its PRAGMAs each time, which
TwoStep does not pay (it keeps one per thread, app.py's close_database), so `/floor/kept`
measures the same read with the connection kept: the floor a reader should compare SQLite
with. On PostgreSQL both hand the connection back to the pool and cost the same."""

import os
import random

from flask import Flask, jsonify, request
from peewee import CharField, Model, SqliteDatabase

import models


class Login(Model):
    """The columns of TwoStep's `user` table the route reads (not TwoStep's model)."""

    name = CharField()

    class Meta:
        database = models.db
        table_name = "user"


def create_floor_app():
    """The floor app, bound to DATABASE_URL with the connection settings TwoStep uses in
    production (PostgreSQL pooled, SQLite in WAL mode)."""
    app = Flask(__name__)
    models.init_database(os.environ["DATABASE_URL"], pool_size=8)
    highest_id = None

    @app.before_request
    def connect():
        models.db.connect(reuse_if_open=True)

    @app.teardown_request
    def close(exc):
        keep = request.endpoint == "floor_kept" and isinstance(models.db.obj, SqliteDatabase)
        if not keep and not models.db.is_closed():
            models.db.close()

    def read_one():
        """One read of a login by its primary key."""
        nonlocal highest_id
        if highest_id is None:
            highest_id = Login.select(Login.id).order_by(Login.id.desc()).first().id
        login = Login.get_by_id(random.randint(1, highest_id))
        return jsonify(id=login.id, name=login.name)

    app.add_url_rule("/floor", "floor", read_one)
    app.add_url_rule("/floor/kept", "floor_kept", read_one)

    @app.route("/healthz")
    def healthz():
        """Up (what bench/run.py waits for before it measures)."""
        return "ok"

    return app
