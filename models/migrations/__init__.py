"""Versioned schema migrations: `flask db upgrade` applies the ones a database has not had yet.

Each migration is a module here named `NNNN_what_it_does.py` with a function
`upgrade(database, migrator)` (migrator: playhouse.migrate's SchemaMigrator for that database).
A migration never imports the live models: it defines frozen copies of the tables it creates,
so it keeps meaning the same thing when the models change later. The `schema_version` table
records which versions a database has. Each migration runs in its own transaction together
with its `schema_version` row, so a failed one leaves nothing half done; on PostgreSQL an
advisory lock lets several instances run the upgrade at once safely.
"""

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from peewee import CharField, DatabaseProxy, DateTimeField, IntegerField, Model, PostgresqlDatabase
from playhouse.migrate import SchemaMigrator

from models.clock import system_now

_NAME = re.compile(r"^(\d{4})_(\w+)\.py$")
# Any constant of our own: the PostgreSQL advisory lock that serialises concurrent upgrades.
_LOCK_ID = 0x2573_7E9


class SchemaVersion(Model):
    """One applied migration."""

    version = IntegerField(primary_key=True)
    name = CharField(max_length=200)
    applied_at = DateTimeField()

    class Meta:
        table_name = "schema_version"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str

    @property
    def module(self):
        return importlib.import_module(f"{__name__}.{self.name}")


def available() -> list[Migration]:
    """Every migration in this folder, oldest first."""
    found = []
    for path in Path(__file__).parent.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.stem))
    return sorted(found, key=lambda migration: migration.version)


def latest_version() -> int:
    return available()[-1].version


def _real(database):
    return database.obj if isinstance(database, DatabaseProxy) else database


def applied_versions(database) -> set[int]:
    """The versions this database has had (empty for a new database)."""
    database = _real(database)
    with database.bind_ctx([SchemaVersion]):
        if not SchemaVersion.table_exists():
            return set()
        return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def pending(database) -> list[Migration]:
    """The migrations this database still needs, oldest first."""
    done = applied_versions(database)
    return [migration for migration in available() if migration.version not in done]


def upgrade(database, target: int | None = None) -> list[str]:
    """Apply the missing migrations (up to `target`, by default all); return their names."""
    database = _real(database)
    migrator = SchemaMigrator.from_database(database)
    applied = []
    with database.bind_ctx([SchemaVersion]):
        database.create_tables([SchemaVersion], safe=True)
        for migration in available():
            if target is not None and migration.version > target:
                break
            # SQLite: foreign-key enforcement off while tables are rebuilt (it can only be
            # switched outside a transaction); everything else inside one transaction.
            with migrator.migration_context():
                if isinstance(database, PostgresqlDatabase):
                    database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                if SchemaVersion.get_or_none(SchemaVersion.version == migration.version):
                    continue  # applied meanwhile by another instance
                migration.module.upgrade(database, migrator)
                SchemaVersion.create(
                    version=migration.version, name=migration.name, applied_at=system_now()
                )
            applied.append(migration.name)
    return applied


# Helpers that let a migration run on a database that already has the change (a development
# database made by `create_tables()`), so adopting one never fails halfway.


def add_column(database, migrator, table: str, name: str, field) -> None:
    """Add column `name` to `table` unless it is there already."""
    if name not in {column.name for column in database.get_columns(table)}:
        migrator.add_column(table, name, field).run()


def add_index(database, migrator, table: str, columns: tuple, unique: bool = False) -> None:
    """Add the index on `columns` of `table` (named as peewee names it) unless it exists."""
    from playhouse.migrate import make_index_name

    if make_index_name(table, columns) not in {i.name for i in database.get_indexes(table)}:
        migrator.add_index(table, columns, unique).run()
