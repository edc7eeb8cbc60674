"""The load generator, run by bench/run.py as a separate process: drives one scenario of a plan
against a running server for a bounded time and prints the measurements as one JSON object.

    python bench/load.py PLAN.json SCENARIO --base http://127.0.0.1:8000 --seconds 5

Loopback only; every request has a timeout; the run ends by itself.
"""

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from collections import deque
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit

import httpx
import pyotp

STEP = 30


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class Simple:
    """The same kind of request again and again, rotating over the plan's cookies (or its
    forms: a cookie and the fields to post with it)."""

    def __init__(self, scenario):
        self.scenario = scenario
        forms = scenario.get("forms")
        if forms:
            self.items = deque((form["cookie"], form["data"]) for form in forms)
        else:
            self.items = deque((cookie, None) for cookie in scenario.get("cookies") or [None])

    def next(self):
        cookie, data = self.items[0]
        self.items.rotate(-1)
        return self.scenario, cookie, None, data

    def done(self, ticket, ok):
        pass

    def exhausted(self):
        return False


class Verify:
    """Authenticator sign-ins: each pending session is used once, each user's time steps in
    increasing order and never two at once, so no code is ever wrong or replayed. A user can
    sign in with the step before the current one, the current one and the next (the server
    accepts one step either way); the step before only while the next boundary is more than
    MARGIN seconds away, so that no code ages out while its request waits behind others.

    The number of sign-ins a round can make is bounded by the plan (three per user and step
    window): when every user has used the steps open to them, the round ends there rather than
    idling until the next step, and its time runs to its last answer."""

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
        lowest, highest = self._window()
        for _ in range(len(self.users)):
            user = self.users.popleft()
            step = max(user.get("last_step", 0) + 1, lowest)
            if user["sessions"] and step <= highest:
                session = user["sessions"].pop()
                user["last_step"] = step
                code = pyotp.TOTP(user["secret"]).at(step * STEP)
                self.in_flight += 1
                return (
                    self.scenario,
                    session["cookie"],
                    user,
                    {"code": code, "csrf_token": session["csrf"]},
                )
            self.users.append(user)
        return None

    def done(self, user, ok):
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


async def run(plan, name, base, seconds, concurrency, warmup, part=(0, 1)):
    scenario = plan["scenarios"][name]
    source = Verify(scenario, part) if name == "verify" else Simple(scenario)
    cookie_name = plan["cookie_name"]
    latencies, sizes, queries, statuses = [], [], [], {}
    errors = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Each request carries its own cookie; the cookies answers set (a sign-in's new session)
    # are neither kept nor parsed into a jar.
    refuse_all = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(
        base_url=base, timeout=10.0, limits=limits, cookies=refuse_all
    ) as client:
        started = time.perf_counter()
        # The verify scenario's sign-ins are few (bench/run.py seeds them): a shorter warm-up.
        measure_from = started + (min(warmup, 0.25) if name == "verify" else warmup)
        deadline = measure_from + seconds

        async def worker():
            while time.perf_counter() < deadline:
                picked = source.next()
                if picked is None:
                    if source.exhausted():
                        return
                    await asyncio.sleep(0.002)  # another worker's answer frees a user
                    continue
                # ticket: what the source wants back when the answer comes (verify: the user)
                spec, cookie, ticket, data = picked
                headers = dict(spec.get("headers", {}))
                if cookie:
                    headers["Cookie"] = f"{cookie_name}={cookie}"
                began = time.perf_counter()
                try:
                    if data is None:
                        response = await client.request(
                            spec.get("method", "GET"), spec["path"], headers=headers
                        )
                    else:
                        response = await client.post(spec["path"], data=data, headers=headers)
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                    if ticket is not None:
                        source.done(ticket, False)
                    continue
                ended = time.perf_counter()
                ok = response.status_code == spec["expect"] and (
                    "location" not in spec
                    or urlsplit(response.headers.get("location", "")).path == spec["location"]
                )
                if ticket is not None:
                    source.done(ticket, ok)
                if began < measure_from:
                    continue  # warm-up
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if not ok:
                    if len(errors) < 5:
                        # The page's own message (role="alert") says why, when it has one.
                        said = re.findall(r'role="alert"[^>]*>([^<]+)<', response.text)
                        where = response.headers.get("location")
                        errors.append(
                            f"{response.status_code}"
                            + (f" to {where}" if where else "")
                            + f": {said or response.text[:300]}"
                        )
                    continue
                latencies.append((ended - began) * 1000)
                sizes.append(len(response.content))
                queries.append(int(response.headers.get("X-Bench-Queries", -1)))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = min(time.perf_counter(), deadline) - measure_from
    return {
        "scenario": name,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0,
        "p50_ms": round(percentile(latencies, 0.50) or 0, 2),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 2),
        "bytes": round(statistics.median(sizes)) if sizes else 0,
        "queries": max(queries) if queries else None,
        "queries_median": statistics.median(queries) if queries else None,
        "statuses": statuses,
        "errors": errors[:5],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("plan")
    parser.add_argument("scenario")
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--part", default="0/1", help="I/N: the verify scenario's share")
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
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
