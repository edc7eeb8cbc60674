"""Database models. `db` is a proxy bound to a real database by `init_database()`."""

from peewee import DatabaseProxy, Model
from playhouse.db_url import connect

db = DatabaseProxy()


class BaseModel(Model):
    """Every table of TwoStep lives in the proxied database."""

    class Meta:
        database = db
        legacy_table_names = False


def init_database(
    url: str,
    pool_size: int = 0,
    pool_stale_seconds: int = 300,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
):
    """Bind `db` to the database named by `url` (sqlite:///path or postgresql://...).

    PostgreSQL connections are pooled (playhouse.pool) when `pool_size` > 0 or the scheme is
    postgresql+pool://: a request takes a connection at its start and gives it back at its end
    instead of opening a new one each time. With timeouts (seconds), a PostgreSQL server that
    does not answer costs a request at most `connect_timeout` to connect and
    `statement_timeout` (plus half a second) per statement: the server ends slower statements,
    and models.deadline cuts a connection whose answer never comes.
    """
    if url.startswith("postgres"):
        return _bind(
            _postgresql(url, pool_size, pool_stale_seconds, connect_timeout, statement_timeout)
        )
    if url.startswith("sqlite"):
        database = connect(
            url,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 5000,
                "synchronous": "normal",
            },
        )
    else:
        database = connect(url, prefer_psycopg3=True)
    return _bind(database)


def _postgresql(url, pool_size, pool_stale_seconds, connect_timeout, statement_timeout):
    """A PostgreSQL database (pooled or not) with the connect and statement timeouts."""
    from playhouse.db_url import parse

    from models.deadline import GuardedPooledPostgresqlDatabase, GuardedPostgresqlDatabase

    scheme, rest = url.split("://", 1)
    params = parse(f"{scheme.split('+')[0]}://{rest}")
    params["prefer_psycopg3"] = True
    if connect_timeout:
        # libpq counts whole seconds, at least 2.
        params["connect_timeout"] = max(2, int(connect_timeout + 0.999))
    if statement_timeout:
        params["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    if pool_size > 0 or "+pool://" in url:
        database = GuardedPooledPostgresqlDatabase(
            max_connections=pool_size or 8,
            stale_timeout=pool_stale_seconds,
            # Seconds a request waits for a free connection.
            timeout=connect_timeout or 10,
            **params,
        )
    else:
        database = GuardedPostgresqlDatabase(**params)
    database.statement_deadline = statement_timeout + 0.5 if statement_timeout else None
    return database


def write_transaction():
    """A transaction that reads and then writes rows others may be writing at once. On
    SQLite it takes the write lock at BEGIN (IMMEDIATE): a deferred one that read first
    would fail with "database is locked" when another writer commits before its write,
    where waiting (busy_timeout) is what is wanted. Elsewhere `db.atomic()`."""
    from peewee import SqliteDatabase

    if isinstance(db.obj, SqliteDatabase) and not db.in_transaction():
        return db.atomic(lock_type="IMMEDIATE")
    return db.atomic()


def _bind(database):
    db.initialize(database)
    return database


def all_models():
    """Every model, in an order where each table comes after the tables it references."""
    from models.deliveries import CodeDelivery, EarlyReport
    from models.events import SecurityEvent
    from models.outbox import OutboxMessage
    from models.passwords import PasswordResetToken
    from models.people import Center, Membership, User
    from models.recovery import FreshRecoveryCodes, RecoveryCode, TrustedDevice
    from models.sessions import UserSession
    from models.verification import (
        OneTimeCode,
        PendingSetup,
        VerificationMethod,
        WebAuthnChallenge,
    )

    return [
        Center,
        User,
        Membership,
        UserSession,
        VerificationMethod,
        PendingSetup,
        OneTimeCode,
        CodeDelivery,
        EarlyReport,
        SecurityEvent,
        OutboxMessage,
        PasswordResetToken,
        RecoveryCode,
        FreshRecoveryCodes,
        TrustedDevice,
        WebAuthnChallenge,
    ]


def create_tables():
    """Create every table that does not exist yet (idempotent)."""
    with db.atomic():
        db.create_tables(all_models(), safe=True)
