"""The real app served over HTTP on 127.0.0.1 in a background thread, for the browser tests
and the README screenshots (tests/e2e/screenshots.py).

The test thread shares the app's database (models.db is one proxy; peewee gives each thread its
own connection), so tests make logins and read the outbox directly.
"""

import itertools
import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import pyotp
from werkzeug.serving import WSGIRequestHandler, make_server

import models
from app import create_app
from models import crypto
from models.clock import FrozenClock, system_now
from models.outbox import OutboxMessage
from models.people import FAMILY, STAFF, Center, Membership, User
from models.verification import VerificationMethod
from services.account.passwords import hash_password
from services.methods import totp
from tests.artifacts import watch_for_artifacts

PASSWORD = "correct horse battery"
CENTER = "Sunshine Early Learning"
# The outbox body carries the code as six digits (SPEC, Decisions 14).
CODE_PATTERN = re.compile(r"\b(\d{6})\b")
# Debian's Chromium, headless, talking to nothing but 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr (the app logs its own requests)."""

    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    """The app on 127.0.0.1:<free port>, on its own SQLite file and a FrozenClock."""

    def __init__(self, database_path: Path, host: str = "127.0.0.1", **settings):
        """`host`: the name the browser uses (WebAuthn needs "localhost", not an IP address);
        the server listens on 127.0.0.1 either way."""
        # The clock starts at the real time (cookie lifetimes are real) and moves only when a
        # test says so: clock.advance(seconds=31).
        self.clock = FrozenClock(system_now().replace(microsecond=0))
        config = {
            "SECRET_KEY": "e2e-secret-key-not-for-production",
            "DATABASE_URL": f"sqlite:///{database_path}",
            "CLOCK": self.clock,
            "SENDGRID_API_KEY": "",
            "VONAGE_API_KEY": "",
            "RATELIMIT_STORAGE_URI": "memory://",
            # The per-IP limits count real seconds, and every browser here is 127.0.0.1.
            "RATELIMIT_ENABLED": False,
            # "Send new code" waits for this many (app clock) seconds.
            "CODE_RESEND_COOLDOWN": 1,
        }
        config.update(settings)
        self.app = create_app(config)
        # Template leaks in anything the browser is sent (tests/artifacts.py).
        self.artifacts = watch_for_artifacts(self.app)
        with self.database():
            models.create_tables()
        self.people = People(self)
        self._server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "LiveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        if not models.db.is_closed():
            models.db.close()

    @contextmanager
    def database(self):
        """The app's database, open in this (the test's) thread."""
        with self.app.app_context():
            models.db.connect(reuse_if_open=True)
            try:
                yield models.db
            finally:
                models.db.close()

    # --- what the app "sent" ------------------------------------------------------------

    def messages_to(self, to: str) -> list[OutboxMessage]:
        """Every outbox message to `to`, oldest first."""
        with self.database():
            return list(
                OutboxMessage.select().where(OutboxMessage.to == to).order_by(OutboxMessage.id)
            )

    def codes_sent_to(self, to: str) -> list[str]:
        """The six-digit codes sent to an email address or phone number, oldest first."""
        codes = []
        for message in self.messages_to(to):
            match = CODE_PATTERN.search(message.body)
            if match:
                codes.append(match.group(1))
        return codes

    def wait_for_codes(self, to: str, count: int, timeout: float = 10.0) -> list[str]:
        """The codes sent to `to`, once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            codes = self.codes_sent_to(to)
            if len(codes) >= count or time.monotonic() > deadline:
                return codes
            time.sleep(0.1)

    def wait_for_text(self, to: str, pattern: re.Pattern, timeout: float = 10.0) -> str:
        """The first match of `pattern` in the newest message to `to` that has one (some
        emails leave after the response, so this looks again until `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in reversed(self.messages_to(to)):
                found = pattern.search(message.body)
                if found:
                    return found.group(0)
            assert time.monotonic() < deadline, f"Nothing like {pattern.pattern} was sent to {to}"
            time.sleep(0.1)

    def last_code(self, to: str) -> str:
        codes = self.codes_sent_to(to)
        assert codes, f"No code was sent to {to}"
        return codes[-1]

    def totp_code(self, secret: str, steps_ahead: int = 0) -> str:
        """What an authenticator app with `secret` shows now (the app's clock)."""
        moment = self.clock().replace(tzinfo=UTC)
        return pyotp.TOTP(secret).at(moment, counter_offset=steps_ahead)

    def next_totp_step(self) -> None:
        """Move the clock into the next 30-second step (a TOTP step is accepted once)."""
        self.clock.advance(seconds=30)


class People:
    """Makes logins with a unique email each, all with the password PASSWORD."""

    _counter = itertools.count(1)

    def __init__(self, server: LiveServer):
        self.server = server
        self._password_hash = None

    def _hash(self) -> str:
        if self._password_hash is None:
            self._password_hash = hash_password(PASSWORD)
        return self._password_hash

    def make(
        self,
        roles=(FAMILY,),
        *,
        name: str,
        email: str | None = None,
        admin: bool = False,
        two_step: bool = False,
        center: str = CENTER,
    ) -> User:
        """A login with `roles` in `center`; `email` defaults to a unique address."""
        number = next(self._counter)
        if email is None:
            first = name.split()[0].lower()
            email = f"{first}{number}@example.com"
        with self.server.database():
            center_row, _ = Center.get_or_create(name=center)
            user = User.create(
                email=email, name=name, password_hash=self._hash(), two_step_enabled=two_step
            )
            for role in roles:
                Membership.create(
                    user=user, center=center_row, role=role, is_admin=admin and role == STAFF
                )
        return user

    def family(self, **kwargs) -> User:
        return self.make((FAMILY,), **kwargs)

    def staff(self, **kwargs) -> User:
        return self.make((STAFF,), **kwargs)

    def admin(self, **kwargs) -> User:
        return self.make((STAFF,), admin=True, **kwargs)

    def phone_number(self) -> tuple[str, str]:
        """A mobile number nobody else in this run uses: (as typed, E.164). Numbers are
        unique because the cooldown and the hourly cap count per destination."""
        last_two = next(self._counter) % 100
        return f"(201) 555-01{last_two:02d}", f"+120155501{last_two:02d}"

    def add_method(self, user: User, kind: str, destination: str = "") -> str:
        """Save a method without the browser (for flows that are about something else).
        Returns the authenticator key for "totp"."""
        secret = totp.new_secret() if kind == "totp" else ""
        with self.server.database():
            VerificationMethod.create(
                user=user,
                kind=kind,
                destination=destination,
                secret=crypto.encrypt(secret) if secret else "",
            )
        return secret

    def reload(self, user: User) -> User:
        with self.server.database():
            return User.get_by_id(user.id)

    def method_kinds(self, user: User) -> set[str]:
        with self.server.database():
            return {
                method.kind
                for method in VerificationMethod.select().where(VerificationMethod.user == user)
            }
