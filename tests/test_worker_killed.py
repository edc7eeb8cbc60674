"""A gunicorn worker killed while it sends a code (issue 15), for real.

gunicorn (2 workers) runs the app with SendGrid pointed at the fake provider, made to hang.
A sign-in whose one method is email sends a code; once the fake provider holds the request,
the worker making it (found by its socket to the provider) is killed with SIGKILL. Then:

- the database holds no live code for that person: the code is still SEND_PENDING, with no
  record of a send, and typing it (the fake provider saw it) on a new worker is refused;
- while the dead send could still be in flight it holds the next one back (the cooldown);
- once DELIVERY_TIMEOUT + the margin have passed it no longer counts: with one code an hour
  allowed to that address, "Send new code" sends a new one, and that one signs in.

Runs on a throwaway SQLite file and a throwaway PostgreSQL database; every server binds a free
port and is stopped by its pid. Linux only (the worker is found through /proc).
"""

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from models.verification import SEND_PENDING
from tests.fake_providers import SENDGRID_ACCEPTED, Answer, FakeProvider
from tests.servers import app_env, browser_maker, gunicorns, prepare, throwaway_database
from tests.test_limits_race import TIMEOUT, Deployment

EMAIL = "parent@example.com"
DELIVERY_TIMEOUT = 2  # seconds; the dead send counts for this + 10 s (throttle.sent_or_sending)
IN_FLIGHT = DELIVERY_TIMEOUT + 10
HANG = 60.0  # the fake SendGrid holds the request this long (stopping it cuts it short)
WAIT = 30.0  # the bound on every wait for something to happen
ESTABLISHED = "01"


def _children(pid: int) -> set[int]:
    """The pids whose parent is `pid` (gunicorn's workers, for its master)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name (in parentheses, which may hold spaces).
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _sockets_to(port: int) -> set[str]:
    """The inodes of the established TCP connections from this host to 127.0.0.1:`port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == ESTABLISHED:
                inodes.add(fields[9])
    return inodes


def _worker_talking_to(master: int, port: int) -> int | None:
    """The worker of `master` holding a connection to the fake provider on `port`."""
    inodes = {f"socket:[{inode}]" for inode in _sockets_to(port)}
    for worker in _children(master):
        try:
            descriptors = list(Path(f"/proc/{worker}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return worker
            except OSError:
                continue
    return None


def _wait_for(condition, what: str, deployment: Deployment, seconds: float = WAIT):
    """Poll `condition` (every 20 ms) until it returns something true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"{what} did not happen within {seconds} s\n{deployment.log_tail()}")


@pytest.fixture(scope="module")
def sendgrid():
    with FakeProvider(Answer(status=SENDGRID_ACCEPTED)) as provider:
        yield provider


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(request, tmp_path_factory, sendgrid):
    from app import create_app

    if not Path("/proc/net/tcp").exists():
        pytest.skip("finding the worker inside the send needs Linux's /proc")
    folder = tmp_path_factory.mktemp(f"killed-{request.param}")
    with throwaway_database(request.param, folder, "killed") as database_url:
        env = app_env(
            database_url,
            # One code an hour to an address: a dead send still counted would hold the next.
            CODE_SENDS_PER_HOUR_PER_DESTINATION="1",
            SENDGRID_API_KEY="SG.test-key",
            SENDGRID_HOST=sendgrid.url,
            DELIVERY_TIMEOUT=str(DELIVERY_TIMEOUT),
        )
        made = Deployment(database_url, env, [folder / "instance.log"])
        prepare(env)
        made.control = create_app(
            {
                "DATABASE_URL": database_url,
                "SECRET_KEY": env["SECRET_KEY"],
                "ENCRYPTION_KEYS": env["ENCRYPTION_KEYS"],
                "DELIVERY_TIMEOUT": DELIVERY_TIMEOUT,
                "PURGE_EVERY_SECONDS": 0,
            }
        )
        with gunicorns(env, made.logs, workers=2) as servers:
            made.urls = [url for url, _process in servers]
            made.master = servers[0][1].pid
            yield made


@pytest.fixture
def browsers():
    with browser_maker(TIMEOUT) as new:
        yield new


def _code_in(request) -> str:
    """The code in a message the fake SendGrid received."""
    return re.search(r"\b(\d{6})\b", request.json()["content"][0]["value"]).group(1)


def _codes(deployment: Deployment, user_id: int) -> list[tuple]:
    """(id, expires_at, used_at) of the person's codes, oldest first."""
    p = deployment.param()
    return deployment.sql(
        f"SELECT id, expires_at, used_at FROM one_time_code WHERE user_id = {p} ORDER BY id",
        (user_id,),
    )


def _pending(expires_at) -> bool:
    """Whether a stored expiry is SEND_PENDING (SQLite gives it back as text)."""
    if isinstance(expires_at, str):
        return expires_at.startswith(SEND_PENDING.strftime("%Y-%m-%d %H:%M:%S"))
    return expires_at.replace(tzinfo=None) == SEND_PENDING


def test_a_worker_killed_during_a_send_leaves_no_live_code_and_no_count(
    deployment,
    sendgrid,
    browsers,
):
    user_id = deployment.with_email_method(EMAIL)
    p = deployment.param()
    base = deployment.url(0)
    before = len(sendgrid.requests)
    sendgrid.answer_with(SENDGRID_ACCEPTED, delay=HANG)

    # The sign-in sends the code; its worker hangs inside the send.
    first = browsers()
    first.get(f"{base}/login")
    answered = []

    def sign_in():
        try:
            answered.append(
                first.post(f"{base}/login", {"email": EMAIL, "password": "twostep-demo"})
            )
        except httpx.TransportError as error:  # the worker died: the connection drops
            answered.append(error)

    thread = threading.Thread(target=sign_in, daemon=True)
    thread.start()
    _wait_for(lambda: len(sendgrid.requests) > before, "the send reaching SendGrid", deployment)
    dead_code = _code_in(sendgrid.requests[-1])
    worker = _wait_for(
        lambda: _worker_talking_to(deployment.master, sendgrid.port),
        "finding the worker connected to SendGrid",
        deployment,
        seconds=DELIVERY_TIMEOUT / 2,
    )
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    sendgrid.answer_with(SENDGRID_ACCEPTED)  # from now on SendGrid answers at once
    thread.join(timeout=WAIT)
    assert answered and not hasattr(answered[0], "status_code"), (
        f"the sign-in answered although its worker was killed inside the send: {answered}"
    )

    # No live code: the one being sent is still pending, and no send attempt is recorded.
    [(code_id, expires_at, used_at)] = _codes(deployment, user_id)
    assert _pending(expires_at) and used_at is None, expires_at
    assert deployment.count("code_delivery", f"code_id = {p}", (code_id,)) == 0

    # A new worker takes the dead one's place; there the dead code is refused when typed.
    _wait_for(
        lambda: len(_children(deployment.master) - {worker}) == 2,
        "gunicorn starting a new worker",
        deployment,
    )
    second = browsers()
    second.sign_in(base, EMAIL)  # its own send is held back (or, after the margin, goes out)
    signed_in_at = time.monotonic()
    refused = second.post(f"{base}/login/verify", {"code": dead_code})
    assert refused.status_code == 422, refused.text[:2000]
    assert second.http.get(f"{base}/profile").status_code != 200
    [(_, expires_at, used_at)] = _codes(deployment, user_id)[:1]
    assert _pending(expires_at) and used_at is None

    if signed_in_at - killed_at < IN_FLIGHT - 1:
        # The dead send might still be in flight: it counts, so that sign-in sent nothing.
        assert len(sendgrid.requests) == before + 1, "a second code went out within the cooldown"
        assert len(_codes(deployment, user_id)) == 1

        # Once DELIVERY_TIMEOUT + the margin are over it counts no more: a new code goes out
        # although one code an hour is allowed to that address.
        time.sleep(max(0.0, killed_at + IN_FLIGHT + 1 - time.monotonic()))
        resent = second.post(f"{base}/login/verify/resend")
        assert resent.status_code == 200, resent.text[:2000]
    assert len(sendgrid.requests) == before + 2, deployment.log_tail()
    new_code = _code_in(sendgrid.requests[-1])
    codes = _codes(deployment, user_id)
    assert len(codes) == 2 and _pending(codes[0][1]) and not _pending(codes[1][1])
    assert deployment.count("code_delivery", f"code_id = {p}", (codes[1][0],)) == 1

    # That code signs in; the dead one never came alive.
    accepted = second.post(f"{base}/login/verify", {"code": new_code})
    assert accepted.status_code == 303, accepted.text[:2000]
    assert second.http.get(f"{base}/profile").status_code == 200
    assert _pending(_codes(deployment, user_id)[0][1])
