"""A client-side deadline for PostgreSQL statements.

PostgreSQL's own `statement_timeout` ends a slow statement on the server, but when the network
or the server hangs its answer never comes back, and psycopg waits on the socket for ever (a
worker held until gunicorn kills it). Here one watcher thread per process shuts down the
socket of a statement still running `seconds` after it started: psycopg then fails at once
with an OperationalError, the connection is marked broken (the pool drops it) and the request
answers 503 instead of hanging.

Every statement pays for this, so a statement only stamps its start in a dict (no lock: under
the GIL one `dict.pop` wins, the statement's or the watcher's), and the watcher looks at the
stamps a few times a second rather than being woken for each one.
"""

import contextlib
import os
import select
import socket
import threading
import time
from itertools import count

from peewee import OperationalError, PostgresqlDatabase
from playhouse.pool import PooledPostgresqlDatabase
from psycopg.pq import ConnStatus, TransactionStatus

# How often the watcher looks at the running statements: a hung statement is cut at most this
# long after its deadline.
LOOK_EVERY = 0.1


class _Watcher:
    """The per-process thread that cuts connections past their deadline."""

    def __init__(self):
        self._running: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket fd)
        self._tokens = count(1)
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        # A forked worker (gunicorn --preload) has no watcher thread: it starts its own.
        os.register_at_fork(after_in_child=self._forget_thread)

    def watch(self, fd: int, seconds: float) -> int:
        """Start watching the socket `fd` for `seconds`; return the token that releases it."""
        if self._thread is None:
            self._start()
        token = next(self._tokens)
        self._running[token] = (time.monotonic() + seconds, fd)
        return token

    def release(self, token: int) -> bool:
        """The statement ended (answered or failed): stop watching it. False if it had been
        cut for running past its deadline."""
        return self._running.pop(token, None) is not None

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="statement-deadline", daemon=True)
                thread.start()
                self._thread = thread

    def _forget_thread(self) -> None:
        self._thread = None
        self._starting = threading.Lock()
        self._running.clear()

    def _run(self) -> None:
        while True:
            time.sleep(LOOK_EVERY)
            moment = time.monotonic()
            for token, (deadline, fd) in list(self._running.items()):
                # The pop decides: a statement that ended meanwhile has popped its token.
                if deadline <= moment and self._running.pop(token, None) is not None:
                    _cut(fd)


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

    def _watch(self, connection=None, seconds=None) -> int | None:
        """Start watching `connection` (this thread's by default) for `seconds` (the statement
        deadline by default); the token for `_release`, or None when nothing is watched."""
        seconds = seconds or self.statement_deadline
        if connection is None and not self._state.closed:
            connection = self._state.conn
        if not seconds or connection is None:
            return None
        try:
            fd = connection.pgconn.socket
        except Exception:  # a connection already broken: psycopg says so when it is used
            return None
        return _WATCHER.watch(fd, seconds)

    @staticmethod
    def _release(token: int | None) -> bool:
        """Stop watching; True if the watcher had cut the connection (past its deadline)."""
        return token is not None and not _WATCHER.release(token)

    def _guarded(self, call, *args, **kwargs):
        """`call(*args, **kwargs)` (one round trip to the server) under the statement deadline."""
        token = self._watch()
        try:
            return call(*args, **kwargs)
        finally:
            self._release(token)

    def execute_sql(self, sql, params=None, *args, **kwargs):
        """Run a statement under the deadline (peewee's own execute_sql otherwise)."""
        if self._state.closed and self.autoconnect:
            self.connect()
        return self._guarded(super().execute_sql, sql, params, *args, **kwargs)

    def begin(self, *args, **kwargs):
        """BEGIN under the deadline."""
        return self._guarded(super().begin, *args, **kwargs)

    def commit(self, *args, **kwargs):
        """COMMIT under the deadline."""
        return self._guarded(super().commit, *args, **kwargs)

    def rollback(self, *args, **kwargs):
        """ROLLBACK under the deadline."""
        return self._guarded(super().rollback, *args, **kwargs)


class GuardedPostgresqlDatabase(DeadlineMixin, PostgresqlDatabase):
    """PostgreSQL (psycopg 3) with the client-side deadline."""


class GuardedPooledPostgresqlDatabase(DeadlineMixin, PooledPostgresqlDatabase):
    """Pooled PostgreSQL (psycopg 3) with the client-side deadline, which also bounds the
    pool's check of a connection it hands out (a `SELECT 1`)."""

    def _is_closed(self, conn):
        """The pool's check of a connection before handing it out. An idle connection whose
        socket has nothing to read is handed out as it is: a server that closed it (a restart,
        an idle timeout) has sent its goodbye or end of stream, and only then is the round
        trip of peewee's `SELECT 1` spent on every request. A server that lets that `SELECT 1`
        run past its (short) deadline is hung: say so at once rather than also wait for a new
        connection to time out (a hung server found later is cut at the statement deadline)."""
        if _idle_and_quiet(conn):
            return False
        token = self._watch(conn, min(self.statement_deadline or 1.0, 1.0))
        try:
            closed = super()._is_closed(conn)
        finally:
            cut = self._release(token)
        if cut:
            raise OperationalError("The database did not answer the pool's connection check.")
        return closed


def _idle_and_quiet(conn) -> bool:
    """Whether `conn` is open, outside any transaction, and its server has sent nothing since
    (no goodbye, no end of stream): checked locally, without a round trip."""
    try:
        pgconn = conn.pgconn
        if (
            conn.closed
            or conn.broken
            or pgconn.status != ConnStatus.OK
            or pgconn.transaction_status != TransactionStatus.IDLE
        ):
            return False
        waiting = select.poll()
        waiting.register(pgconn.socket, select.POLLIN)
        return not waiting.poll(0)
    except Exception:  # whatever is wrong with it, the full check says what
        return False
