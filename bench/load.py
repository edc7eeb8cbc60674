"""The load generator, run by bench/run.py as a separate process: drives one scenario of a plan
against a running server for a bounded time and prints the measurements as one JSON object.

    python bench/load.py PLAN.json SCENARIO --base http://127.0.0.1:8000 --seconds 5 \
        --server-pid PID

It speaks HTTP/1.1 itself over asyncio streams (keeping a connection open when the server
allows it; gunicorn's sync workers close each one), so that it costs far less CPU per request
than the server it measures: it prints its own CPU per request beside the server's. The
server's CPU is read from /proc for the gunicorn master and its workers at the start and the
end of the measured time.

Loopback only; every request has a timeout; the run ends by itself.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pyotp

STEP = 30
TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    """The value at `fraction` of the sorted values (nearest rank), or None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def process_tree(root: int) -> list[int]:
    """The process `root` and its children (gunicorn's master and its workers)."""
    pids = [root]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that ended while the folder was read
        if int(fields[1]) == root:
            pids.append(int(stat.parent.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far (from /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state is field 3, utime field 14 and stime field 15 (proc(5)).
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class Simple:
    """The same kind of request again and again, rotating over the plan's cookies (or its
    forms: a cookie and the fields to post with it; or its bearer tokens)."""

    def __init__(self, scenario):
        self.scenario = scenario
        forms = scenario.get("forms")
        if forms:
            self.items = deque((form["cookie"], form["data"]) for form in forms)
        else:
            self.items = deque((cookie, None) for cookie in scenario.get("cookies") or [None])

    def next(self):
        """The next request: (scenario, cookie, ticket, fields)."""
        cookie, data = self.items[0]
        self.items.rotate(-1)
        return self.scenario, cookie, None, data

    def done(self, ticket, ok):
        """An answer came back (nothing to track here)."""

    def exhausted(self):
        """Never: the same requests can be sent for ever."""
        return False


class Verify:
    """Authenticator sign-ins: each pending session is used once, each user's time steps in
    increasing order and never two at once, so no code is ever wrong or replayed. A user can
    sign in with the step before the current one, the current one and the next (the server
    accepts one step either way); the step before only while the next boundary is more than
    MARGIN seconds away, so that no code ages out while its request waits behind others.

    The number of sign-ins a round can make is bounded by the plan (three per user and step
    window): when every user has used the steps open to them, the round ends there rather than
    idling until the next step, and its time runs to its last answer.

    A session is a browser's (a cookie and a CSRF token, the code posted as a form) or the
    mobile app's (a pending token, the code sent as JSON)."""

    MARGIN = 2.0

    def __init__(self, scenario, part=(0, 1)):
        self.scenario = scenario
        index, parts = part
        # Each round of the benchmark signs in its own share of the logins.
        self.users = deque(scenario["users"][index::parts])
        self.in_flight = 0

    def _window(self):
        now = time.time()
        current = int(now) // STEP
        safe = (current + 1) * STEP - now > self.MARGIN
        return (current - 1 if safe else current), current + 1

    def next(self):
        """The next sign-in to send, or None while every user waits for a step or an answer."""
        lowest, highest = self._window()
        for _ in range(len(self.users)):
            user = self.users.popleft()
            step = max(user.get("last_step", 0) + 1, lowest)
            if user["sessions"] and step <= highest:
                session = user["sessions"].pop()
                user["last_step"] = step
                code = pyotp.TOTP(user["secret"]).at(step * STEP)
                self.in_flight += 1
                if "token" in session:
                    fields = {"pending_token": session["token"], "code": code}
                else:
                    fields = {"code": code, "csrf_token": session["csrf"]}
                return self.scenario, session.get("cookie"), user, fields
            self.users.append(user)
        return None

    def done(self, user, ok):
        """An answer came back: the user may sign in again (at a later step)."""
        self.in_flight -= 1
        self.users.append(user)

    def exhausted(self):
        """Nothing left to send before the next step, and no request out (an answer puts its
        user back, maybe with a step still open to them)."""
        if self.in_flight:
            return False
        lowest, highest = self._window()
        return not any(
            user["sessions"] and max(user.get("last_step", 0) + 1, lowest) <= highest
            for user in self.users
        )


class Answer:
    """What the client keeps of a response."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body


class Connection:
    """One HTTP/1.1 connection to the server, opened when needed and reopened after the
    server closes it (gunicorn's sync workers answer `Connection: close`)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, payload: bytes) -> Answer:
        """Send one request (its bytes, ready) and read the whole answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(payload)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            version, status = lines[0].split(" ", 2)[:2]
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            else:
                body = await self.reader.read()
                headers["connection"] = "close"
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.close()
        return Answer(int(status), headers, body)

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self):
        """Drop the connection (the next request opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode_request(spec: dict, host: str, cookie_name: str, cookie, fields) -> bytes:
    """The bytes of one request: the scenario's method, path and headers, its cookie, and
    its fields as a form (or as JSON when the scenario says so)."""
    lines = [f"{spec.get('method', 'POST' if fields else 'GET')} {spec['path']} HTTP/1.1"]
    lines.append(f"Host: {host}")
    for name, value in spec.get("headers", {}).items():
        lines.append(f"{name}: {value}")
    if cookie:
        lines.append(f"Cookie: {cookie_name}={cookie}")
    body = b""
    if fields is not None:
        if spec.get("json"):
            body = json.dumps(fields).encode()
            lines.append("Content-Type: application/json")
        else:
            body = urlencode(fields).encode()
            lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer_is_right(spec: dict, answer: Answer) -> bool:
    """The status the scenario expects (and, for a redirect, the place it expects; for a
    page, the words it must show; for JSON, the key it must have)."""
    if answer.status != spec["expect"]:
        return False
    if any(words.encode() not in answer.body for words in spec.get("contains", ())):
        return False
    if "location" in spec:
        return urlsplit(answer.headers.get("location", "")).path == spec["location"]
    if "json_has" in spec:
        try:
            return spec["json_has"] in json.loads(answer.body)
        except ValueError:
            return False
    return True


def describe_failure(answer: Answer) -> str:
    """A short account of a wrong answer: its status, where it sent, what the page said."""
    text = answer.body.decode("utf-8", "replace")
    # The page's own message (role="alert") says why, when it has one.
    said = re.findall(r'role="alert"[^>]*>([^<]+)<', text)
    where = answer.headers.get("location")
    return f"{answer.status}" + (f" to {where}" if where else "") + f": {said or text[:300]}"


async def run(plan, name, base, seconds, concurrency, warmup, part=(0, 1), server_pid=None):
    """Drive one scenario for `seconds` after `warmup` and measure it (see the module)."""
    scenario = plan["scenarios"][name]
    source = Verify(scenario, part) if "users" in scenario else Simple(scenario)
    cookie_name = plan["cookie_name"]
    where = urlsplit(base)
    host_header = where.netloc
    latencies, sizes, queries, statuses = [], [], [], {}
    errors = []
    server_pids = process_tree(server_pid) if server_pid else []
    samples = {}
    started = time.perf_counter()
    # The verify scenarios' sign-ins are few and each is used once (bench/run.py seeds them):
    # no warm-up, which could spend every step open to the logins before the round is measured.
    measure_from = started + (0.0 if isinstance(source, Verify) else warmup)
    deadline = measure_from + seconds

    async def sample_at_start():
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        samples["client"] = time.process_time()
        samples["server"] = cpu_seconds(server_pids)

    async def worker():
        connection = Connection(where.hostname, where.port or 80)
        try:
            while time.perf_counter() < deadline:
                picked = source.next()
                if picked is None:
                    if source.exhausted():
                        return
                    await asyncio.sleep(0.002)  # another worker's answer frees a user
                    continue
                # ticket: what the source wants back when the answer comes (verify: the user)
                spec, cookie, ticket, fields = picked
                payload = encode_request(spec, host_header, cookie_name, cookie, fields)
                began = time.perf_counter()
                try:
                    answer = await asyncio.wait_for(connection.request(payload), TIMEOUT)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as error:
                    errors.append(repr(error))
                    if ticket is not None:
                        source.done(ticket, False)
                    continue
                ended = time.perf_counter()
                ok = answer_is_right(spec, answer)
                if ticket is not None:
                    source.done(ticket, ok)
                if began < measure_from:
                    continue  # warm-up
                statuses[answer.status] = statuses.get(answer.status, 0) + 1
                if not ok:
                    if len(errors) < 5:
                        errors.append(describe_failure(answer))
                    continue
                latencies.append((ended - began) * 1000)
                sizes.append(len(answer.body))
                if "x-bench-queries" in answer.headers:
                    queries.append(int(answer.headers["x-bench-queries"]))
        finally:
            connection.close()

    await asyncio.gather(sample_at_start(), *(worker() for _ in range(concurrency)))
    finished = time.perf_counter()
    client_cpu = time.process_time() - samples["client"]
    server_cpu = cpu_seconds(server_pids) - samples["server"]
    elapsed = min(finished, deadline) - measure_from
    count = len(latencies)
    return {
        "scenario": name,
        "requests": count,
        "seconds": round(elapsed, 2),
        "rps": round(count / elapsed, 1) if elapsed > 0 else 0,
        "p50_ms": round(percentile(latencies, 0.50) or 0, 2),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 2),
        # CPU per answered request, in milliseconds: the server's (None when no server
        # process was named) and this client's own.
        "server_cpu_ms": round(server_cpu * 1000 / count, 3) if count and server_pids else None,
        "client_cpu_ms": round(client_cpu * 1000 / count, 3) if count else None,
        "bytes": round(statistics.median(sizes)) if sizes else 0,
        "queries": max(queries) if queries else None,
        "queries_median": statistics.median(queries) if queries else None,
        "statuses": statuses,
        "errors": errors[:5],
    }


def main():
    """Parse the command line, run one scenario, print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("plan")
    parser.add_argument("scenario")
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--part", default="0/1", help="I/N: the verify scenario's share")
    parser.add_argument("--server-pid", type=int, help="gunicorn's master: its CPU is read")
    args = parser.parse_args()
    if urlsplit(args.base).hostname not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit("The benchmark only drives a server on this machine (loopback).")
    with open(args.plan) as handle:
        plan = json.load(handle)
    index, parts = (int(value) for value in args.part.split("/"))
    result = asyncio.run(
        run(
            plan,
            args.scenario,
            args.base,
            args.seconds,
            args.concurrency,
            args.warmup,
            (index, parts),
            args.server_pid,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
