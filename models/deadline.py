"""A client-side deadline for PostgreSQL statements.

PostgreSQL's own `statement_timeout` ends a slow statement on the server, but when the network
or the server hangs its answer never comes back, and psycopg waits on the socket for ever (a
worker held until gunicorn kills it). Here one watcher thread per process shuts down the
socket of a statement still running `seconds` after it started: psycopg then fails at once
with an OperationalError, the connection is marked broken (the pool drops it) and the request
answers 503 instead of hanging.
"""

import contextlib
import os
import socket
import threading
import time
from itertools import count

from peewee import OperationalError, PostgresqlDatabase
from playhouse.pool import PooledPostgresqlDatabase


class _Watcher:
    """The per-process thread that cuts connections past their deadline."""

    def __init__(self):
        self._condition = threading.Condition()
        self._running: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket fd)
        self._tokens = count(1)
        self._next_wake = 0.0
        self._thread: threading.Thread | None = None

    def watch(self, fd: int, seconds: float) -> int:
        """Start watching the socket `fd` for `seconds`; return the token that releases it."""
        deadline = time.monotonic() + seconds
        with self._condition:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="statement-deadline", daemon=True
                )
                self._thread.start()
            token = next(self._tokens)
            self._running[token] = (deadline, fd)
            if deadline < self._next_wake:  # only a shorter deadline than any before wakes it
                self._condition.notify()
        return token

    def release(self, token: int) -> bool:
        """The statement ended (answered or failed): stop watching it. False if it had been
        cut for running past its deadline."""
        with self._condition:
            return self._running.pop(token, None) is not None

    def _run(self) -> None:
        idle_wait = 1.0
        while True:
            with self._condition:
                moment = time.monotonic()
                for token, (deadline, fd) in list(self._running.items()):
                    if deadline <= moment:
                        del self._running[token]
                        _cut(fd)
                soonest = min((deadline for deadline, _fd in self._running.values()), default=None)
                self._next_wake = soonest if soonest is not None else moment + idle_wait
                self._condition.wait(max(0.01, self._next_wake - moment))


def _cut(fd: int) -> None:
    """Shut the socket down under psycopg's feet (on a duplicate, so psycopg still owns fd)."""
    with contextlib.suppress(OSError):
        duplicate = socket.socket(fileno=os.dup(fd))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()


_WATCHER = _Watcher()


class DeadlineMixin:
    """Every statement, BEGIN, COMMIT and ROLLBACK of this database gets a client-side deadline
    of `statement_deadline` seconds (None: no deadline)."""

    statement_deadline: float | None = None

    @contextlib.contextmanager
    def _deadline(self, connection=None, seconds=None):
        """Watch `connection` (this thread's by default) for `seconds` (the statement
        deadline by default); yields a dict whose "cut" says whether the watcher cut it."""
        outcome = {"cut": False}
        seconds = seconds or self.statement_deadline
        if connection is None and not self._state.closed:
            connection = self._state.conn
        if not seconds or connection is None:
            yield outcome
            return
        try:
            fd = connection.pgconn.socket
        except Exception:  # a connection already broken: psycopg says so when it is used
            yield outcome
            return
        token = _WATCHER.watch(fd, seconds)
        try:
            yield outcome
        finally:
            outcome["cut"] = not _WATCHER.release(token)

    def execute_sql(self, sql, params=None, *args, **kwargs):
        """Run a statement under the deadline (peewee's own execute_sql otherwise)."""
        if self._state.closed and self.autoconnect:
            self.connect()
        with self._deadline():
            return super().execute_sql(sql, params, *args, **kwargs)

    def begin(self, *args, **kwargs):
        """BEGIN under the deadline."""
        with self._deadline():
            return super().begin(*args, **kwargs)

    def commit(self, *args, **kwargs):
        """COMMIT under the deadline."""
        with self._deadline():
            return super().commit(*args, **kwargs)

    def rollback(self, *args, **kwargs):
        """ROLLBACK under the deadline."""
        with self._deadline():
            return super().rollback(*args, **kwargs)


class GuardedPostgresqlDatabase(DeadlineMixin, PostgresqlDatabase):
    """PostgreSQL (psycopg 3) with the client-side deadline."""


class GuardedPooledPostgresqlDatabase(DeadlineMixin, PooledPostgresqlDatabase):
    """Pooled PostgreSQL (psycopg 3) with the client-side deadline, which also bounds the
    pool's check of a connection it hands out (a `SELECT 1`)."""

    def _is_closed(self, conn):
        """The pool's check of a connection before handing it out. A server that lets this
        `SELECT 1` run past its (short) deadline is hung: say so at once rather than also
        wait for a new connection to time out."""
        with self._deadline(conn, min(self.statement_deadline or 1.0, 1.0)) as outcome:
            closed = super()._is_closed(conn)
        if outcome["cut"]:
            raise OperationalError("The database did not answer the pool's connection check.")
        return closed
