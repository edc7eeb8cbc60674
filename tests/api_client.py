"""A client for the mobile app's JSON API in tests: JSON bodies, the bearer token it holds,
and reading codes from the outbox."""

import re

from models.outbox import OutboxMessage
from models.sessions import APP
from services.account import sessions
from services.security.client import NOBODY

API = "/api/v1"


class ApiClient:
    """Talks to /api/v1 like the mobile app: JSON in and out, `Authorization: Bearer`."""

    def __init__(self, client, token: str | None = None):
        self.client = client
        self.token = token

    def _headers(self, headers=None):
        merged = dict(headers or {})
        if self.token and "Authorization" not in merged:
            merged["Authorization"] = f"Bearer {self.token}"
        return merged

    def get(self, path, **kwargs):
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.get(API + path, headers=headers, **kwargs)

    def delete(self, path, **kwargs):
        headers = self._headers(kwargs.pop("headers", None))
        return self.client.delete(API + path, headers=headers, **kwargs)

    def post(self, path, body=None, **kwargs):
        headers = self._headers(kwargs.pop("headers", None))
        if body is not None:
            kwargs["json"] = body
        return self.client.post(API + path, headers=headers, **kwargs)

    def put(self, path, body=None, **kwargs):
        headers = self._headers(kwargs.pop("headers", None))
        if body is not None:
            kwargs["json"] = body
        return self.client.put(API + path, headers=headers, **kwargs)


def app_token(user, device_name="Pat's phone", pending=False) -> str:
    """A signed-in (or `pending`) app session for `user`, made directly (the sign-in
    endpoints are tested on their own)."""
    return sessions.start(user, NOBODY, pending=pending, kind=APP, device_name=device_name)[1]


def last_code(to: str) -> str:
    """The 6-digit code of the newest outbox message to `to`."""
    message = (
        OutboxMessage.select()
        .where(OutboxMessage.to == to)
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def subjects_to(to: str) -> list[str]:
    """The subjects of every outbox message to `to`, oldest first."""
    return [
        message.subject
        for message in OutboxMessage.select()
        .where(OutboxMessage.to == to)
        .order_by(OutboxMessage.id)
    ]


def is_problem(response, status: int) -> bool:
    """Whether `response` is an RFC 9457 problem document with `status`."""
    body = response.get_json(silent=True) or {}
    return (
        response.status_code == status
        and response.mimetype == "application/problem+json"
        and body.get("status") == status
        and bool(body.get("title"))
        and bool(body.get("detail"))
    )
