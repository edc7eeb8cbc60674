"""Hot statements whose SQL is written once per process and kind of database, then reused.

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

The sign-in's writes are the same few UPDATEs and INSERTs each time: a `CompiledWrite` does
for them what a `CompiledSelect` does for reads, and returns the count of rows changed (UPDATE,
DELETE) or the new row's id (INSERT).
"""

from collections.abc import Callable

from peewee import (
    AutoField,
    CharField,
    Field,
    ForeignKeyField,
    Insert,
    IntegerField,
    TextField,
    Value,
)

from models import db


class Slot:
    """A named parameter of a compiled statement, filled in at each run."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<slot {self.name}>"


class _Compiled:
    """A statement built once per kind of database with named slots; each run fills them."""

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
            self._check(query)
            sql, params = query.sql()
            named = {param.name for param in params if isinstance(param, Slot)}
            if named != set(self._slots):
                raise ValueError(f"slots {sorted(self._slots)} but the query uses {sorted(named)}")
            found = self._by_database[type(database)] = (query, sql, params)
        return found

    def _check(self, query) -> None:
        pass

    def _execute(self, values: dict):
        database = db.obj
        query, sql, params = self._compiled(database)
        converted = {}
        for name, field in self._slots.items():
            value = values[name]
            converted[name] = field.db_value(value) if field is not None else value
        cursor = database.execute_sql(
            sql, [converted[p.name] if isinstance(p, Slot) else p for p in params]
        )
        return database, query, cursor


# What a peewee reader keeps of one cursor; everything else it works out (on its first row)
# from the statement and the columns the database names, the same on every run.
_PER_CURSOR = frozenset(("cursor", "count", "index", "initialized", "populated", "row_cache"))


class CompiledSelect(_Compiled):
    """A SELECT written once per kind of database; `rows(**values)` runs it.

    peewee's reader for the query turns rows into objects. Before its first row it works out
    which column goes to which model, field and converter, and how the joined objects link:
    as long as writing the SQL for a lookup. That plan depends only on the statement, so it is
    worked out on the first run and handed to the readers of later runs."""

    def __init__(self, build: Callable, **slots: Field | None):
        super().__init__(build, **slots)
        self._reader_plans: dict[type, dict] = {}
        self._object_plans: dict[type, tuple] = {}

    def rows(self, **values) -> list:
        """Run the statement with `values` in its slots; the rows as peewee reads them."""
        database, query, cursor = self._execute(values)
        # peewee's reader for this query (models, joins, tuples: whatever it selects).
        reader = query._get_cursor_wrapper(cursor)
        plan = self._reader_plans.get(type(database))
        if plan is not None:
            reader.__dict__.update(plan)
            reader.initialized = True
        found = list(reader)
        if plan is None and reader.initialized:
            self._reader_plans[type(database)] = {
                name: value for name, value in vars(reader).items() if name not in _PER_CURSOR
            }
        return found

    def objects(self, **values) -> list[dict]:
        """Run a SELECT of whole models (joined, say) and named values; each row as a dict of
        model class -> its object (None when the row has none: an outer join that found
        nothing), and alias -> value.

        The objects are made straight from the row with a plan worked out once: no link
        between them (the caller sets what it needs), no converting of the values the
        database drivers already hand back as Python wants them (text, integers). For the
        lookups every request makes, where peewee's reader costs more than the query."""
        database, query, cursor = self._execute(values)
        plan = self._object_plans.get(type(database))
        if plan is None:
            plan = self._object_plans[type(database)] = _object_plan(query)
        groups, extras = plan
        found = []
        for row in cursor.fetchall():
            objects = {}
            for model, key_index, columns in groups:
                if key_index is not None and row[key_index] is None:
                    objects[model] = None
                    continue
                data = {}
                for index, name, convert in columns:
                    value = row[index]
                    data[name] = value if convert is None or value is None else convert(value)
                made = objects[model] = model(__no_default__=True)
                made.__data__ = data
            for index, name in extras:
                objects[name] = row[index]
            found.append(objects)
        return found

    def first(self, **values):
        found = self.rows(**values)
        return found[0] if found else None


# Fields whose values every database driver already hands back as the Python value.
_NATIVE = (AutoField, CharField, TextField, IntegerField, ForeignKeyField)


def _object_plan(query) -> tuple[list, list]:
    """For `CompiledSelect.objects`: per model selected, in order, its primary key's column
    and (column, field name, converter or None) of each of its fields; and the aliased
    values' (column, name)."""
    groups: dict = {}
    extras = []
    for index, node in enumerate(query._returning):
        if isinstance(node, Field):
            convert = None if isinstance(node, _NATIVE) else node.python_value
            key, columns = groups.setdefault(node.model, [None, []])
            columns.append((index, node.name, convert))
            if node is node.model._meta.primary_key:
                groups[node.model][0] = index
        elif node.is_alias():
            extras.append((index, node._alias))
        else:
            raise ValueError(f"objects() reads models and named values, not {node!r}")
    return [(model, key, columns) for model, (key, columns) in groups.items()], extras


class CompiledWrite(_Compiled):
    """An UPDATE, DELETE or INSERT written once per kind of database; `run(**values)` runs
    it and returns how many rows it changed, or for an INSERT the new row's id.

    An INSERT must name every column: a column it leaves out would take its default once,
    when the SQL is written, and keep that value for every later row."""

    def _check(self, query) -> None:
        if isinstance(query, Insert):
            given = set(query._insert) if isinstance(query._insert, dict) else set()
            missing = [
                field.name
                for field in query.model._meta.sorted_fields
                if field is not query.model._meta.primary_key and field not in given
            ]
            if missing:
                raise ValueError(f"an INSERT written once must name {', '.join(missing)}")

    def run(self, **values):
        database, query, cursor = self._execute(values)
        if isinstance(query, Insert):
            if database.returning_clause:
                return cursor.fetchone()[0]
            return cursor.lastrowid
        return cursor.rowcount
