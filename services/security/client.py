"""Who is asking: the address and the browser (or app) behind the request being served, as
plain values the domain can keep without knowing HTTP.

The web sets it at the start of every request (app.py), and so will the JSON API; sessions and
the security log record it. Outside a request (the command line, a test calling a service) it
is empty.
"""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    """The address and the user agent of whoever is asking, cut to what the tables hold."""

    ip: str = ""
    user_agent: str = ""

    @classmethod
    def of(cls, ip: str | None, user_agent: str | None) -> "Client":
        """A client from raw request values (None for what a request did not say)."""
        return cls((ip or "")[:64], (user_agent or "")[:300])


NOBODY = Client()
_serving: ContextVar[Client] = ContextVar("client", default=NOBODY)


def serve(client: Client) -> None:
    """Record who the request being served comes from (called once per request)."""
    _serving.set(client)


def current() -> Client:
    """Who the request being served comes from; empty outside a request."""
    return _serving.get()
