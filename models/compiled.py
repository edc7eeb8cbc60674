"""Hot SELECTs whose SQL is written once per process and kind of database, then reused.

peewee takes longer to write a statement's SQL than SQLite or PostgreSQL take to answer an
indexed lookup, and the pages of a signed-in person run the same few lookups on every request
(the session, the window's lists). A `CompiledSelect` builds its query once with named slots
where the per-request values go, keeps the SQL and parameters, and each run only fills the
slots and lets peewee's own reader for that query turn the rows into model objects. The
statements still go through `Database.execute_sql`, so peewee's query log sees each one.

    RECENT = CompiledSelect(
        lambda user: Event.select().where(Event.user == user).limit(8),
        user=Event.user,  # the field whose db_value() converts what is passed in
    )
    RECENT.rows(user=some_user)
"""

from collections.abc import Callable

from peewee import Field, Value

from models import db


class Slot:
    """A named parameter of a compiled statement, filled in at each run."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<slot {self.name}>"


class CompiledSelect:
    """A SELECT written once per kind of database; `rows(**values)` runs it."""

    def __init__(self, build: Callable, **slots: Field | None):
        self._build = build
        self._slots = slots  # name -> the field that converts its value (or None)
        self._by_database: dict[type, tuple] = {}

    def _compiled(self, database) -> tuple:
        found = self._by_database.get(type(database))
        if found is None:
            query = self._build(
                **{name: Value(Slot(name), converter=False) for name in self._slots}
            )
            sql, params = query.sql()
            named = {param.name for param in params if isinstance(param, Slot)}
            if named != set(self._slots):
                raise ValueError(f"slots {sorted(self._slots)} but the query uses {sorted(named)}")
            found = self._by_database[type(database)] = (query, sql, params)
        return found

    def rows(self, **values) -> list:
        database = db.obj
        query, sql, params = self._compiled(database)
        converted = {}
        for name, field in self._slots.items():
            value = values[name]
            converted[name] = field.db_value(value) if field is not None else value
        cursor = database.execute_sql(
            sql, [converted[p.name] if isinstance(p, Slot) else p for p in params]
        )
        # peewee's reader for this query (models, joins, tuples: whatever it selects).
        return list(query._get_cursor_wrapper(cursor))

    def first(self, **values):
        found = self.rows(**values)
        return found[0] if found else None
