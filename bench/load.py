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
    """The same kind of request again and again, rotating over the plan's cookies."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.cookies = deque(scenario.get("cookies") or [None])

    def next(self):
        cookie = self.cookies[0]
        self.cookies.rotate(-1)
        return self.scenario, cookie, None

    def done(self, ticket, ok):
        pass

    def exhausted(self):
        return False


class Verify:
    """Authenticator sign-ins: each pending session is used once, each user's time steps in
    increasing order and never two at once, so no code is ever wrong or replayed. Only the
    current step and the next are used: a code of the step before could age out (the server
    accepts one step either way) while its request waits behind others."""

    def __init__(self, scenario, part=(0, 1)):
        self.scenario = scenario
        index, parts = part
        # Each round of the benchmark signs in its own share of the logins.
        self.users = deque(scenario["users"][index::parts])
        self.busy = 0

    def next(self):
        now_step = int(time.time()) // STEP
        for _ in range(len(self.users)):
            user = self.users.popleft()
            step = max(user.get("last_step", 0) + 1, now_step)
            if user["sessions"] and step <= now_step + 1:
                session = user["sessions"].pop()
                user["last_step"] = step
                code = pyotp.TOTP(user["secret"]).at(step * STEP)
                return (
                    self.scenario,
                    session["cookie"],
                    (user, {"code": code, "csrf_token": session["csrf"]}),
                )
            self.users.append(user)
        return None

    def done(self, ticket, ok):
        user, _ = ticket
        self.users.append(user)

    def exhausted(self):
        return not any(user["sessions"] for user in self.users)


async def run(plan, name, base, seconds, concurrency, warmup, part=(0, 1)):
    scenario = plan["scenarios"][name]
    source = Verify(scenario, part) if name == "verify" else Simple(scenario)
    cookie_name = plan["cookie_name"]
    latencies, sizes, queries, statuses = [], [], [], {}
    errors = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=10.0, limits=limits) as client:
        started = time.perf_counter()
        measure_from = started + (0 if name == "verify" else warmup)
        deadline = measure_from + seconds

        async def worker():
            while time.perf_counter() < deadline:
                picked = source.next()
                if picked is None:
                    if source.exhausted():
                        return
                    await asyncio.sleep(0.05)
                    continue
                spec, cookie, ticket = picked
                headers = dict(spec.get("headers", {}))
                if cookie:
                    headers["Cookie"] = f"{cookie_name}={cookie}"
                began = time.perf_counter()
                try:
                    if ticket is None:
                        response = await client.request(
                            spec["method"], spec["path"], headers=headers
                        )
                    else:
                        response = await client.post(spec["path"], data=ticket[1], headers=headers)
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                    if ticket is not None:
                        source.done(ticket, False)
                    continue
                ended = time.perf_counter()
                ok = response.status_code == spec["expect"]
                if ticket is not None:
                    source.done(ticket, ok)
                if began < measure_from:
                    continue  # warm-up
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if not ok:
                    if len(errors) < 5:
                        # The page's own message (role="alert") says why, when it has one.
                        said = re.findall(r'role="alert"[^>]*>([^<]+)<', response.text)
                        errors.append(f"{response.status_code}: {said or response.text[:300]}")
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
