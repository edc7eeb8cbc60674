"""Every limit under parallel requests (Decisions 17), tried as an attacker would: gunicorn
with 4 workers on PostgreSQL, two instances (2 workers each) on one PostgreSQL, and 4 workers
on one SQLite file, each hit by up to 50 requests at once from threads over real HTTP.

- 50 wrong codes at once from 2 pending sign-ins: 5 are judged, the rest answer 429;
- 50 "Send new code" at once: one code per cooldown, none over the hourly cap;
- the same right code from 2 sessions at once: exactly one signs in, the other is told the
  code was just used and nothing is counted;
- recovery codes: the same one twice at once lets one in; 50 wrong ones, 5 judged.

The servers run in development mode (plain-http cookies) with the per-IP limits set out of
the way and in-memory rate-limit storage: what is tested here is the database's share.
Databases are throwaway ones; every server binds a free port and is stopped by its pid.
"""

import re
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.servers import app_env, browser_maker, gunicorns, log_tail, prepare, throwaway_database

PARALLEL = 50
TIMEOUT = 60  # seconds, every HTTP request (50 queue behind 4 busy workers on 2 cores)


class Deployment:
    """The running servers of one set-up, and a way into their database."""

    def __init__(self, database_url: str, env: dict, logs: list[Path]):
        self.database_url = database_url
        self.env = env
        self.logs = logs
        self.urls: list[str] = []
        self.control = None  # an app of this process on the same database and keys

    def log_tail(self) -> str:
        return log_tail(self.logs)

    def url(self, index: int) -> str:
        """The instance a request goes to: round robin, as a load balancer would."""
        return self.urls[index % len(self.urls)]

    @contextmanager
    def connected(self):
        """The control app's context, connected to the deployment's database."""
        import models

        with self.control.app_context():
            models.db.connect(reuse_if_open=True)
            try:
                yield
            finally:
                models.db.close()

    def sql(self, statement: str, parameters=()):
        """Run SQL on the deployment's database (through the control app's connection)."""
        import models

        with self.connected():
            cursor = models.db.execute_sql(statement, parameters)
            return cursor.fetchall() if cursor.description else None

    def param(self) -> str:
        return "%s" if self.database_url.startswith("postgres") else "?"

    def user_id(self, email: str) -> int:
        return self.sql(f'SELECT id FROM "user" WHERE email = {self.param()}', (email,))[0][0]

    def with_email_method(self, email: str) -> int:
        """Give a demo login an email method, 2SV on, and no count, pause or codes left."""
        user_id = self.user_id(email)
        p = self.param()
        self.sql(f"DELETE FROM one_time_code WHERE user_id = {p}", (user_id,))
        self.sql(f"DELETE FROM verification_method WHERE user_id = {p}", (user_id,))
        self.sql(
            "INSERT INTO verification_method (user_id, kind, destination, secret, "
            f"last_totp_step, created_at) VALUES ({p}, 'email', {p}, '', 0, CURRENT_TIMESTAMP)",
            (user_id, email),
        )
        self.sql(
            'UPDATE "user" SET two_step_enabled = TRUE, failed_code_count = 0, '
            f"verification_paused_until = NULL WHERE id = {p}",
            (user_id,),
        )
        return user_id

    def age_codes(self, user_id: int, seconds: int) -> None:
        """Move a login's codes back in time, as if `seconds` had passed since they were sent
        (their expiry stays: they still work)."""
        from models.verification import OneTimeCode

        with self.connected():
            for row in OneTimeCode.select().where(OneTimeCode.user == user_id):
                OneTimeCode.update(created_at=row.created_at - timedelta(seconds=seconds)).where(
                    OneTimeCode.id == row.id
                ).execute()

    def state(self, user_id: int) -> tuple[int, bool]:
        """(the run of wrong codes, whether a pause is set)."""
        count, paused = self.sql(
            f'SELECT failed_code_count, verification_paused_until FROM "user" WHERE id = '
            f"{self.param()}",
            (user_id,),
        )[0]
        return count, paused is not None

    def count(self, table: str, condition: str, parameters=()) -> int:
        return self.sql(f"SELECT COUNT(*) FROM {table} WHERE {condition}", parameters)[0][0]

    def last_code(self, to: str) -> str:
        rows = self.sql(
            f'SELECT body FROM outbox_message WHERE "to" = {self.param()} ORDER BY id DESC', (to,)
        )
        assert rows, f"no message was sent to {to}"
        return re.search(r"\b(\d{6})\b", rows[0][0]).group(1)

    def recovery_codes(self, email: str) -> list[str]:
        """A fresh set of recovery codes for `email`, made as the window makes them."""
        from models.people import User
        from services.methods import recovery_codes

        with self.connected():
            return recovery_codes.generate(User.by_email(email))


SETUPS = {
    "postgresql-4-workers": ("postgresql", 1, 4),
    "postgresql-2-instances": ("postgresql", 2, 2),
    "sqlite-4-workers": ("sqlite", 1, 4),
}


@pytest.fixture(scope="module", params=list(SETUPS))
def deployment(request, tmp_path_factory):
    from app import create_app

    kind, instances, workers = SETUPS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    with throwaway_database(kind, folder, "limits") as database_url:
        env = app_env(database_url, CODE_SENDS_PER_HOUR_PER_DESTINATION="2")
        made = Deployment(
            database_url, env, [folder / f"instance-{number}.log" for number in range(instances)]
        )
        prepare(env)
        made.control = create_app(
            {
                "DATABASE_URL": database_url,
                "SECRET_KEY": env["SECRET_KEY"],
                "ENCRYPTION_KEYS": env["ENCRYPTION_KEYS"],
                "PURGE_EVERY_SECONDS": 0,
            }
        )
        with gunicorns(env, made.logs, workers) as servers:
            made.urls = [url for url, _process in servers]
            yield made


@pytest.fixture
def browsers():
    with browser_maker(TIMEOUT) as new:
        yield new


def at_once(requests) -> list:
    """Run the callables all at the same moment, each in its own thread; their responses.
    Bounded: every thread is joined within the HTTP timeout."""
    barrier = threading.Barrier(len(requests))
    responses = [None] * len(requests)

    def run(index):
        barrier.wait(timeout=TIMEOUT)
        responses[index] = requests[index]()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 2)
    assert all(response is not None for response in responses), "a request never answered"
    return responses


def statuses(responses) -> dict[int, int]:
    found = {}
    for response in responses:
        found[response.status_code] = found.get(response.status_code, 0) + 1
    return found


def test_fifty_wrong_codes_at_once_judge_five(deployment, browsers):
    user_id = deployment.with_email_method("parent@example.com")
    pair = [browsers(), browsers()]
    for index, browser in enumerate(pair):
        browser.sign_in(deployment.url(index), "parent@example.com")

    def wrong(index):
        browser = pair[index % 2]
        return lambda: browser.post(f"{deployment.url(index)}/login/verify", {"code": "000000"})

    responses = at_once([wrong(index) for index in range(PARALLEL)])

    found = statuses(responses)
    assert set(found) <= {422, 429}, (found, deployment.log_tail())
    assert found.get(422, 0) == 4  # the fifth started the pause: 429 too
    assert found[429] == PARALLEL - 4
    assert deployment.state(user_id) == (5, True)
    judged = deployment.count(
        "security_event", f"user_id = {deployment.param()} AND kind = 'code_failed'", (user_id,)
    )
    assert judged == 5


def test_fifty_sends_at_once_send_one_code_per_cooldown_and_never_pass_the_cap(
    deployment, browsers
):
    user_id = deployment.with_email_method("maple-parent@example.com")
    pair = [browsers(), browsers()]
    for index, browser in enumerate(pair):
        browser.sign_in(deployment.url(index), "maple-parent@example.com")
    p = deployment.param()
    codes_sent = lambda: deployment.count("one_time_code", f"user_id = {p}", (user_id,))  # noqa: E731
    assert codes_sent() == 1  # the second sign-in came within the cooldown: the same code

    def resend(index):
        browser = pair[index % 2]
        return lambda: browser.post(f"{deployment.url(index)}/login/verify/resend")

    deployment.age_codes(user_id, 31)  # the cooldown is over
    responses = at_once([resend(index) for index in range(PARALLEL)])
    assert set(statuses(responses)) <= {200, 429}, (statuses(responses), deployment.log_tail())
    assert codes_sent() == 2  # one new code
    outbox = deployment.count("outbox_message", f'"to" = {p}', ("maple-parent@example.com",))
    assert outbox == 2
    # The others are offered it again - or, while its send is still in flight (not live
    # yet), told when to ask again.
    for response in responses:
        body = response.text.replace("&#39;", "'")
        assert response.status_code == 200 or "You can ask for another code in" in body

    deployment.age_codes(user_id, 31)  # the cooldown is over; the cap (2 an hour) is reached
    responses = at_once([resend(index) for index in range(PARALLEL)])
    assert statuses(responses) == {429: PARALLEL}, deployment.log_tail()
    assert codes_sent() == 2
    assert all("most codes we send in an hour" in r.text.replace("&#39;", "'") for r in responses)


def test_the_same_right_code_from_two_sessions_lets_exactly_one_in(deployment, browsers):
    user_id = deployment.with_email_method("teacher@example.com")
    for _round in range(3):
        deployment.age_codes(user_id, 3700)  # an hour later: neither cooldown nor cap
        pair = [browsers(), browsers()]
        for index, browser in enumerate(pair):
            browser.sign_in(deployment.url(index), "teacher@example.com")
        code = deployment.last_code("teacher@example.com")

        def submit(index, browser, code):
            return lambda: browser.post(f"{deployment.url(index)}/login/verify", {"code": code})

        responses = at_once([submit(index, pair[index], code) for index in range(2)])

        assert sorted(statuses(responses).items()) == [(303, 1), (422, 1)], deployment.log_tail()
        loser = next(response for response in responses if response.status_code == 422)
        assert "That code was just used" in loser.text
        assert deployment.state(user_id) == (0, False)  # the repeat was not counted
    failed = deployment.count(
        "security_event", f"user_id = {deployment.param()} AND kind = 'code_failed'", (user_id,)
    )
    assert failed == 0


def test_recovery_codes_at_once(deployment, browsers):
    user_id = deployment.with_email_method("both@example.com")
    codes = deployment.recovery_codes("both@example.com")
    pair = [browsers(), browsers()]
    for index, browser in enumerate(pair):
        browser.sign_in(deployment.url(index), "both@example.com")
        browser.get(f"{deployment.url(index)}/login/verify/recovery")

    def submit(index, code):
        return lambda: pair[index % 2].post(
            f"{deployment.url(index)}/login/verify/recovery", {"recovery_code": code}
        )

    # The same right code from both sessions at once: one gets in, the other is not counted.
    responses = at_once([submit(0, codes[0]), submit(1, codes[0])])
    assert sorted(statuses(responses).items()) == [(303, 1), (422, 1)], deployment.log_tail()
    assert deployment.state(user_id) == (0, False)
    loser = pair[[r.status_code for r in responses].index(422)]

    # 50 wrong ones at once from the session still pending: 5 judged, the rest 429.
    wrong = "ABCD-EFGH-2345"
    responses = at_once(
        [
            (
                lambda i=index: loser.post(
                    f"{deployment.url(i)}/login/verify/recovery", {"recovery_code": wrong}
                )
            )
            for index in range(PARALLEL)
        ]
    )
    found = statuses(responses)
    assert set(found) <= {422, 429} and found.get(422, 0) == 4, (found, deployment.log_tail())
    assert deployment.state(user_id) == (5, True)
