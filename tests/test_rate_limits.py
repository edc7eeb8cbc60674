"""Per-IP limits (Flask-Limiter) on sending and checking codes, with memory:// and Redis."""

import pytest

from models.outbox import OutboxMessage


def redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping())
    except Exception:
        return False


STORAGES = [
    pytest.param("memory://", id="memory"),
    pytest.param(
        "redis://127.0.0.1:6379/14",
        id="redis",
        marks=[
            pytest.mark.redis,
            pytest.mark.skipif(not redis_answers(), reason="no Redis answers on 127.0.0.1:6379"),
        ],
    ),
]


@pytest.fixture(params=STORAGES)
def app_config(request):
    return {
        "RATELIMIT_STORAGE_URI": request.param,
        "SEND_CODES_PER_IP": "3 per hour",
        "SIGN_IN_ATTEMPTS_PER_IP": "4 per minute",
        "CODE_RESEND_COOLDOWN": 0,
    }


@pytest.fixture
def limited(app, browser, factory):
    from services.extensions import limiter

    with app.app_context():
        limiter.reset()
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    yield browser
    with app.app_context():
        limiter.reset()


def test_sending_codes_is_limited_per_ip(limited):
    for number in range(3):
        response = limited.post(
            "/profile/2sv/methods/email/send", {"destination": f"pat{number}@example.com"}
        )
        assert response.status_code == 200
    refused = limited.post("/profile/2sv/methods/email/send", {"destination": "x@example.com"})
    assert refused.status_code == 429
    assert "Try again in" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    assert OutboxMessage.select().count() == 3


def test_code_attempts_are_limited_per_ip(limited):
    limited.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    statuses = [
        limited.post("/profile/2sv/methods/email/confirm", {"code": "000000"}).status_code
        for _ in range(5)
    ]
    assert statuses[:4] == [422] * 4
    assert statuses[4] == 429
