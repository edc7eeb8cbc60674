"""Several instances behind a load balancer: two gunicorn processes on two ports of 127.0.0.1,
one PostgreSQL database (a throwaway one, created and dropped here) and one Redis database
(flushed before and after), the same SECRET_KEY and ENCRYPTION_KEYS. A browser (one cookie
jar) moves between them:

- a code asked for through instance A is accepted through instance B;
- wrong codes typed on A and on B add up to one pause;
- a per-IP rate limit (SIGN_IN_ATTEMPTS_PER_IP, set low) trips across both;
- a session started on A works on B, and signing out on A ends it on B.

The instances run in development mode: gunicorn's config defaults to production, whose
`Secure` session cookie a client never sends back over plain http, so every request after
the first would look signed out. Skips, saying why, when PostgreSQL or Redis don't answer.
"""

import os
import re
from datetime import UTC, datetime

import pytest

from tests.servers import (
    DEMO_PASSWORD,
    Browser,
    app_env,
    gunicorns,
    log_tail,
    postgres_reason,
    prepare,
    throwaway_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases this test may claim (others belong to tests/test_rate_limits.py (14) and to
# anything a developer runs on 0).
REDIS_DATABASES = range(1, 14)
CLAIM_KEY = "twostep:test_instances:claim"
SIGN_IN_LIMIT = 8  # per minute and per IP, shared by every instance through Redis
TIMEOUT = 10  # seconds, every HTTP request


def _redis_answers() -> str | None:
    import redis

    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3).ping()
    except redis.RedisError as error:
        return f"Redis does not answer at {REDIS_HOST}:{REDIS_PORT}: {error}"
    return None


def _claim_redis_database():
    """A Redis database nobody else is using (empty), claimed with a key of ours, then
    flushed: two test runs side by side never share rate-limit counters."""
    import redis

    for number in REDIS_DATABASES:
        store = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=3)
        if store.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600) and store.dbsize() == 1:
            return number, store
    pytest.skip("no free Redis database (1-13) to run two instances against")


class Cluster:
    """Two app processes sharing one database and one Redis."""

    def __init__(self, database_url: str, store, logs):
        self.database_url = database_url
        self.store = store
        self.logs = logs
        self.a = self.b = ""

    def log_tail(self) -> str:
        return log_tail(self.logs)

    def sql(self, statement: str, parameters=()):
        import psycopg

        with (
            psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else None

    def last_code(self, to: str) -> str:
        """The 6 digits of the newest message the outbox holds for `to`."""
        rows = self.sql('SELECT body FROM outbox_message WHERE "to" = %s ORDER BY id DESC', (to,))
        assert rows, f"no message was sent to {to}"
        return re.search(r"\b(\d{6})\b", rows[0][0]).group(1)

    def flush_limits(self) -> None:
        """Forget every rate-limit counter (each test starts from none)."""
        self.store.flushdb()
        self.store.set(CLAIM_KEY, os.getpid(), ex=3600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for reason in (postgres_reason(), _redis_answers()):
        if reason:
            pytest.skip(reason)
    folder = tmp_path_factory.mktemp("instances")
    number, store = _claim_redis_database()
    store.flushdb()
    store.set(CLAIM_KEY, os.getpid(), ex=3600)
    try:
        with throwaway_database("postgresql", folder, "instances") as database_url:
            env = app_env(
                database_url,
                RATELIMIT_STORAGE_URI=f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}",
                SIGN_IN_ATTEMPTS_PER_IP=f"{SIGN_IN_LIMIT} per minute",
                SEND_CODES_PER_IP="100 per hour",
            )
            made = Cluster(database_url, store, [folder / "a.log", folder / "b.log"])
            prepare(env)
            with gunicorns(env, made.logs, workers=1, seconds=45) as servers:
                made.a, made.b = (url for url, _process in servers)
                yield made
    finally:
        store.flushdb()
        store.close()


@pytest.fixture
def instances(cluster):
    cluster.flush_limits()
    return cluster


@pytest.fixture
def browser():
    made = Browser(TIMEOUT)
    yield made
    made.close()


def explain(response, cluster) -> str:
    """What to read when a status is not the expected one: the page, then the servers' logs."""
    return (
        f"{response.status_code} from {response.url}\n{response.text[:3000]}\n{cluster.log_tail()}"
    )


def with_email_method(cluster, email: str) -> None:
    """Give a demo login an email method and turn 2SV on (the set-up itself is tested in
    tests/test_window.py); clear any count or pause left from before."""
    moment = datetime.now(UTC).replace(tzinfo=None)
    cluster.sql(
        "INSERT INTO verification_method (user_id, kind, destination, secret, last_totp_step, "
        "created_at) SELECT id, 'email', email, '', 0, %s FROM \"user\" WHERE email = %s "
        "ON CONFLICT DO NOTHING",
        (moment, email),
    )
    cluster.sql(
        'UPDATE "user" SET two_step_enabled = true, failed_code_count = 0, '
        "verification_paused_until = NULL WHERE email = %s",
        (email,),
    )


def sign_in_with_password(browser, base: str, email: str):
    browser.get(f"{base}/login")
    return browser.post(f"{base}/login", {"email": email, "password": DEMO_PASSWORD})


def on_verify_page(browser, base: str) -> None:
    page = browser.get(f"{base}/login/verify")
    assert page.status_code == 200 and "Verification code" in page.text


def test_a_code_asked_for_on_a_is_accepted_on_b(instances, browser):
    with_email_method(instances, "parent@example.com")
    response = sign_in_with_password(browser, instances.a, "parent@example.com")
    assert response.status_code == 303, explain(response, instances)
    assert response.headers["Location"].endswith("/login/verify")
    code = instances.last_code("parent@example.com")  # sent by instance A

    on_verify_page(browser, instances.b)
    response = browser.post(f"{instances.b}/login/verify", {"code": code})
    assert response.status_code == 303, explain(response, instances)
    profile = browser.get(f"{instances.b}/profile", follow=False)
    assert profile.status_code == 200, explain(profile, instances)


def test_a_session_started_on_a_works_on_b_and_sign_out_on_a_ends_it_on_b(instances, browser):
    email = "both@example.com"  # staff and family: 2SV required
    with_email_method(instances, email)
    assert sign_in_with_password(browser, instances.a, email).status_code == 303
    on_verify_page(browser, instances.a)
    response = browser.post(f"{instances.a}/login/verify", {"code": instances.last_code(email)})
    assert response.status_code == 303, explain(response, instances)

    for base in (instances.b, instances.a, instances.b):
        profile = browser.get(f"{base}/profile", follow=False)
        assert profile.status_code == 200, explain(profile, instances)
        assert "Blair Both" in profile.text

    response = browser.post(f"{instances.a}/logout")
    assert response.status_code == 303, explain(response, instances)
    # The row is gone, so the same cookie opens nothing on B either.
    after = browser.get(f"{instances.b}/profile", follow=False)
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    (sessions,) = instances.sql(
        'SELECT count(*) FROM user_session s JOIN "user" u ON u.id = s.user_id WHERE u.email = %s',
        (email,),
    )
    assert sessions == (0,)


def test_wrong_codes_on_a_and_b_add_up_to_one_pause(instances, browser):
    email = "maple-parent@example.com"
    with_email_method(instances, email)
    assert sign_in_with_password(browser, instances.a, email).status_code == 303
    right = instances.last_code(email)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    on_verify_page(browser, instances.a)
    statuses = []
    for attempt in range(4):  # A, B, A, B
        base = instances.a if attempt % 2 == 0 else instances.b
        response = browser.post(f"{base}/login/verify", {"code": wrong})
        statuses.append(response.status_code)
        assert response.status_code == 422, explain(response, instances)
    (count,) = instances.sql('SELECT failed_code_count FROM "user" WHERE email = %s', (email,))
    assert count == (4,)  # counted in the database, not in either process

    fifth = browser.post(f"{instances.b}/login/verify", {"code": wrong})
    assert fifth.status_code == 429, explain(fifth, instances)
    assert "verification is paused" in fifth.text
    ((paused_until,),) = instances.sql(
        'SELECT verification_paused_until FROM "user" WHERE email = %s', (email,)
    )
    assert paused_until is not None
    # During the pause even the right code is refused, on either instance.
    refused = browser.post(f"{instances.a}/login/verify", {"code": right})
    assert refused.status_code == 429 and "verification is paused" in refused.text


def test_a_per_ip_rate_limit_is_shared_by_the_instances(instances, browser):
    """SIGN_IN_ATTEMPTS_PER_IP is 8 a minute, counted in Redis: alternating between the
    instances, the 9th attempt is refused (each process alone would allow 8 of its own)."""
    browser.get(f"{instances.a}/login")
    statuses = []
    for attempt in range(SIGN_IN_LIMIT + 1):
        base = instances.a if attempt % 2 == 0 else instances.b
        response = browser.post(
            f"{base}/login", {"email": "nobody@example.com", "password": "not the password"}
        )
        statuses.append(response.status_code)
    assert statuses == [422] * SIGN_IN_LIMIT + [429], explain(response, instances)
    assert "Too many attempts from this network" in response.text
    assert int(response.headers["Retry-After"]) > 0
    assert any(key != CLAIM_KEY.encode() for key in instances.store.scan_iter())
