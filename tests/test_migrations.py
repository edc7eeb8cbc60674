"""Schema migrations: a database built by the migrations is the one the models describe, and
upgrading keeps the data. Runs on SQLite, and on PostgreSQL too with TEST_DATABASE_URL."""

import uuid
from contextlib import contextmanager
from datetime import datetime

import pytest
from peewee import Table

import models
from models import migrations
from tests.conftest import TEST_DATABASE_URL


@contextmanager
def throwaway_database(tmp_path, label):
    """A URL for a new, empty database, dropped afterwards (a file on SQLite)."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / f'{label}.db'}"
        return
    import psycopg

    server = TEST_DATABASE_URL.rsplit("/", 1)[0]
    name = f"twostep_{label}_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{server}/postgres", autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        if not models.db.is_closed():
            models.db.close()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def schema(database) -> dict:
    """Tables, columns (type, null, primary key), indexes and foreign keys, comparable."""
    found = {}
    for table in database.get_tables():
        if table == "schema_version":
            continue
        found[table] = {
            "columns": sorted(
                (c.name, c.data_type.lower(), c.null, c.primary_key)
                for c in database.get_columns(table)
            ),
            "indexes": sorted(
                (i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)
            ),
            "foreign_keys": sorted(
                (f.column, f.dest_table, f.dest_column) for f in database.get_foreign_keys(table)
            ),
        }
    return found


def open_database(url):
    database = models.init_database(url)
    database.connect(reuse_if_open=True)
    return database


def test_the_migrations_build_the_schema_of_the_models(tmp_path):
    """A forgotten migration (a model changed, no migration added) fails here."""
    with throwaway_database(tmp_path, "migrated") as migrated_url:
        database = open_database(migrated_url)
        applied = migrations.upgrade(database)
        assert applied == [m.name for m in migrations.available()]
        migrated = schema(database)
        database.close()
        with throwaway_database(tmp_path, "created") as created_url:
            database = open_database(created_url)
            models.create_tables()
            created = schema(database)
            database.close()
    assert sorted(migrated) == sorted(created)
    for table in created:
        assert migrated[table] == created[table], f"table {table} differs"


def test_upgrade_from_the_first_migration_keeps_the_data(tmp_path):
    moment = datetime(2026, 1, 2, 3, 4, 5)
    with throwaway_database(tmp_path, "old") as url:
        database = open_database(url)
        assert migrations.upgrade(database, target=1) == ["0001_initial"]
        assert migrations.applied_versions(database) == {1}
        center = Table("center", ("id", "name", "created_at")).bind(database)
        user = Table(
            "user",
            (
                "id",
                "email",
                "name",
                "password_hash",
                "two_step_enabled",
                "failed_code_count",
                "created_at",
            ),
        ).bind(database)
        membership = Table("membership", ("id", "user_id", "center_id", "role", "is_admin"))
        method = Table(
            "verification_method",
            ("id", "user_id", "kind", "destination", "secret", "last_totp_step", "created_at"),
        )
        center.insert(id=1, name="Sunshine Early Learning", created_at=moment).execute()
        user.insert(
            id=7,
            email="teacher@example.com",
            name="Terry Teacher",
            password_hash="$argon2id$...",
            two_step_enabled=True,
            failed_code_count=2,
            created_at=moment,
        ).execute()
        membership.bind(database).insert(
            user_id=7, center_id=1, role="staff", is_admin=False
        ).execute()
        method.bind(database).insert(
            user_id=7,
            kind="email",
            destination="teacher@example.com",
            secret="",
            last_totp_step=0,
            created_at=moment,
        ).execute()

        applied = migrations.upgrade(database)
        assert applied == [m.name for m in migrations.available()][1:]
        assert migrations.pending(database) == []
        assert migrations.upgrade(database) == []  # nothing left: safe to run again

        # The live models read the old rows, new columns filled with their defaults.
        from models.people import Membership, User
        from models.verification import VerificationMethod

        teacher = User.get_by_id(7)
        assert (teacher.email, teacher.name, teacher.two_step_enabled) == (
            "teacher@example.com",
            "Terry Teacher",
            True,
        )
        assert teacher.failed_code_count == 2
        assert teacher.created_at == moment
        assert Membership.get(Membership.user == teacher).role == "staff"
        assert VerificationMethod.get(VerificationMethod.user == teacher).kind == "email"
        for field in User._meta.sorted_fields:
            getattr(teacher, field.name)  # every column of today's model exists
        # Code from before migration 0003 (it knows nothing of grace_signins_used) can still
        # create a login during a rolling upgrade: the column has a database default.
        user.insert(
            id=8,
            email="parent@example.com",
            name="Pat Parent",
            password_hash="$argon2id$...",
            two_step_enabled=False,
            failed_code_count=0,
            created_at=moment,
        ).execute()
        assert User.get_by_id(8).grace_signins_used == 0
        database.close()


def test_flask_db_upgrade_and_status(tmp_path):
    from app import create_app

    with throwaway_database(tmp_path, "cli") as url:
        app = create_app(
            {"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": url, "CLOCK": None}
        )
        runner = app.test_cli_runner()
        first = runner.invoke(args=["db", "upgrade"])
        assert first.exit_code == 0, first.output
        assert "Applied 0001_initial" in first.output
        assert f"at version {migrations.latest_version()}" in first.output
        again = runner.invoke(args=["db", "upgrade"])
        assert again.exit_code == 0 and "Applied" not in again.output
        status = runner.invoke(args=["db", "status"])
        assert "pending" not in status.output
        assert status.output.count("applied") == len(migrations.available())
        if not models.db.is_closed():
            models.db.close()


def test_a_database_made_before_migrations_existed_is_adopted(tmp_path):
    """`flask init-db` used to call create_tables(): such a database upgrades cleanly."""
    with throwaway_database(tmp_path, "adopted") as url:
        database = open_database(url)
        models.create_tables()
        migrations.upgrade(database)
        assert migrations.pending(database) == []
        database.close()


@pytest.mark.parametrize("name", [m.name for m in migrations.available()])
def test_each_migration_has_an_upgrade_function(name):
    module = next(m for m in migrations.available() if m.name == name).module
    assert callable(module.upgrade)
